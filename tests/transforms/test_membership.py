"""core.membership from holdings snapshots: hand-computed cases, a property over random snapshot
histories, and the fourteen real monthly IJR files."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ground import calendar
from sources.ishares import parse_holdings
from sources.symbols import to_yahoo
from transforms.membership import MEMBERSHIP_SCHEMA, membership
from tests.helpers.matrix import examples

IJR_MONTHLY = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "ishares-ijr").glob("IJR_holdings_20??-??-??.csv"))


def _sessions(start: date, end: date) -> pl.LazyFrame:
    return pl.DataFrame({"session_date": calendar.sessions(start, end)}, schema={"session_date": pl.Date}).lazy()


def _holdings(snapshots: dict[date, list[str]], universe: str = "u") -> pl.LazyFrame:
    rows = [(universe, d, s) for d, syms in snapshots.items() for s in syms]
    return pl.DataFrame(rows, schema={"universe": pl.String, "as_of_date": pl.Date, "symbol": pl.String}, orient="row").lazy()


def _run(snapshots, start=date(2024, 1, 1), end=date(2024, 3, 29), universe="u") -> list[tuple]:
    out = membership(_holdings(snapshots, universe), _sessions(start, end)).collect()
    assert dict(out.schema) == MEMBERSHIP_SCHEMA
    return out.select("symbol", "valid_from_date", "valid_to_date").rows()


D = date
# January 2024: Mon 1 holiday, sessions 2-5, 8-12, 16-19 (15th MLK day), 22-26, 29-31.
CASES = [
    pytest.param({D(2024, 1, 2): ["A"]}, [("A", D(2024, 1, 2), None)], id="single-snapshot"),
    pytest.param({D(2024, 1, 6): ["A"]}, [("A", D(2024, 1, 8), None)], id="saturday-as-of-starts-monday"),
    pytest.param({D(2024, 1, 1): ["A"]}, [("A", D(2024, 1, 2), None)], id="holiday-as-of"),
    pytest.param(
        {D(2024, 1, 2): ["A", "B"], D(2024, 1, 16): ["A"]},
        [("A", D(2024, 1, 2), None), ("B", D(2024, 1, 2), D(2024, 1, 12))],
        id="drop-ends-before-mlk-day",
    ),
    pytest.param(
        {D(2024, 1, 31): ["A", "B"], D(2024, 2, 29): ["B"], D(2024, 3, 28): ["A", "B"]},
        [("A", D(2024, 1, 31), D(2024, 2, 28)), ("A", D(2024, 3, 28), None), ("B", D(2024, 1, 31), None)],
        id="re-add-opens-a-new-interval",
    ),
    pytest.param(
        {D(2024, 1, 2): ["A"], D(2024, 1, 3): ["A", "B"], D(2024, 1, 4): ["A"]},
        [("A", D(2024, 1, 2), None), ("B", D(2024, 1, 3), D(2024, 1, 3))],
        id="one-day-member",
    ),
    pytest.param(
        # Friday has A, Saturday lacks it, Sunday has it again: no session passed without A.
        {D(2024, 1, 5): ["A", "B"], D(2024, 1, 6): ["B"], D(2024, 1, 7): ["A", "B"]},
        [("A", D(2024, 1, 5), None), ("B", D(2024, 1, 5), None)],
        id="weekend-gap-merges",
    ),
    pytest.param(
        # C is only in the Saturday snapshot, replaced on Sunday: it never held a session.
        {D(2024, 1, 5): ["A"], D(2024, 1, 6): ["A", "C"], D(2024, 1, 7): ["A"]},
        [("A", D(2024, 1, 5), None)],
        id="no-session-interval-dropped",
    ),
    pytest.param(
        {D(2024, 1, 2): ["A", "B"], D(2024, 4, 1): ["A"]},
        [("A", D(2024, 1, 2), None), ("B", D(2024, 1, 2), D(2024, 3, 28))],
        id="next-snapshot-after-loaded-sessions",  # 2024-03-29 is Good Friday
    ),
    pytest.param(
        {D(2024, 1, 2): ["A"], D(2024, 4, 1): ["A", "Z"]},
        [("A", D(2024, 1, 2), None)],
        id="start-after-loaded-sessions-not-emitted",
    ),
]


@pytest.mark.parametrize("snapshots, expected", CASES)
def test_hand_computed(snapshots, expected):
    assert _run(snapshots) == expected


def test_universes_are_independent():
    h = pl.concat(
        [
            _holdings({D(2024, 1, 2): ["A", "B"], D(2024, 1, 31): ["A"]}, "r2k").collect(),
            _holdings({D(2024, 1, 2): ["B"]}, "sp6").collect(),
        ]
    )
    out = membership(h.lazy(), _sessions(D(2024, 1, 1), D(2024, 2, 29))).collect()
    assert out.rows() == [
        ("r2k", "A", D(2024, 1, 2), None),
        ("r2k", "B", D(2024, 1, 2), D(2024, 1, 30)),
        # B is in sp600's newest snapshot (its only one): still a member there.
        ("sp6", "B", D(2024, 1, 2), None),
    ]


def test_extra_columns_and_duplicate_rows_are_ignored():
    h = pl.DataFrame(
        {
            "universe": ["u", "u", "u"],
            "as_of_date": [D(2024, 1, 2)] * 3,
            "symbol": ["A", "A", "B"],
            "weight_pct": [1.0, 1.0, 2.0],
        }
    )
    out = membership(h.lazy(), _sessions(D(2024, 1, 1), D(2024, 1, 31))).collect()
    assert out.height == 2


@settings(max_examples=examples(60), deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=8),
    presence=st.lists(st.lists(st.booleans(), min_size=8, max_size=8), min_size=4, max_size=4),
)
def test_membership_matches_the_snapshot_in_force(gaps, presence):
    """On every session, a symbol is a member iff the newest snapshot dated on or before that
    session holds it (and never before the first snapshot); intervals never overlap."""
    start = D(2024, 1, 1)
    dates, d = [], start
    for g in gaps:
        d += timedelta(days=g)
        dates.append(d)
    symbols = [f"S{i}" for i in range(len(presence))]
    snaps = {day: [s for s, row in zip(symbols, presence) if row[k]] for k, day in enumerate(dates)}
    # Every snapshot holds something (an empty fund file does not exist), else the check is moot.
    snaps = {day: syms or ["ANCHOR"] for day, syms in snaps.items()}
    end = dates[-1] + timedelta(days=10)
    out = membership(_holdings(snaps), _sessions(start, end)).collect()
    days = calendar.sessions(start, end)
    for symbol in set(symbols) | {"ANCHOR"}:
        ivs = out.filter(pl.col("symbol") == symbol).select("valid_from_date", "valid_to_date").rows()
        for (_, to1), (from2, _) in zip(ivs, ivs[1:]):
            assert to1 is not None and to1 < from2
        for day in days:
            in_force = [k for k in sorted(snaps) if k <= day]
            expected = bool(in_force) and symbol in snaps[in_force[-1]]
            actual = any(f <= day and (t is None or day <= t) for f, t in ivs)
            assert actual == expected, (symbol, day, ivs)


# the fourteen real IJR month ends -----------------------------------------------------------------


@pytest.fixture(scope="module")
def ijr():
    assert len(IJR_MONTHLY) == 14
    holdings = pl.concat(
        [parse_holdings(p.read_bytes(), universe="sp600", source_name=p.name).holdings for p in IJR_MONTHLY]
    )
    members = membership(holdings.lazy(), _sessions(D(2017, 1, 3), D(2018, 4, 30))).collect()
    return holdings, members


def _raw_symbols(path: Path) -> set[str]:
    """Members of one file read with the csv module: equities with a ticker, escrow lines aside."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    start = next(i for i, r in enumerate(rows) if r and r[0] == "Ticker")
    h = rows[start]
    t, a, n = h.index("Ticker"), h.index("Asset Class"), h.index("Name")
    return {
        to_yahoo(r[t])[0]
        for r in rows[start + 1 :]
        if len(r) == len(h) and r[a] == "Equity" and r[t] != "-" and "ESCROW" not in r[n]
    }


def test_ijr_symbols_in_all_fourteen_months(ijr):
    _, members = ijr
    raw = [_raw_symbols(p) for p in IJR_MONTHLY]
    always = set.intersection(*raw)
    assert len(always) == 525
    whole = members.filter((pl.col("valid_from_date") == D(2017, 2, 28)) & pl.col("valid_to_date").is_null())
    assert set(whole.get_column("symbol")) == always
    assert members.get_column("symbol").n_unique() == len(set.union(*raw)) == 682


def test_ijr_moog_is_one_interval_across_its_ticker_change(ijr):
    holdings, members = ijr
    # MOG.A in Feb and Mar 2017, MOGA from Apr 2017: by ticker it would drop and re-join.
    tickers = holdings.filter(pl.col("symbol") == "MOG-A").group_by("ticker").len().sort("ticker").rows()
    assert tickers == [("MOG.A", 2), ("MOGA", 12)]
    assert members.filter(pl.col("symbol") == "MOG-A").select("valid_from_date", "valid_to_date").rows() == [
        (D(2017, 2, 28), None)
    ]


@pytest.mark.parametrize(
    "before, after, last_session_before",
    [
        (D(2017, 4, 28), D(2017, 5, 31), D(2017, 5, 30)),  # Memorial Day 2017-05-29
        (D(2017, 11, 30), D(2017, 12, 29), D(2017, 12, 28)),
        (D(2018, 2, 28), D(2018, 3, 29), D(2018, 3, 28)),
    ],
)
def test_ijr_adds_and_drops_between_two_months(ijr, before, after, last_session_before):
    _, members = ijr
    by_date = {date.fromisoformat(p.stem[-10:]): p for p in IJR_MONTHLY}
    old, new = _raw_symbols(by_date[before]), _raw_symbols(by_date[after])
    dropped = set(members.filter(pl.col("valid_to_date") == last_session_before).get_column("symbol"))
    added = set(members.filter(pl.col("valid_from_date") == after).get_column("symbol"))
    assert dropped == old - new and added == new - old
    assert dropped and added


def test_ijr_may_2017_changes_by_name(ijr):
    _, members = ijr
    dropped = members.filter(pl.col("valid_to_date") == D(2017, 5, 30)).get_column("symbol").sort().to_list()
    added = members.filter(pl.col("valid_from_date") == D(2017, 5, 31)).get_column("symbol").sort().to_list()
    assert dropped == ["CGI", "EXAR", "FNBC", "HW", "TDW", "UTEK"]
    assert added == ["IRT", "LMAT", "LNTH", "MXL", "NE", "RPT"]


def test_ijr_interval_counts_and_open_ends(ijr):
    holdings, members = ijr
    newest = set(holdings.filter(pl.col("as_of_date") == D(2018, 3, 29)).get_column("symbol"))
    assert set(members.filter(pl.col("valid_to_date").is_null()).get_column("symbol")) == newest
    assert len(newest) == 602
    # No symbol left and came back within these 14 months: one interval per symbol.
    assert members.height == 682
    closed = members.filter(pl.col("valid_to_date").is_not_null())
    assert closed.height == 80
    assert (closed.get_column("valid_to_date") >= closed.get_column("valid_from_date")).all()
    # Every closed interval ends on the session before some month-end snapshot.
    month_ends = [date.fromisoformat(p.stem[-10:]) for p in IJR_MONTHLY]
    assert set(closed.get_column("valid_to_date")) <= {calendar.previous_session(d) for d in month_ends}
