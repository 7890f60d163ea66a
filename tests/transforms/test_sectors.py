"""marts.sector_daily: members, equal- and cap-weighted daily sector returns, by hand and by property."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.sectors import sector_daily, sector_performance
from tests.helpers.contract import sql_columns
from tests.helpers.matrix import examples

ROOT = Path(__file__).resolve().parents[2]
D3, D4 = date(2025, 3, 3), date(2025, 3, 4)


def cohort_rows(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (universe, symbol, session_date, sector, weight) -> core.cohorts-shaped frame."""
    schema = {"universe": pl.String, "symbol": pl.String, "session_date": pl.Date, "sector": pl.String, "weight": pl.Float64}
    return (
        pl.DataFrame(rows, schema=schema, orient="row")
        .with_columns(
            pl.lit("profitable").alias("cohort"),
            pl.lit(None, pl.Float64).alias("ttm_net_income_usd"),
            pl.lit(4, pl.Int32).alias("quarters_counted"),
            pl.lit("v1").alias("rule_version"),
        )
        .lazy()
    )


def returns(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (symbol, session_date, ret_1d)."""
    schema = {"symbol": pl.String, "session_date": pl.Date, "ret_1d": pl.Float64}
    return pl.LazyFrame(rows, schema=schema, orient="row").with_columns(pl.lit(1.0).alias("adj_close"))


HAND_COHORTS = [
    ("r2k", "A", D3, "Energy", 0.50),
    ("r2k", "B", D3, "Energy", 0.30),
    ("r2k", "C", D3, "Utilities", 0.15),
    ("r2k", "M", D3, "Energy", 0.05),
    ("r2k", "A", D4, "Energy", 0.60),
    ("r2k", "B", D4, "Energy", 0.20),
    ("r2k", "C", D4, "Utilities", 0.10),
    ("r2k", "M", D4, "Energy", 0.05),  # no bar on 03-04: a member, not in the means
    ("r2k", "N", D4, "Energy", 0.05),  # joins on 03-04: its weight of that session
    ("r2k", "Z", D4, None, None),  # no sector, no weight in the snapshot
]
HAND_RETURNS = [
    ("A", D3, None), ("B", D3, None), ("C", D3, None), ("M", D3, None),  # first rows: no return
    ("A", D4, 0.02), ("B", D4, -0.01), ("C", D4, 0.01), ("N", D4, 0.04), ("Z", D4, 0.03),
]


def hand_result() -> dict[tuple[str, date], dict]:
    out = sector_daily(cohort_rows(HAND_COHORTS), returns(HAND_RETURNS)).collect()
    assert out.schema == pl.Schema(sql_columns("marts.sector_daily"))
    return {(r["sector"], r["session_date"]): r for r in out.to_dicts()}


def test_equal_and_cap_weight_by_hand_with_start_of_day_weights():
    energy = hand_result()[("Energy", D4)]
    assert energy["members"] == 4  # A, B, M, N
    # Equal weight over the three with a return: (2% - 1% + 4%) / 3.
    assert energy["return_equal_weight"] == pytest.approx((0.02 - 0.01 + 0.04) / 3)
    # Cap weight on the previous session's weights (A .50, B .30), N's own (.05); M has no return.
    assert energy["return_cap_weight"] == pytest.approx((0.5 * 0.02 + 0.3 * -0.01 + 0.05 * 0.04) / 0.85)


def test_single_member_sector_and_a_member_without_sector_or_weight():
    got = hand_result()
    utilities = got[("Utilities", D4)]
    assert (utilities["members"], utilities["return_equal_weight"], utilities["return_cap_weight"]) == (1, 0.01, 0.01)
    unknown = got[("Unknown", D4)]
    assert (unknown["members"], unknown["return_equal_weight"], unknown["return_cap_weight"]) == (1, 0.03, None)


def test_a_session_without_returns_has_members_and_null_returns():
    energy = hand_result()[("Energy", D3)]
    assert (energy["members"], energy["return_equal_weight"], energy["return_cap_weight"]) == (3, None, None)


def test_a_member_that_rejoins_after_a_gap_uses_its_weight_of_the_day_not_a_stale_one():
    d5 = date(2025, 3, 5)
    out = sector_daily(
        cohort_rows(
            [
                ("r2k", "A", D3, "Energy", 0.9),  # A leaves after 03-03 and returns on 03-05
                ("r2k", "B", D3, "Energy", 0.1),
                ("r2k", "B", D4, "Energy", 1.0),
                ("r2k", "A", d5, "Energy", 0.5),
                ("r2k", "B", d5, "Energy", 0.5),
            ]
        ),
        returns([("A", d5, 0.10), ("B", d5, 0.00)]),
    ).collect()
    row = out.filter(pl.col("session_date") == d5).to_dicts()[0]
    # A's weight: its own 0.5 on 03-05 (it was not a member on 03-04); B's: 1.0 from 03-04.
    assert row["return_cap_weight"] == pytest.approx((0.5 * 0.10 + 1.0 * 0.0) / 1.5)


@settings(max_examples=examples(80), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["r2k", "sp600"]),
            st.integers(0, 9),
            st.integers(0, 4),
            st.one_of(st.none(), st.sampled_from(["Energy", "Utilities", "Materials"])),
            st.one_of(st.none(), st.floats(0.01, 1.0)),
            st.one_of(st.none(), st.floats(-0.5, 0.5)),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_sector_members_add_up_and_means_lie_within_the_members_returns(rows):
    unique = {(u, f"S{s}", D3 + timedelta(days=d)): (sector, w, r) for u, s, d, sector, w, r in rows}
    coh = cohort_rows([(u, s, d, sector, w) for (u, s, d), (sector, w, _) in unique.items()])
    rets = returns(list({(s, d): (s, d, r) for (_, s, d), (_, _, r) in unique.items()}.values()))
    out = sector_daily(coh, rets).collect()
    per_session = out.group_by("universe", "session_date").agg(pl.col("members").sum())
    expected = coh.group_by("universe", "session_date").agg(pl.len().cast(pl.Int32).alias("members")).collect()
    assert per_session.sort("universe", "session_date").equals(expected.sort("universe", "session_date"))
    joined = coh.join(rets, on=["symbol", "session_date"], how="left").with_columns(
        pl.col("sector").fill_null("Unknown")
    ).group_by("universe", "sector", "session_date").agg(pl.col("ret_1d").min().alias("lo"), pl.col("ret_1d").max().alias("hi"))
    for r in out.join(joined.collect(), on=["universe", "sector", "session_date"]).to_dicts():
        for col in ("return_equal_weight", "return_cap_weight"):
            if r[col] is not None:
                assert r["lo"] - 1e-12 <= r[col] <= r["hi"] + 1e-12


# marts.sector_performance -----------------------------------------------------------------------

S = [date(2025, 4, 1), date(2025, 4, 2), date(2025, 4, 3), date(2025, 4, 4), date(2025, 4, 7)]


def sector_rows(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (universe, sector, session_date, return_equal_weight, return_cap_weight)."""
    schema = {"universe": pl.String, "sector": pl.String, "session_date": pl.Date,
              "return_equal_weight": pl.Float64, "return_cap_weight": pl.Float64}  # fmt: skip
    return pl.LazyFrame(rows, schema=schema, orient="row").with_columns(pl.lit(3, pl.Int32).alias("members"))


def anchor_map(anchor: str, anchor_date: date, sessions: list[date]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"anchor": anchor, "session_date": sessions, "anchor_date": anchor_date},
        schema={"anchor": pl.String, "session_date": pl.Date, "anchor_date": pl.Date},
    )


def test_sector_performance_compounds_the_daily_returns_after_the_anchor_session():
    daily = sector_rows([
        ("r", "Energy", S[0], 0.50, 0.50),  # before the anchor: not counted
        ("r", "Energy", S[1], 0.10, 0.20),  # the anchor session: 0
        ("r", "Energy", S[2], -0.10, None),  # no cap-weight return that day: counts as 0
        ("r", "Energy", S[3], 0.05, 0.10),
        ("r", "Utilities", S[1], 0.0, 0.0),
        ("r", "Utilities", S[3], 0.02, 0.02),  # no row on S[2]: no Utilities row that session
    ])  # fmt: skip
    out = sector_performance(daily, anchor_map("2025-04-02", S[1], S[1:4])).collect()
    assert out.schema == pl.Schema(sql_columns("marts.sector_performance"))
    energy = out.filter(pl.col("sector") == "Energy")
    assert energy["session_date"].to_list() == S[1:4]
    assert energy["return_equal_weight"].to_list() == pytest.approx([0.0, -0.10, 0.9 * 1.05 - 1], rel=1e-14)
    assert energy["return_cap_weight"].to_list() == pytest.approx([0.0, 0.0, 0.10], rel=1e-14)
    assert energy["anchor_date"].to_list() == [S[1]] * 3
    utilities = out.filter(pl.col("sector") == "Utilities")
    assert utilities["session_date"].to_list() == [S[1], S[3]]
    assert utilities["return_equal_weight"].to_list() == pytest.approx([0.0, 0.02], rel=1e-14)


def test_a_sector_that_appears_after_the_anchor_compounds_from_its_first_session():
    daily = sector_rows([("r", "Energy", S[0], 0.01, 0.01), ("r", "Materials", S[2], 0.03, 0.03), ("r", "Materials", S[3], 0.01, 0.01)])
    out = sector_performance(daily, anchor_map("2025-04-01", S[0], S[:4])).collect()
    materials = out.filter(pl.col("sector") == "Materials")
    assert materials["return_equal_weight"].to_list() == pytest.approx([0.03, 1.03 * 1.01 - 1], rel=1e-14)


def test_a_universe_whose_sector_history_starts_after_the_anchor_has_no_rows_for_it():
    daily = sector_rows([("r", "Energy", S[2], 0.01, 0.01), ("s", "Energy", S[0], 0.01, 0.01), ("s", "Energy", S[2], 0.02, 0.02)])
    out = sector_performance(daily, anchor_map("2025-04-01", S[0], [S[2]])).collect()
    assert out.select("universe", "session_date").rows() == [("s", S[2])]
    # history_start given (a night reads a window): it decides, not the window's first row.
    starts = pl.LazyFrame({"universe": ["r", "s"], "history_start": [S[0], S[0]]})
    late = sector_performance(daily.filter(pl.col("session_date") >= S[2]), anchor_map("2025-04-01", S[0], [S[2]]), starts).collect()
    assert sorted(late["universe"].to_list()) == ["r", "s"]


@settings(max_examples=examples(60), deadline=None)
@given(
    rets=st.lists(st.one_of(st.none(), st.floats(-0.3, 0.3, allow_nan=False)), min_size=3, max_size=40),
    anchor_at=st.integers(0, 39),
    window_from=st.integers(0, 39),
)
def test_sector_performance_equals_the_direct_product_whatever_window_is_read(rets, anchor_at, window_from):
    """Every row equals prod(1 + r) - 1 over the sessions after the anchor, whether the sector
    history is read from its start (a rebuild) or from the anchor session on (a night)."""
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(len(rets))]
    anchor_at, window_from = anchor_at % len(rets), min(window_from % len(rets), anchor_at % len(rets))
    daily = sector_rows([("r", "Energy", d, r, r) for d, r in zip(days, rets)])
    wanted = anchor_map("a", days[anchor_at], days[anchor_at:])
    starts = pl.LazyFrame({"universe": ["r"], "history_start": [days[0]]})
    for frame in (daily, daily.filter(pl.col("session_date") >= days[window_from])):
        out = sector_performance(frame, wanted, starts).collect()
        expected, growth = [], 1.0
        for r in rets[anchor_at:]:
            growth = growth if expected == [] else growth * (1 + (r or 0.0))
            expected.append(growth - 1)
        assert out["return_equal_weight"].to_list() == pytest.approx(expected, rel=1e-12, abs=1e-15)
