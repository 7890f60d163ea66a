"""marts.relative_performance: spreads, streaks and longest_since, by hand and by property."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.index_daily import index_daily
from transforms.relative_performance import _longest_since_days, ladder, relative_performance
from tests.helpers.bars import read_yahoo
from tests.helpers.contract import sql_columns
from tests.helpers.matrix import examples

DAY0 = date(2024, 1, 2)


def day(i: int) -> date:
    return DAY0 + timedelta(days=i)


def marts_daily(rets: dict[str, list[float | None]], ytd: dict[str, list[float | None]] | None = None) -> pl.LazyFrame:
    """Minimal marts.index_daily rows (the columns relative_performance reads), one per day."""
    rows = []
    for symbol, series in rets.items():
        for i, r in enumerate(series):
            y = (ytd or {}).get(symbol, [None] * len(series))[i]
            rows.append({"symbol": symbol, "session_date": day(i), "ret_1d": r, "ytd_return": y})
    return pl.LazyFrame(
        rows, schema={"symbol": pl.String, "session_date": pl.Date, "ret_1d": pl.Float64, "ytd_return": pl.Float64}
    )


def from_pattern(pattern: str) -> pl.DataFrame:
    """W: lead beats lag; L: lead trails; T: a tie (not a win)."""
    lead = {"W": 0.02, "L": -0.01, "T": 0.005}
    lag = {"W": 0.01, "L": 0.01, "T": 0.005}
    frame = marts_daily({"^A": [lead[c] for c in pattern], "^B": [lag[c] for c in pattern]})
    return relative_performance(frame, [("^A", "^B")]).collect()


def test_columns_match_the_warehouse_contract():
    out = from_pattern("WLW")
    assert out.schema == pl.Schema(sql_columns("marts.relative_performance"))
    empty = relative_performance(marts_daily({"^A": [0.1]}), []).collect()
    assert empty.schema == out.schema and empty.height == 0


def test_spread_and_ytd_spread():
    frame = marts_daily(
        {"^A": [None, 0.02, -0.01], "^B": [None, 0.005, 0.01]},
        ytd={"^A": [None, 0.10, 0.09], "^B": [None, 0.04, None]},
    )
    out = relative_performance(frame, [("^A", "^B")]).collect()
    # The first session (no ret_1d) is not a row.
    assert out["session_date"].to_list() == [day(1), day(2)]
    assert out["spread"].to_list() == pytest.approx([0.015, -0.02])
    assert out["outperformed"].to_list() == [True, False]
    assert out["ytd_spread"].to_list() == [pytest.approx(0.06), None]
    # Both sides' YTD returns stay in the row beside their spread (the headlines read them there).
    assert out["lead_ytd_return"].to_list() == [0.10, 0.09]
    assert out["lag_ytd_return"].to_list() == [0.04, None]


@pytest.mark.parametrize(
    ("pattern", "streaks"),
    [
        ("WWLWWW", [1, 2, 0, 1, 2, 3]),
        ("LLL", [0, 0, 0]),
        ("WTW", [1, 0, 1]),  # equal returns are not outperformance
        ("WWWWW", [1, 2, 3, 4, 5]),
    ],
)
def test_streak_counts_consecutive_wins(pattern, streaks):
    assert from_pattern(pattern)["streak"].to_list() == streaks


@pytest.mark.parametrize(
    ("pattern", "since"),
    [
        # streaks 1 2 3 0 1 0 1 2 3: the second 1 looks back to day 2 (the 3-run); the third run's
        # 1 finds day 4, its 2 and 3 skip the 1-run and find the end of the 3-run (day 2).
        ("WWWLWLWWW", [None, None, None, None, 2, None, 4, 2, 2]),
        # streaks 1 2 0 1 2 3 0 1 2: 3 beats everything before it (null); the last run finds day 5.
        ("WWLWWWLWW", [None, None, None, 1, 1, None, None, 5, 5]),
        # A tie ends a run like a loss; equal length counts ("at least").
        ("WWTWW", [None, None, None, 1, 1]),
        ("LLL", [None, None, None]),
        # Several earlier runs: the latest one that was long enough wins, not the longest.
        ("WWWWLWWLWLWWW", [None, None, None, None, None, 3, 3, None, 6, None, 8, 6, 3]),
    ],
)
def test_longest_since_hand_cases(pattern, since):
    out = from_pattern(pattern)
    assert out["longest_since"].to_list() == [None if s is None else day(s) for s in since]


def test_absent_symbol_yields_no_rows_and_pairs_are_independent():
    frame = marts_daily({"^A": [0.01, 0.02], "^B": [0.0, 0.03]})
    out = relative_performance(frame, [("^A", "^B"), ("^A", "^MISSING"), ("^B", "^A")]).collect()
    assert out.select("lead_symbol", "lag_symbol").unique(maintain_order=True).rows() == [("^A", "^B"), ("^B", "^A")]
    assert out.filter(pl.col("lead_symbol") == "^B")["outperformed"].to_list() == [False, True]


def test_sessions_missing_for_one_index_are_not_rows():
    frame = pl.concat(
        [
            marts_daily({"^A": [0.01, 0.02, 0.03, 0.04]}),
            marts_daily({"^B": [0.0, 0.0, 0.0, 0.0]}).filter(pl.col("session_date") != day(2)),
        ]
    )
    out = relative_performance(frame, [("^A", "^B")]).collect()
    assert out["session_date"].to_list() == [day(0), day(1), day(3)]
    # The streak runs over the pair's own sessions.
    assert out["streak"].to_list() == [1, 2, 3]


def test_relative_level_multiplies_the_ratio_of_growth_from_the_first_row():
    frame = marts_daily({"^A": [None, 0.10, -0.05, 0.02], "^B": [None, 0.0, 0.05, 0.02]})
    out = relative_performance(frame, [("^A", "^B")]).collect()
    # 1.10 / 1.00 = 1.1; then * 0.95 / 1.05; then * 1.02 / 1.02 (equal returns leave it unchanged).
    expected = [1.1, 1.1 * 0.95 / 1.05, 1.1 * 0.95 / 1.05]
    assert out["relative_level"].to_list() == pytest.approx(expected, rel=1e-15)
    # Rebased on the first row, the level is the two indexes' growth since it, one over the other.
    assert out["relative_level"][2] / out["relative_level"][0] == pytest.approx((0.95 * 1.02) / (1.05 * 1.02), rel=1e-15)


def test_relative_level_skips_sessions_missing_for_one_index():
    frame = pl.concat(
        [
            marts_daily({"^A": [0.01, 0.02, 0.03]}),
            marts_daily({"^B": [0.0, 0.01, 0.0]}).filter(pl.col("session_date") != day(1)),
        ]
    )
    out = relative_performance(frame, [("^A", "^B")]).collect()
    assert out["relative_level"].to_list() == pytest.approx([1.01, 1.01 * 1.03], rel=1e-15)


def test_a_stored_level_that_is_not_a_positive_number_is_refused():
    frame = marts_daily({"^A": [0.01, 0.02], "^B": [0.0, 0.0]})
    state = pl.LazyFrame(
        {"lead_symbol": ["^A"], "lag_symbol": ["^B"], "session_date": [day(0)], "streak": [1], "relative_level": [None]},
        schema={"lead_symbol": pl.String, "lag_symbol": pl.String, "session_date": pl.Date, "streak": pl.Int32, "relative_level": pl.Float64},
    )
    with pytest.raises(ValueError, match=r"\^A/\^B on 2024-01-02 has relative_level None"):
        relative_performance(frame, [("^A", "^B")], state=state).collect()


def test_accepts_settings_pairs():
    from ground.settings import Pair

    frame = marts_daily({"^A": [0.01], "^B": [0.0]})
    out = relative_performance(frame, [Pair.parse("^A/^B")]).collect()
    assert out.height == 1 and out["lead_symbol"][0] == "^A"


# Properties -------------------------------------------------------------------------------------


def brute_longest_since(streak: list[int]) -> list[int]:
    out = []
    for t, s in enumerate(streak):
        found = -1
        if s > 0:
            for u in range(t - s, -1, -1):  # strictly before the streak began at t - s + 1
                if streak[u] >= s:
                    found = u
                    break
        out.append(found)
    return out


@settings(max_examples=examples(200), deadline=None)
@given(st.text(alphabet="WLT", min_size=0, max_size=120))
def test_streak_and_longest_since_properties(pattern):
    out = from_pattern(pattern)
    n = len(pattern)
    assert out.height == n
    streaks = out["streak"].to_list()
    for i, (s, since, won) in enumerate(zip(streaks, out["longest_since"], out["outperformed"])):
        assert 0 <= s <= i + 1 <= n
        assert (s > 0) == won
        if i > 0 and s > 0:
            assert s == streaks[i - 1] + 1
        if since is not None:
            start = day(i - s + 1)
            assert since < start
    assert [None if i < 0 else day(i) for i in brute_longest_since(streaks)] == out["longest_since"].to_list()


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=1), max_size=200))
def test_longest_since_index_equals_brute_force(wins):
    import numpy as np

    streak, run = [], 0
    for w in wins:
        run = run + 1 if w else 0
        streak.append(run)
    days = np.arange(len(streak), dtype=np.int64)  # positions as days: the answer is a position
    assert _longest_since_days(np.array(streak, dtype=np.int64), days).tolist() == brute_longest_since(streak)


@settings(max_examples=examples(200), deadline=None)
@given(wins=st.lists(st.booleans(), min_size=2, max_size=120), cut=st.integers(1, 119))
def test_longest_since_continues_from_a_carried_ladder(wins, cut):
    """A night: the rows after a cut, from the streak before it and the ladder of the runs that
    ended before the current run began, equal the whole pass."""
    import numpy as np

    cut = min(cut, len(wins) - 1)
    streak, run = [], 0
    for w in wins:
        run = run + 1 if w else 0
        streak.append(run)
    streak = np.array(streak, dtype=np.int64)
    days = np.arange(len(streak), dtype=np.int64)
    whole = _longest_since_days(streak, days)
    # The stored trailing run (ending at cut - 1) began at `begin`: the ladder holds the rows before it.
    length = int(streak[cut - 1])
    begin = cut - length
    carried = ladder(streak[:begin], days[:begin])
    night = _longest_since_days(streak[cut:], days[cut:], carried, (length, cut - 1))
    assert night.tolist() == whole[cut:].tolist()


@settings(max_examples=examples(100), deadline=None)
@given(
    rets=st.lists(
        st.tuples(st.floats(-0.2, 0.2, allow_nan=False), st.floats(-0.2, 0.2, allow_nan=False)), min_size=2, max_size=80
    ),
    cuts=st.lists(st.integers(0, 79), max_size=4),
)
def test_a_night_continues_relative_level_and_streak_bit_for_bit(rets, cuts):
    """Nights cut anywhere, each continuing from the row a stored table holds before it (its
    streak and level), give exactly the whole-history rows: the level's product is one chain."""
    frame = marts_daily({"^A": [a for a, _ in rets], "^B": [b for _, b in rets]})
    pair = [("^A", "^B")]
    whole = relative_performance(frame, pair).collect()
    stored = whole.head(0)
    for cut in sorted({c % len(rets) for c in cuts} | {len(rets)}):
        last = stored.tail(1)
        state = last.select("lead_symbol", "lag_symbol", "session_date", "streak", "relative_level")
        window = frame if last.height == 0 else frame.filter(pl.col("session_date") > last["session_date"][0])
        night = relative_performance(
            window.filter(pl.col("session_date") < day(cut)), pair, state=state.lazy() if last.height else None
        ).collect()
        stored = pl.concat([stored, night])
    assert stored.select("session_date", "streak", "relative_level").equals(whole.select("session_date", "streak", "relative_level"))


# Real history -----------------------------------------------------------------------------------


def test_russell_2000_vs_sp500_on_real_history():
    daily = index_daily(pl.concat([read_yahoo("^RUT"), read_yahoo("^GSPC")]))
    out = relative_performance(daily, [("^RUT", "^GSPC"), ("^RUT", "^SP600")]).collect()
    assert out.height == 5758  # every session but the first; ^SP600 is not in the files
    longest = out.sort("streak", "session_date").tail(1).to_dicts()[0]
    # The longest run of 2000-2022: 13 sessions ending 2008-06-06, longer than any before it.
    assert longest["streak"] == 13 and longest["session_date"] == date(2008, 6, 6)
    assert longest["longest_since"] is None
    dates = out["session_date"].to_list()
    brute = [None if i < 0 else dates[i] for i in brute_longest_since(out["streak"].to_list())]
    assert brute == out["longest_since"].to_list()
