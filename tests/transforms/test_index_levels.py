"""The bounded-window columns of marts.index_daily (transforms/index_levels.py): the weekly change and
support / resistance from confirmed swing closes. Hand-computed cases, a loop written from the
definition, no look-ahead, and the real Yahoo history."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sources.base import BARS_SCHEMA
from transforms.index_daily import index_daily
from transforms.index_levels import (
    CHANGE_SESSIONS,
    INDEX_LEVELS_LOOKBACK_SESSIONS,
    LEVELS_WINDOW_SESSIONS,
    SWING_SESSIONS,
    index_levels,
)
from tests.helpers.bars import read_yahoo, weekdays
from tests.helpers.matrix import examples

LEVEL_COLUMNS = ["change_5d", "ret_5d", "support_level", "support_date", "resistance_level", "resistance_date"]


def bars(closes: list[float], symbol: str = "^X") -> pl.LazyFrame:
    days = weekdays(date(2024, 1, 2), len(closes))
    return pl.LazyFrame(
        {"symbol": [symbol] * len(closes), "session_date": days, "open": closes, "high": closes, "low": closes,
         "close": closes, "adj_close": closes, "volume": [None] * len(closes)},
        schema=BARS_SCHEMA,
    )  # fmt: skip


def levels(closes: list[float]) -> pl.DataFrame:
    return index_levels(bars(closes)).collect()


def by_hand(closes: list[float]) -> list[dict]:
    """The definitions of docs/definitions.md, one session at a time, reading only closes[: t + 1]."""
    k, w, n = SWING_SESSIONS, LEVELS_WINDOW_SESSIONS, CHANGE_SESSIONS
    out = []
    for t, close in enumerate(closes):
        seen = closes[: t + 1]
        before = seen[t - n] if t >= n else None
        row = {
            "change_5d": None if before is None else close - before,
            "ret_5d": None if before is None else close / before - 1,
            "support": None,
            "resistance": None,
        }
        lows, highs = [], []
        # A swing at i needs k closes on each side, all already seen: i + k <= t.
        for i in range(max(k, t - w + 1), t - k + 1):
            side = seen[i - k : i] + seen[i + 1 : i + k + 1]
            if all(seen[i] > c for c in side):
                highs.append((seen[i], i))
            if all(seen[i] < c for c in side):
                lows.append((seen[i], i))
        below = [(lvl, i) for lvl, i in lows if lvl < close]
        above = [(lvl, i) for lvl, i in highs if lvl > close]
        if below:
            best = max(lvl for lvl, _ in below)
            row["support"] = (best, max(i for lvl, i in below if lvl == best))
        if above:
            best = min(lvl for lvl, _ in above)
            row["resistance"] = (best, max(i for lvl, i in above if lvl == best))
        out.append(row)
    return out


def assert_matches_hand(closes: list[float], got: pl.DataFrame) -> None:
    days = got["session_date"].to_list()
    for t, (want, row) in enumerate(zip(by_hand(closes), got.iter_rows(named=True))):
        for col in ("change_5d", "ret_5d"):
            assert row[col] == (None if want[col] is None else pytest.approx(want[col], rel=1e-12)), (t, col)
        for name in ("support", "resistance"):
            expected = want[name]
            actual = (row[f"{name}_level"], row[f"{name}_date"])
            assert actual == ((None, None) if expected is None else (expected[0], days[expected[1]])), (t, name)


# The weekly change ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("closes", "change", "ret"),
    [
        # The VIX of a calm week: 20.00 -> 16.00 is 4 points down, -20%.
        ([20.0, 21.0, 19.5, 18.0, 17.5, 16.0], [None] * 5 + [-4.0], [None] * 5 + [-0.20]),
        # Each row compares with the row 5 before it, not with the first row.
        ([100.0, 100.0, 100.0, 100.0, 100.0, 110.0, 99.0], [None] * 5 + [10.0, -1.0], [None] * 5 + [0.10, -0.01]),
        ([50.0, 60.0, 70.0], [None] * 3, [None] * 3),
    ],
)
def test_weekly_change_is_against_the_close_five_sessions_earlier(closes, change, ret):
    out = levels(closes)
    assert out["change_5d"].to_list() == [None if c is None else pytest.approx(c) for c in change]
    assert out["ret_5d"].to_list() == [None if r is None else pytest.approx(r) for r in ret]


# Support and resistance, by hand -----------------------------------------------------------------

# Swing high 106 on row 5 (above 100 101 103 102 104 and 105 103 101 100 99): known from row 10.
# Swing low 99 on row 10 (below 106 105 103 101 100 and 101 104 107 108 106): known from row 15.
# Row 14's 108 is no swing high (110 follows within 5). Swing low 103 on row 17 (below 104 107 108
# 106 104 and 105 110 111 109 108): known from row 22. Swing high 111 on row 20: known from row 25.
ZIGZAG = [100, 101, 103, 102, 104, 106, 105, 103, 101, 100, 99, 101, 104, 107, 108, 106, 104, 103, 105, 110, 111, 109,
          108, 107, 106, 105]  # fmt: skip


@pytest.mark.parametrize(
    ("row", "support", "resistance"),
    [
        (9, None, None),  # row 5's swing high is confirmed by row 10, not yet here
        (10, None, (106, 5)),  # close 99: the swing high above it is known; the low of row 10 is not
        (14, None, None),  # close 108: above the only known swing (106); the low of row 10 needs row 15
        (15, (99, 10), None),  # close 106 equals the swing high: not strictly above, so no resistance
        (21, (99, 10), None),  # close 109: the low of row 17 needs row 22
        (22, (103, 17), None),  # close 108: the nearer of the two swing lows below it
        (25, (103, 17), (106, 5)),  # close 105: 106 is the nearest high above (111 is further)
    ],
)
def test_support_and_resistance_by_hand(row, support, resistance):
    out = levels([float(c) for c in ZIGZAG])
    days = out["session_date"].to_list()
    got = out.row(row, named=True)
    for name, want in (("support", support), ("resistance", resistance)):
        expected = (None, None) if want is None else (float(want[0]), days[want[1]])
        assert (got[f"{name}_level"], got[f"{name}_date"]) == expected, name


@pytest.mark.parametrize(
    ("closes", "why"),
    [
        ([1, 2, 3, 4, 5, 9, 9, 5, 4, 3, 2, 1, 2, 3], "a plateau of two equal closes is no swing high"),
        ([float(c) for c in range(1, 40)], "a steady rise has no swing at all"),
        ([1, 6, 5, 4, 3, 2, 1, 0.5, 0.4, 0.3, 0.2], "a swing needs 5 sessions before it: 6 has one"),
        ([5, 4, 3, 2, 1, 6, 5, 4, 3, 2], "a swing needs 5 sessions after it: 6 has four so far"),
    ],
)
def test_no_swing_no_level(closes, why):
    out = levels([float(c) for c in closes])
    assert out["resistance_level"].null_count() == len(closes), why
    if "rise" in why:
        assert out["support_level"].null_count() == len(closes)


def test_a_swing_leaves_the_window_after_126_sessions():
    # Falling to 190 on row 10, then rising one point a session: the only swing is the low of row 10.
    closes = [200.0 - i for i in range(11)] + [190.0 + i for i in range(1, 140)]
    out = levels(closes)
    support = out["support_level"].to_list()
    assert support[14] is None  # row 15 is the 5th session after the low
    assert support[15] == 190.0
    last_in = 10 + LEVELS_WINDOW_SESSIONS - 1  # the window is the last 126 sessions, today included
    assert support[last_in] == 190.0 and support[last_in + 1] is None
    assert out["support_date"][last_in] == out["session_date"][10]


def test_two_swings_at_one_level_name_the_later_date():
    closes = [10.0, 9, 8, 7, 6, 5, 6, 7, 8, 9, 10, 9, 8, 7, 6, 5, 6, 7, 8, 9, 10, 11]
    out = levels(closes)
    assert out["support_level"][21] == 5.0
    assert out["support_date"][21] == out["session_date"][15]


# Against the definition, and no look-ahead ------------------------------------------------------

walks = st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=320).map(
    lambda steps: [float(100 + sum(steps[: i + 1])) for i in range(len(steps))]
)


@settings(max_examples=examples(40), deadline=None)
@given(walks)
def test_matches_a_loop_written_from_the_definition(closes):
    # Integer steps of at most 3 points make ties and plateaus common.
    closes = [c if c > 0 else 1.0 for c in closes]
    assert_matches_hand(closes, levels(closes))


@settings(max_examples=examples(60), deadline=None)
@given(walks, st.integers(min_value=1, max_value=320))
def test_appending_sessions_never_changes_earlier_rows(closes, cut):
    closes = [c if c > 0 else 1.0 for c in closes]
    cut = min(cut, len(closes))
    full = index_daily(bars(closes)).collect()
    prefix = index_daily(bars(closes[:cut])).collect()
    assert full.head(cut).select(LEVEL_COLUMNS).equals(prefix.select(LEVEL_COLUMNS))
    # Look-ahead would show in the last sessions before a cut, where a swing is not confirmed yet:
    # every cut there.
    for end in range(max(1, len(closes) - 2 * SWING_SESSIONS - 1), len(closes)):
        assert full.head(end).select(LEVEL_COLUMNS).equals(levels(closes[:end]).select(LEVEL_COLUMNS)), end


def test_a_row_needs_only_the_lookback_window():
    # Recomputing the last sessions from the look-back window alone gives the same rows: what an
    # incremental night will do.
    closes = [100 + ((i * 37) % 23) - ((i * 11) % 17) + i * 0.1 for i in range(400)]
    full = levels(closes)
    start = 400 - 20 - INDEX_LEVELS_LOOKBACK_SESSIONS
    window = index_levels(bars(closes).slice(start)).collect()
    assert window.tail(20).select(LEVEL_COLUMNS).equals(full.tail(20).select(LEVEL_COLUMNS))
    # And the window is not longer than needed: the low of row 10 is the support of row 135 (the
    # far end of its 126-session window) only with row 5, 130 sessions back, in view.
    dip = [200.0 - i for i in range(11)] + [190.0 + i for i in range(1, 126)]
    assert levels(dip)["support_level"][-1] == 190.0
    last = len(dip) - 1
    assert levels(dip[last - INDEX_LEVELS_LOOKBACK_SESSIONS :])["support_level"][-1] == 190.0
    assert levels(dip[last - INDEX_LEVELS_LOOKBACK_SESSIONS + 1 :])["support_level"][-1] is None


def test_symbols_are_computed_independently():
    a, b = [float(c) for c in ZIGZAG], [float(200 - c) for c in ZIGZAG]
    both = index_levels(pl.concat([bars(b, "^B"), bars(a, "^A")])).collect()
    assert both.filter(pl.col("symbol") == "^A").equals(index_levels(bars(a, "^A")).collect())
    assert both.filter(pl.col("symbol") == "^B").equals(index_levels(bars(b, "^B")).collect())


# Real history ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> pl.DataFrame:
    return index_daily(pl.concat([read_yahoo(s) for s in ("^RUT", "^VIX")])).collect()


def test_real_vix_weekly_change(real):
    # ^VIX.csv: 22.52 on 2022-11-11, 23.12 on 2022-11-18.
    row = real.filter(pl.col("symbol") == "^VIX", pl.col("session_date") == date(2022, 11, 18)).row(0, named=True)
    assert row["change_5d"] == pytest.approx(0.60, abs=1e-9)
    assert row["ret_5d"] == pytest.approx(23.12 / 22.52 - 1, abs=1e-12)


def test_real_russell_levels_match_the_definition(real):
    rut = real.filter(pl.col("symbol") == "^RUT", pl.col("session_date") >= date(2019, 1, 1))
    closes = rut["close"].to_list()
    # The loop reads the whole 2019-2022 stretch, so the early rows differ from the full history's
    # (their window starts earlier there): compare from one look-back window in.
    got = index_levels(read_yahoo("^RUT").filter(pl.col("session_date") >= date(2019, 1, 1))).collect()
    assert_matches_hand(closes, got)
    tail = rut.slice(INDEX_LEVELS_LOOKBACK_SESSIONS).select(LEVEL_COLUMNS)
    assert tail.equals(got.slice(INDEX_LEVELS_LOOKBACK_SESSIONS).select(LEVEL_COLUMNS))
    assert rut["support_level"].null_count() < rut.height // 4
    bracket = rut.filter(pl.col("support_level").is_not_null() & pl.col("resistance_level").is_not_null())
    assert (bracket["support_level"] < bracket["close"]).all() and (bracket["close"] < bracket["resistance_level"]).all()
