"""marts.cohort_performance: anchors, buy and hold, members vs priced, the three averages by hand."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ground import calendar
from transforms.cohort_performance import cohort_performance, performance, resolve_anchors
from tests.helpers.contract import sql_columns
from tests.helpers.matrix import examples

ROOT = Path(__file__).resolve().parents[2]
COHORT_ROW = {"universe": pl.String, "symbol": pl.String, "session_date": pl.Date, "weight": pl.Float64, "cohort": pl.String}
PRICE_ROW = {"symbol": pl.String, "session_date": pl.Date, "adj_close": pl.Float64}
SESSIONS = calendar.sessions(date(2023, 1, 3), date(2026, 3, 31))


def sessions_lf(days: list[date] = SESSIONS) -> pl.LazyFrame:
    return pl.LazyFrame({"session_date": days}, schema={"session_date": pl.Date})


def cohort_rows(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (universe, symbol, session_date, weight, cohort) -> core.cohorts-shaped frame."""
    return (
        pl.DataFrame(rows, schema=COHORT_ROW, orient="row")
        .with_columns(
            pl.lit(None, pl.String).alias("sector"),
            pl.lit(None, pl.Float64).alias("ttm_net_income_usd"),
            pl.lit(4, pl.Int32).alias("quarters_counted"),
            pl.lit("v1").alias("rule_version"),
        )
        .lazy()
    )


def prices(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (symbol, session_date, adj_close); ret_1d is not read."""
    return pl.LazyFrame(rows, schema=PRICE_ROW, orient="row").with_columns(pl.lit(None, pl.Float64).alias("ret_1d"))


# anchors ------------------------------------------------------------------------------------


def anchor_of(anchor: str, session: date, days: list[date] = SESSIONS) -> date | None:
    out = resolve_anchors(sessions_lf(days), [anchor], as_of=days[-1]).filter(pl.col("session_date") == session).collect()
    return out.get_column("anchor_date").item() if out.height else None


@pytest.mark.parametrize(
    ("anchor", "session", "expected"),
    [
        ("ytd", date(2025, 1, 2), date(2024, 12, 31)),
        ("ytd", date(2025, 3, 3), date(2024, 12, 31)),
        ("ytd", date(2026, 1, 2), date(2025, 12, 31)),
        ("1y", date(2025, 4, 8), date(2024, 4, 8)),  # same calendar day, a session
        ("1y", date(2025, 3, 3), date(2024, 3, 1)),  # 2024-03-03 is a Sunday: the Friday before
        ("1y", date(2024, 2, 29), date(2023, 2, 28)),  # leap day: 28 February of the year before
        ("1y", date(2026, 1, 9), date(2025, 1, 8)),  # 2025-01-09 was closed (day of mourning)
        ("2025-04-08", date(2025, 6, 2), date(2025, 4, 8)),
        ("2025-04-05", date(2025, 4, 7), date(2025, 4, 4)),  # a Saturday: measured from the session before
        ("2025-04-05", date(2025, 4, 4), None),  # that session itself comes before the anchor's day: no row
        ("2025-04-05", date(2025, 4, 3), None),  # before the anchor session: no row
        ("2025-04-02", date(2025, 4, 2), date(2025, 4, 2)),
    ],
)
def test_anchor_resolution(anchor, session, expected):
    assert anchor_of(anchor, session) == expected


def test_an_anchor_before_the_loaded_history_gives_no_rows():
    short = calendar.sessions(date(2025, 1, 2), date(2025, 6, 30))
    out = resolve_anchors(sessions_lf(short), ["ytd", "1y", "2024-12-01"], as_of=short[-1]).collect()
    assert out.height == 0
    out = resolve_anchors(sessions_lf(short), ["2025-04-08"], as_of=date(2025, 4, 10)).collect()
    assert out.get_column("session_date").to_list() == [date(2025, 4, 8), date(2025, 4, 9), date(2025, 4, 10)]


def test_an_anchor_after_the_last_loaded_session_gives_no_rows():
    # History ends 2022-11-18: "since 2025-04-08" is not "since the last loaded session".
    short = calendar.sessions(date(2022, 11, 1), date(2022, 11, 18))
    out = resolve_anchors(sessions_lf(short), ["2025-04-08", "ytd"], as_of=short[-1]).collect()
    assert set(out.get_column("anchor").to_list()) == set()
    out = resolve_anchors(sessions_lf(SESSIONS), ["2025-04-08"], as_of=date(2025, 4, 7)).collect()
    assert out.height == 0


def test_an_unknown_anchor_is_refused():
    with pytest.raises(ValueError, match="mtd"):
        resolve_anchors(sessions_lf(), ["mtd"], as_of=SESSIONS[-1])


# buy and hold by hand -----------------------------------------------------------------------

D7, D8, D9, D10, D11 = (date(2025, 4, d) for d in (7, 8, 9, 10, 11))

HAND_COHORTS = [
    # On the anchor session 2025-04-08: A and B profitable, C unprofitable, D no_data.
    ("r2k", "A", D8, 0.4, "profitable"),
    ("r2k", "B", D8, 0.1, "profitable"),
    ("r2k", "C", D8, 0.3, "unprofitable"),
    ("r2k", "D", D8, 0.2, "no_data"),
    # After the anchor A turns unprofitable and E joins: neither changes the anchor's buy and hold.
    ("r2k", "A", D9, 0.4, "unprofitable"),
    ("r2k", "C", D9, 0.3, "unprofitable"),
    ("r2k", "E", D9, 0.3, "profitable"),
]
HAND_PRICES = [
    ("A", D7, 90.0), ("A", D8, 100.0), ("A", D9, 110.0), ("A", D10, 120.0), ("A", D11, 200.0),
    ("B", D8, 50.0), ("B", D9, 45.0),  # stops trading after 04-09: keeps -10%
    ("C", D8, 20.0), ("C", D9, 25.0), ("C", D10, 30.0),
    # D has no price at all: a member, not priced.
    ("E", D9, 10.0), ("E", D10, 20.0),
]


def hand_result() -> dict[tuple[str, date], dict]:
    out = cohort_performance(
        cohort_rows(HAND_COHORTS), prices(HAND_PRICES), sessions_lf(), anchors=["2025-04-08"], as_of=D10
    ).collect()
    assert out.schema == pl.Schema(sql_columns("marts.cohort_performance"))
    assert set(out.get_column("anchor_date").to_list()) == {D8}
    return {(r["cohort"], r["session_date"]): r for r in out.to_dicts()}


def test_rows_run_from_the_anchor_session_to_as_of_with_every_cohort():
    got = hand_result()
    assert sorted({d for _, d in got}) == [D8, D9, D10]  # not 04-07 (before), not 04-11 (after as_of)
    assert {c for c, _ in got} == {"profitable", "unprofitable", "no_data", "all"}
    assert len(got) == 12


def test_members_and_priced_are_fixed_at_the_anchor():
    got = hand_result()
    for day in (D8, D9, D10):
        counts = {c: (got[(c, day)]["members"], got[(c, day)]["priced"]) for c in ("profitable", "unprofitable", "no_data", "all")}
        assert counts == {"profitable": (2, 2), "unprofitable": (1, 1), "no_data": (1, 0), "all": (4, 3)}


def test_returns_are_zero_on_the_anchor_session():
    got = hand_result()
    for cohort in ("profitable", "unprofitable", "all"):
        r = got[(cohort, D8)]
        assert (r["return_equal_weight"], r["return_cap_weight"], r["return_median"]) == (0.0, 0.0, 0.0)
    r = got[("no_data", D8)]
    assert (r["return_equal_weight"], r["return_cap_weight"], r["return_median"]) == (None, None, None)


@pytest.mark.parametrize(
    ("cohort", "day", "equal", "cap", "median"),
    [
        # 04-09: A +10%, B -10%, C +25%. Weights at the anchor: A .4, B .1, C .3 (D .2, unpriced).
        ("profitable", D9, 0.0, (0.4 * 0.10 + 0.1 * -0.10) / 0.5, 0.0),  # cap 0.06
        ("unprofitable", D9, 0.25, 0.25, 0.25),
        ("all", D9, (0.10 - 0.10 + 0.25) / 3, (0.04 - 0.01 + 0.075) / 0.8, 0.10),  # 0.0833, 0.13125, 0.10
        # 04-10: A +20%, B still -10% (no bar since 04-09), C +50%.
        ("profitable", D10, 0.05, (0.4 * 0.20 + 0.1 * -0.10) / 0.5, 0.05),  # cap 0.14
        ("unprofitable", D10, 0.50, 0.50, 0.50),
        ("all", D10, (0.20 - 0.10 + 0.50) / 3, (0.08 - 0.01 + 0.15) / 0.8, 0.20),  # 0.2, 0.275, 0.2
    ],
)
def test_equal_cap_and_median_returns_by_hand(cohort, day, equal, cap, median):
    r = hand_result()[(cohort, day)]
    assert r["return_equal_weight"] == pytest.approx(equal)
    assert r["return_cap_weight"] == pytest.approx(cap)
    assert r["return_median"] == pytest.approx(median)


def test_a_member_without_a_bar_on_the_anchor_session_is_priced_at_its_last_close():
    # F traded on 04-07 (10.0) and not again until 04-10 (12.0): priced at 10.0 on the anchor.
    out = cohort_performance(
        cohort_rows([("r2k", "F", D8, 1.0, "profitable")]),
        prices([("F", D7, 10.0), ("F", D10, 12.0)]),
        sessions_lf(),
        anchors=["2025-04-08"],
        as_of=D10,
    ).collect()
    row = out.filter(pl.col("cohort") == "profitable", pl.col("session_date") == D10).to_dicts()[0]
    assert (row["members"], row["priced"]) == (1, 1)
    assert row["return_equal_weight"] == pytest.approx(0.2)
    assert out.filter(pl.col("session_date") == D9, pl.col("cohort") == "all")["return_median"].item() == 0.0


def test_cap_weight_is_null_when_no_priced_member_has_a_weight():
    out = cohort_performance(
        cohort_rows([("r2k", "A", D8, None, "profitable")]),
        prices([("A", D8, 10.0), ("A", D9, 11.0)]),
        sessions_lf(),
        anchors=["2025-04-08"],
        as_of=D9,
    ).collect()
    row = out.filter(pl.col("cohort") == "profitable", pl.col("session_date") == D9).to_dicts()[0]
    assert row["return_equal_weight"] == pytest.approx(0.1) and row["return_cap_weight"] is None


def test_a_rolling_ytd_anchor_holds_each_years_own_members():
    # Members on 2024-12-31: X. On 2025-12-31: Y. 2025 sessions follow X, 2026 sessions follow Y.
    y24, y25 = date(2024, 12, 31), date(2025, 12, 31)
    out = cohort_performance(
        cohort_rows([("r2k", "X", y24, 1.0, "profitable"), ("r2k", "Y", y25, 1.0, "unprofitable")]),
        prices([("X", y24, 10.0), ("X", date(2025, 6, 2), 15.0), ("Y", y25, 4.0), ("Y", date(2026, 3, 2), 5.0)]),
        sessions_lf(),
        anchors=["ytd"],
        as_of=date(2026, 3, 31),
    ).collect()
    mid_2025 = {r["cohort"]: r for r in out.filter(pl.col("session_date") == date(2025, 6, 2)).to_dicts()}
    mar_2026 = {r["cohort"]: r for r in out.filter(pl.col("session_date") == date(2026, 3, 2)).to_dicts()}
    assert (mid_2025["profitable"]["members"], mid_2025["unprofitable"]["members"]) == (1, 0)
    assert mid_2025["all"]["return_equal_weight"] == pytest.approx(0.5) and mid_2025["all"]["anchor_date"] == y24
    assert (mar_2026["profitable"]["members"], mar_2026["unprofitable"]["members"]) == (0, 1)
    assert mar_2026["all"]["return_equal_weight"] == pytest.approx(0.25) and mar_2026["all"]["anchor_date"] == y25
    # 2024 sessions have no previous year's session in cohorts (no members there): no rows.
    assert out.filter(pl.col("session_date") < y24).height == 0


def test_a_universe_is_only_reported_where_it_had_members_at_the_anchor():
    out = cohort_performance(
        cohort_rows([("r2k", "A", D8, 1.0, "profitable"), ("sp600", "A", D9, 1.0, "profitable")]),
        prices([("A", D8, 10.0), ("A", D9, 11.0)]),
        sessions_lf(),
        anchors=["2025-04-08"],
        as_of=D9,
    ).collect()
    assert set(out.get_column("universe").to_list()) == {"r2k"}


# properties ---------------------------------------------------------------------------------

DAYS = calendar.sessions(date(2025, 3, 3), date(2025, 3, 31))


@settings(max_examples=examples(40), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 7),  # symbol
            st.integers(0, len(DAYS) - 1),  # session index of the cohort row
            st.sampled_from(["profitable", "unprofitable", "no_data"]),
            st.one_of(st.none(), st.floats(0.01, 3.0)),
        ),
        min_size=1,
        max_size=60,
    ),
    st.lists(st.tuples(st.integers(0, 7), st.integers(0, len(DAYS) - 1), st.floats(1.0, 100.0)), max_size=120),
)
def test_the_all_cohort_adds_up_the_three_cohorts(rows, bars):
    coh = {(f"S{s}", DAYS[i]): (w, c) for s, i, c, w in rows}
    px = {(f"S{s}", DAYS[i]): p for s, i, p in bars}
    out = cohort_performance(
        cohort_rows([("r2k", s, d, w, c) for (s, d), (w, c) in coh.items()]),
        prices([(s, d, p) for (s, d), p in px.items()]),
        sessions_lf(DAYS),
        anchors=["2025-03-10", "1y"],
        as_of=DAYS[-1],
    ).collect()
    wide = out.pivot(on="cohort", index=["universe", "anchor", "session_date"], values=["members", "priced", "return_equal_weight"])
    for r in wide.to_dicts():
        parts = ("profitable", "unprofitable", "no_data")
        assert r["members_all"] == sum(r[f"members_{c}"] for c in parts)
        assert r["priced_all"] == sum(r[f"priced_{c}"] for c in parts)
        if r["priced_all"]:
            total = sum(r[f"return_equal_weight_{c}"] * r[f"priced_{c}"] for c in parts if r[f"priced_{c}"])
            assert r["return_equal_weight_all"] == pytest.approx(total / r["priced_all"])
        else:
            assert r["return_equal_weight_all"] is None




REPLAY = Path(__file__).parents[1] / "fixtures" / "cohort-performance-replay"


def test_the_members_are_never_joined_to_prices_on_the_symbol_alone():
    """Each member of an anchor session meets the prices of the sessions using that anchor, keyed
    by (symbol, session_date). Polars 2.1's join reordering once turned the chain of inner joins
    into members x prices on `symbol` alone, pairing every member with its symbol's whole price
    history: ~19 GB and 5 minutes for the 2025 replay year of a 3-year sample backfill (2,600
    members, a result of 2.3M rows), 0.6 GB and seconds in the written order. The plan is checked,
    not the memory: the plan is what went wrong. Inputs: the first 10 symbols of that year."""
    anchor_map, members, prices = (pl.read_parquet(REPLAY / f"{name}.parquet") for name in ("anchor_map", "members", "prices"))
    query = performance(anchor_map.lazy(), members.lazy(), prices.lazy())
    plan = query.explain()
    assert re.findall(r'PLAN ON: \[col\("symbol"\)\]', plan) == [], plan
    rows = query.collect()
    universes = members.group_by("anchor_date").agg(pl.col("universe").n_unique().alias("n"))
    assert rows.height == anchor_map.join(universes, on="anchor_date").get_column("n").sum() * 4
    # Against a brute-force pass: each member's own return, averaged per group.
    held = (
        members.join(prices.rename({"session_date": "anchor_date", "price": "p0"}), on=["symbol", "anchor_date"])
        .join(anchor_map.select("anchor_date", "session_date").unique(), on="anchor_date")
        .join(prices, on=["symbol", "session_date"], how="left")
        .filter(pl.col("price").is_not_null(), pl.col("p0") > 0)
        .group_by("universe", "anchor_date", "session_date")
        .agg((pl.col("price") / pl.col("p0") - 1).mean().alias("expected"))
    )
    got = rows.filter(pl.col("cohort") == "all").join(held, on=["universe", "anchor_date", "session_date"], how="inner")
    assert got.height > 1000
    assert (got.get_column("return_equal_weight") - got.get_column("expected")).abs().max() < 1e-12
