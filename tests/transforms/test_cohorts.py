"""core.cohorts and marts.cohort_composition: rule v1 by hand, and its invariants by property."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ground import calendar
from transforms.cohorts import cohort_composition, cohorts, member_sessions
from tests.helpers.contract import sql_columns
from tests.helpers.matrix import examples

ROOT = Path(__file__).resolve().parents[2]
FUND_SCHEMA = {"symbol": pl.String, "period_end_date": pl.Date, "report_date": pl.Date, "net_income_common_usd": pl.Float64}
MEMBERSHIP_SCHEMA = {"universe": pl.String, "symbol": pl.String, "valid_from_date": pl.Date, "valid_to_date": pl.Date}
HOLDINGS_SCHEMA = {
    "universe": pl.String, "as_of_date": pl.Date, "symbol": pl.String, "sector": pl.String, "weight_pct": pl.Float64
}
SESSIONS_2025 = calendar.sessions(date(2025, 1, 2), date(2025, 6, 30))


def sessions_lf(days: list[date] = SESSIONS_2025) -> pl.LazyFrame:
    return pl.LazyFrame({"session_date": days}, schema={"session_date": pl.Date})


def fundamentals(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (symbol, period_end_date, report_date or None, net_income_common_usd or None)."""
    return pl.LazyFrame(rows, schema=FUND_SCHEMA, orient="row")


def one_member(symbol: str = "AAA", start: date = SESSIONS_2025[0], end: date | None = None) -> pl.LazyFrame:
    return pl.LazyFrame([("r2k", symbol, start, end)], schema=MEMBERSHIP_SCHEMA, orient="row")


def holdings(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (universe, as_of_date, symbol, sector, weight_pct)."""
    return pl.LazyFrame(rows, schema=HOLDINGS_SCHEMA, orient="row")


NO_HOLDINGS = holdings([])


def cohort_on(frame: pl.DataFrame, day: date, symbol: str = "AAA") -> dict:
    rows = frame.filter(pl.col("session_date") == day, pl.col("symbol") == symbol).to_dicts()
    assert len(rows) == 1, f"expected one row for {symbol} on {day}, got {rows}"
    return rows[0]


def run(fund: pl.LazyFrame, members: pl.LazyFrame | None = None, hold: pl.LazyFrame = NO_HOLDINGS) -> pl.DataFrame:
    return cohorts(members if members is not None else one_member(), hold, fund, sessions_lf()).collect()


# Four quarters to 2024-12-31, all long available by May 2025 (counted by 2025-02-14 at the latest).
BASE_2024 = [
    ("AAA", date(2024, 3, 31), None, 10.0),
    ("AAA", date(2024, 6, 30), None, -1.0),
    ("AAA", date(2024, 9, 30), None, -1.0),
    ("AAA", date(2024, 12, 31), None, -1.0),
]


def test_columns_match_the_warehouse_contract():
    out = run(fundamentals(BASE_2024))
    assert out.schema == pl.Schema(sql_columns("core.cohorts"))
    assert cohort_composition(out.lazy()).collect().schema == pl.Schema(sql_columns("marts.cohort_composition"))


def test_a_quarter_counts_45_days_after_its_period_end_not_a_day_earlier():
    # Q1 2025 ends 2025-03-31; + 45 days = 2025-05-15 (a Thursday session).
    # On 05-14 the 4 latest counted quarters are Q1-Q4 2024: 10 - 1 - 1 - 1 = +7 (profitable).
    # On 05-15 Q1 2025 (-5) replaces Q1 2024: -1 - 1 - 1 - 5 = -8 (unprofitable).
    out = run(fundamentals([*BASE_2024, ("AAA", date(2025, 3, 31), None, -5.0)]))
    before = cohort_on(out, date(2025, 5, 14))
    on = cohort_on(out, date(2025, 5, 15))
    assert (before["cohort"], before["ttm_net_income_usd"], before["quarters_counted"]) == ("profitable", 7.0, 4)
    assert (on["cohort"], on["ttm_net_income_usd"], on["quarters_counted"]) == ("unprofitable", -8.0, 4)


@pytest.mark.parametrize(
    ("report_date", "first_day_counted", "last_day_not_counted"),
    [
        (date(2025, 4, 24), date(2025, 4, 24), date(2025, 4, 23)),  # reported early: counts on its report date
        (date(2025, 4, 26), date(2025, 4, 28), date(2025, 4, 25)),  # reported on a Saturday: next session
        (date(2025, 6, 2), date(2025, 6, 2), date(2025, 5, 30)),  # a late filer: waits for its report
        # A report date on or before the period end is impossible: ignored, the 45-day rule applies.
        (date(2025, 3, 31), date(2025, 5, 15), date(2025, 5, 14)),
        (date(2025, 3, 3), date(2025, 5, 15), date(2025, 5, 14)),
    ],
)
def test_a_quarter_counts_from_its_report_date_early_or_late(report_date, first_day_counted, last_day_not_counted):
    out = run(fundamentals([*BASE_2024, ("AAA", date(2025, 3, 31), report_date, -5.0)]))
    assert cohort_on(out, last_day_not_counted)["cohort"] == "profitable"
    assert cohort_on(out, first_day_counted)["cohort"] == "unprofitable"


def test_a_late_filer_is_not_counted_before_its_report_date():
    """The quarter ending 2025-09-30 reported on Thursday 2025-11-20: the 45-day deadline
    (2025-11-14) has passed, but the figure was not public before the 20th.

    Quarters (USD m): Q4 2024 +4, Q1-Q2 2025 +2 each, Q3 2024 +1 (no report dates: counted by
    their deadlines, the latest Q2 2025 on 2025-08-14). TTM on 2025-11-19 = Q3 2024 .. Q2 2025 =
    1 + 4 + 2 + 2 = +9 (profitable). On 2025-11-20 Q3 2025 (-12) replaces Q3 2024:
    4 + 2 + 2 - 12 = -4 (unprofitable)."""
    days = calendar.sessions(date(2025, 11, 3), date(2025, 11, 28))
    fund = fundamentals([
        ("AAA", date(2024, 9, 30), None, 1.0),
        ("AAA", date(2024, 12, 31), None, 4.0),
        ("AAA", date(2025, 3, 31), None, 2.0),
        ("AAA", date(2025, 6, 30), None, 2.0),
        ("AAA", date(2025, 9, 30), date(2025, 11, 20), -12.0),
    ])
    out = cohorts(one_member(start=days[0]), NO_HOLDINGS, fund, sessions_lf(days)).collect()
    for day in calendar.sessions(date(2025, 11, 14), date(2025, 11, 19)):
        row = cohort_on(out, day)
        assert (row["cohort"], row["ttm_net_income_usd"]) == ("profitable", 9.0), day
    row = cohort_on(out, date(2025, 11, 20))
    assert (row["cohort"], row["ttm_net_income_usd"]) == ("unprofitable", -4.0)


def test_a_real_zero_ttm_is_unprofitable_not_no_data():
    # 5 + 0 - 5 + 0 = 0: a value (<= 0 is unprofitable), and the zero quarters are not "missing".
    out = run(
        fundamentals(
            [
                ("AAA", date(2024, 3, 31), None, 5.0),
                ("AAA", date(2024, 6, 30), None, 0.0),
                ("AAA", date(2024, 9, 30), None, -5.0),
                ("AAA", date(2024, 12, 31), None, 0.0),
            ]
        )
    )
    row = cohort_on(out, date(2025, 3, 3))
    assert (row["cohort"], row["ttm_net_income_usd"], row["quarters_counted"]) == ("unprofitable", 0.0, 4)


def test_three_quarters_only_is_no_data():
    out = run(fundamentals(BASE_2024[1:]))
    row = cohort_on(out, date(2025, 3, 3))
    assert (row["cohort"], row["ttm_net_income_usd"], row["quarters_counted"]) == ("no_data", None, 3)


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_a_missing_quarter_in_the_window_is_no_data_until_it_rolls_out(missing):
    # Q3 2024 missing. On 2025-03-03 the window is Q1-Q4 2024; from 2025-05-15 it is Q2 2024 -
    # Q1 2025: both hold Q3 2024 -> no data, with 4 quarters counted.
    rows = [*BASE_2024, ("AAA", date(2025, 3, 31), None, 2.0)]
    rows[2] = ("AAA", date(2024, 9, 30), None, missing)
    out = run(fundamentals(rows))
    for day in (date(2025, 3, 3), date(2025, 5, 15)):
        row = cohort_on(out, day)
        assert (row["cohort"], row["ttm_net_income_usd"], row["quarters_counted"]) == ("no_data", None, 4)

    # Moving the missing quarter to Q1 2024: it leaves the window on 2025-05-15.
    rows = [*BASE_2024, ("AAA", date(2025, 3, 31), None, 2.0)]
    rows[0] = ("AAA", date(2024, 3, 31), None, missing)
    out = run(fundamentals(rows))
    assert cohort_on(out, date(2025, 5, 14))["cohort"] == "no_data"
    row = cohort_on(out, date(2025, 5, 15))
    assert (row["cohort"], row["ttm_net_income_usd"]) == ("unprofitable", -1.0)  # -1 - 1 - 1 + 2


def test_more_than_four_counted_quarters_are_reported_as_four():
    out = run(fundamentals([("AAA", date(2023, 12, 31), None, 100.0), *BASE_2024]))
    row = cohort_on(out, date(2025, 3, 3))
    assert (row["cohort"], row["ttm_net_income_usd"], row["quarters_counted"]) == ("profitable", 7.0, 4)


def test_a_member_without_fundamentals_is_no_data_with_zero_quarters():
    out = run(fundamentals(BASE_2024), members=one_member("BBB"))
    row = cohort_on(out, date(2025, 3, 3), "BBB")
    assert (row["cohort"], row["ttm_net_income_usd"], row["quarters_counted"]) == ("no_data", None, 0)


def test_one_row_per_session_the_membership_interval_covers():
    members = pl.LazyFrame(
        [
            ("r2k", "AAA", date(2025, 3, 1), date(2025, 3, 7)),  # Saturday to Friday: 03-03 .. 03-07
            ("r2k", "AAA", date(2025, 6, 27), None),  # open: 06-27 and 06-30
            ("sp600", "AAA", date(2025, 6, 30), None),
        ],
        schema=MEMBERSHIP_SCHEMA,
        orient="row",
    )
    out = member_sessions(members, sessions_lf()).sort("universe", "session_date").collect()
    r2k = out.filter(pl.col("universe") == "r2k").get_column("session_date").to_list()
    assert r2k == [date(2025, 3, d) for d in (3, 4, 5, 6, 7)] + [date(2025, 6, 27), date(2025, 6, 30)]
    assert out.filter(pl.col("universe") == "sp600").get_column("session_date").to_list() == [date(2025, 6, 30)]


def test_sector_and_weight_come_from_the_latest_snapshot_and_weights_sum_to_one():
    # Weights are shares of the snapshot's lines (the equity sleeve; membership is made from the
    # same snapshots, so those lines are the session's members). No market values here: the
    # published weights are re-based.
    members = pl.LazyFrame(
        [("r2k", s, date(2025, 3, 3), date(2025, 3, 11)) for s in ("AAA", "BBB", "CCC")], schema=MEMBERSHIP_SCHEMA, orient="row"
    )
    hold = holdings(
        [
            # Saturday snapshot: used from Monday 03-03. Weights are percent of the whole fund (cash aside).
            ("r2k", date(2025, 3, 1), "AAA", "Energy", 0.30),
            ("r2k", date(2025, 3, 1), "BBB", "Utilities", 0.60),
            ("r2k", date(2025, 3, 1), "CCC", "Energy", 0.10),
            # Next snapshot 2025-03-10: CCC is missing from it (sector and weight unknown).
            ("r2k", date(2025, 3, 10), "AAA", "Energy", 0.20),
            ("r2k", date(2025, 3, 10), "BBB", "Materials", 0.20),
        ]
    )
    out = cohorts(members, hold, fundamentals([]), sessions_lf()).collect()
    first = {r["symbol"]: (r["sector"], r["weight"]) for r in out.filter(pl.col("session_date") == date(2025, 3, 7)).to_dicts()}
    assert first["AAA"] == ("Energy", pytest.approx(0.3)) and first["BBB"] == ("Utilities", pytest.approx(0.6))
    assert first["CCC"] == ("Energy", pytest.approx(0.1))
    later = {r["symbol"]: (r["sector"], r["weight"]) for r in out.filter(pl.col("session_date") == date(2025, 3, 10)).to_dicts()}
    assert later == {"AAA": ("Energy", 0.5), "BBB": ("Materials", 0.5), "CCC": (None, None)}


def test_unknown_rule_version_is_refused():
    with pytest.raises(ValueError, match="v2"):
        cohorts(one_member(), NO_HOLDINGS, fundamentals([]), sessions_lf(), rule_version="v2")


# composition --------------------------------------------------------------------------------


def composition_input(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (universe, symbol, session_date, weight, cohort)."""
    frame = pl.DataFrame(
        rows,
        schema={"universe": pl.String, "symbol": pl.String, "session_date": pl.Date, "weight": pl.Float64, "cohort": pl.String},
        orient="row",
    )
    return frame.with_columns(
        pl.lit(None, pl.String).alias("sector"),
        pl.lit(None, pl.Float64).alias("ttm_net_income_usd"),
        pl.lit(4, pl.Int32).alias("quarters_counted"),
        pl.lit("v1").alias("rule_version"),
    ).lazy()


def test_composition_by_hand_with_an_empty_cohort_and_missing_weights():
    d1, d2 = date(2025, 3, 3), date(2025, 3, 4)
    out = cohort_composition(
        composition_input(
            [
                # d1: 3 profitable (weights .5, .2, .1), 1 unprofitable (.2), no no_data member.
                ("r2k", "A", d1, 0.5, "profitable"),
                ("r2k", "B", d1, 0.2, "profitable"),
                ("r2k", "C", d1, 0.1, "profitable"),
                ("r2k", "D", d1, 0.2, "unprofitable"),
                # d2: nobody has a weight.
                ("r2k", "A", d2, None, "profitable"),
                ("r2k", "B", d2, None, "no_data"),
            ]
        )
    ).collect()
    got = {(r["session_date"], r["cohort"]): (r["members"], r["share_of_members"], r["share_of_weight"]) for r in out.to_dicts()}
    assert got[(d1, "profitable")] == (3, 0.75, pytest.approx(0.8))
    assert got[(d1, "unprofitable")] == (1, 0.25, pytest.approx(0.2))
    assert got[(d1, "no_data")] == (0, 0.0, 0.0)
    assert got[(d2, "profitable")] == (1, 0.5, None)
    assert got[(d2, "unprofitable")] == (0, 0.0, None)
    assert got[(d2, "no_data")] == (1, 0.5, None)
    assert out.height == 6


# properties ---------------------------------------------------------------------------------

PERIOD_ENDS = [date(2023, 12, 31), date(2024, 3, 31), date(2024, 6, 30), date(2024, 9, 30), date(2024, 12, 31),
               date(2025, 3, 31), date(2025, 6, 30)]
DAYS = calendar.sessions(date(2024, 10, 1), date(2025, 8, 29))

quarter = st.tuples(
    st.sampled_from(["AAA", "BBB", "CCC"]),
    st.sampled_from(PERIOD_ENDS),
    # report lag in days: None = unknown; <= 0 = an impossible report date (ignored); > 45 = a late filer
    st.one_of(st.none(), st.integers(-5, 100)),
    st.one_of(st.none(), st.sampled_from([-3.0, -1.0, 0.0, 1.0, 2.5])),
)


def to_fundamentals(quarters: list[tuple]) -> pl.LazyFrame:
    unique = {(s, pe): (s, pe, None if lag is None else pe + timedelta(days=lag), ni) for s, pe, lag, ni in quarters}
    return fundamentals(list(unique.values()))


def all_members() -> pl.LazyFrame:
    return pl.LazyFrame(
        [("r2k", s, DAYS[0], None) for s in ("AAA", "BBB", "CCC")], schema=MEMBERSHIP_SCHEMA, orient="row"
    )


def reference(quarters: pl.DataFrame, day: date, symbol: str) -> tuple[str, float | None, int]:
    """Rule v1 for one symbol and day, written the slow, obvious way."""
    counted = []
    for q in quarters.filter(pl.col("symbol") == symbol).to_dicts():
        if q["report_date"] is not None and q["report_date"] > q["period_end_date"]:
            available = q["report_date"]  # known: from the day it was reported, early or late
        else:
            available = q["period_end_date"] + timedelta(days=45)  # unknown (or impossible): the deadline
        if available <= day:
            counted.append(q)
    latest = sorted(counted, key=lambda q: q["period_end_date"])[-4:]
    if len(latest) < 4 or any(q["net_income_common_usd"] is None for q in latest):
        return "no_data", None, min(len(counted), 4)
    ttm = sum(q["net_income_common_usd"] for q in latest)
    return ("profitable" if ttm > 0 else "unprofitable"), ttm, 4


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(quarter, max_size=18))
def test_matches_a_slow_reference_of_rule_v1(quarters):
    fund = to_fundamentals(quarters)
    out = cohorts(all_members(), NO_HOLDINGS, fund, sessions_lf(DAYS)).collect()
    table = fund.collect()
    for day in DAYS[::9]:
        for symbol in ("AAA", "BBB", "CCC"):
            row = cohort_on(out, day, symbol)
            cohort, ttm, n = reference(table, day, symbol)
            assert (row["cohort"], row["quarters_counted"]) == (cohort, n), (day, symbol)
            assert row["ttm_net_income_usd"] == (None if ttm is None else pytest.approx(ttm))


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(quarter, max_size=18), st.integers(0, len(DAYS) - 1))
def test_sessions_from_a_later_day_get_the_rows_the_whole_range_gives(quarters, start):
    """A night computes cohorts for its sessions only, and ttm_events then keeps only the events
    those sessions can fall under (each symbol's last one on or before the first session, and the
    later ones): the rows must be those of the whole range, quarters out of period order included."""
    fund = to_fundamentals(quarters)
    whole = cohorts(all_members(), NO_HOLDINGS, fund, sessions_lf(DAYS)).collect()
    later = cohorts(all_members(), NO_HOLDINGS, fund, sessions_lf(DAYS[start:])).collect()
    expected = whole.filter(pl.col("session_date") >= DAYS[start])
    assert later.height == expected.height == 3 * (len(DAYS) - start)
    assert later.sort("symbol", "session_date").equals(expected.sort("symbol", "session_date"))


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(quarter, max_size=14), st.sampled_from(DAYS[20:-20]), st.lists(quarter, min_size=1, max_size=8))
def test_no_cohort_depends_on_a_quarter_reported_after_the_session(quarters, cutoff, later):
    """Add quarters that were not public on `cutoff`, and check that every cohort on sessions up
    to `cutoff` stays the same. Cycling through the ways a quarter can be not yet out:
    0. it ends after the cutoff (reported 10 days later);
    1. it ended fewer than 45 days before, report date unknown;
    2. it ended fewer than 45 days before, reported after the cutoff;
    3. a late filer: it ended 45 to 120 days before (its deadline has passed), reported after the
       cutoff; counting it by the deadline would use it before it was published;
    4. it ended fewer than 45 days before, with an impossible report date (before its period end).
    """
    base = to_fundamentals(quarters).collect()
    known = set(zip(base.get_column("symbol").to_list(), base.get_column("period_end_date").to_list()))
    extra = []
    for i, (symbol, _, lag, ni) in enumerate(later):
        spread = abs(lag or 0)
        case = i % 5
        if case == 0:
            period_end = cutoff + timedelta(days=1 + 7 * i)
            reported = period_end + timedelta(days=10)
        elif case == 3:
            period_end = cutoff - timedelta(days=45 + spread)
            reported = cutoff + timedelta(days=1 + spread % 20)
        else:
            period_end = cutoff - timedelta(days=(11 * i + spread) % 45)
            reported = {1: None, 2: cutoff + timedelta(days=1), 4: period_end - timedelta(days=1 + spread % 9)}[case]
        if (symbol, period_end) not in known:
            known.add((symbol, period_end))
            extra.append((symbol, period_end, reported, ni))
    grown = pl.concat([base, fundamentals(extra).collect()])
    before = cohorts(all_members(), NO_HOLDINGS, base.lazy(), sessions_lf(DAYS)).collect()
    after = cohorts(all_members(), NO_HOLDINGS, grown.lazy(), sessions_lf(DAYS)).collect()
    up_to = pl.col("session_date") <= cutoff
    assert before.filter(up_to).equals(after.filter(up_to))


weights = st.one_of(st.none(), st.floats(0.01, 5.0))


@settings(max_examples=examples(80), deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["r2k", "sp600"]), st.integers(0, 3), weights,
                  st.sampled_from(["profitable", "unprofitable", "no_data"])),
        min_size=1,
        max_size=40,
    )
)
def test_composition_shares_sum_to_one_per_universe_and_session(rows):
    frame = composition_input(
        [(u, f"S{i}", date(2025, 3, 3) + timedelta(days=d), w, c) for i, (u, d, w, c) in enumerate(rows)]
    )
    out = cohort_composition(frame).collect()
    sums = out.group_by("universe", "session_date").agg(
        pl.len().alias("cohorts"),
        pl.col("members").sum(),
        pl.col("share_of_members").sum(),
        pl.col("share_of_weight").sum().alias("weight_share"),
        pl.col("share_of_weight").null_count().alias("null_weight_shares"),
    )
    expected = frame.collect().group_by("universe", "session_date").agg(
        pl.len().alias("n"), pl.col("weight").count().alias("weighted")
    )
    for r in sums.join(expected, on=["universe", "session_date"]).to_dicts():
        assert r["cohorts"] == 3 and r["members"] == r["n"]
        assert r["share_of_members"] == pytest.approx(1.0)
        if r["weighted"]:
            assert r["weight_share"] == pytest.approx(1.0) and r["null_weight_shares"] == 0
        else:
            assert r["null_weight_shares"] == 3
