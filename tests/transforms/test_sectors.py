"""marts.sector_daily: members, equal- and cap-weighted daily sector returns, by hand and by property."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.sectors import sector_daily
from tests.helpers.contract import sql_columns

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


@settings(max_examples=80, deadline=None)
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
