"""A split that Yahoo back-adjusts: every earlier price changes, not only the re-fetched overlap.

The source here behaves as Yahoo does (Close split-adjusted, Adj Close also dividend-adjusted, both
back to the first bar): once the split's ex-date is inside the fetched period, the symbol's earlier
bars come back divided by the ratio. Without a whole-history re-fetch the warehouse would keep the
old prices before the overlap window and show a false -75% day where old and new rows meet.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from prefect import flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from flows.run import run_load
from pipeline import planning, progress
from small_market import SmallSample, small_settings
from sources.base import FAILURES_SCHEMA, Fetched

# Runs a flow: nightly loads on a backfilled home (small_baseline).
pytestmark = pytest.mark.slow

SPLIT_DAY = date(2025, 6, 23)  # the first session after the baseline's night (2025-06-20)
NEXT = date(2025, 6, 24)
RATIO = 4.0


class BackAdjusting(SmallSample):
    """The small market, with a 4:1 split of `symbol` on SPLIT_DAY as Yahoo would serve it on the
    night `today`: from the split on, every earlier bar comes back divided, whatever range is asked."""

    def __init__(self, symbol: str) -> None:
        super().__init__()
        self.symbol = symbol
        self.today = SPLIT_DAY
        self.fail_long_fetches = False  # a whole-history fetch of `symbol` fails (network, say)
        self.calls: list[tuple[date, date, bool]] = []

    def bars(self, symbols, start, end):
        got = super().bars(symbols, start, end)
        if self.symbol not in symbols:
            return got
        long = start < date(2025, 6, 1)
        self.calls.append((start, end, long))
        if long and self.fail_long_fetches:
            mine = pl.col("symbol") == self.symbol
            failure = pl.DataFrame([(self.symbol, "bars", "network: connection reset")], schema=FAILURES_SCHEMA, orient="row")
            return Fetched(bars=got.bars.filter(~mine), actions=got.actions.filter(~mine), failures=failure)
        if self.today < SPLIT_DAY:
            return got
        before = (pl.col("symbol") == self.symbol) & (pl.col("session_date") < SPLIT_DAY)
        prices = ["open", "high", "low", "close", "adj_close"]
        bars = got.bars.with_columns(
            *[pl.when(before).then(pl.col(c) / RATIO).otherwise(pl.col(c)).alias(c) for c in prices],
            pl.when(before).then(pl.col("volume") * int(RATIO)).otherwise(pl.col("volume")).alias("volume"),
        )
        actions = got.actions
        if start <= SPLIT_DAY <= end:
            split = pl.DataFrame({"symbol": [self.symbol], "ex_date": [SPLIT_DAY], "action": ["split"], "value": [RATIO]})
            actions = pl.concat([actions, split.cast(actions.schema)])
        return Fetched(bars=bars, actions=actions, failures=got.failures)


class Recorder:
    def __init__(self) -> None:
        self.starts: list[int] = []
        self.steps: list[str] = []
        self.grown = 0

    def start(self, label: str, total: int) -> None:
        self.starts.append(total)

    def advance(self, label: str) -> None:
        self.steps.append(label)

    def grow(self, units: int) -> None:
        self.grown += units


def load(home: Path, source, as_of: date) -> dict:
    @flow(name="rebase-test", task_runner=ThreadPoolTaskRunner(max_workers=2))
    def one() -> dict:
        return run_load(small_settings(home), "nightly", as_of=as_of, source=source)

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return one()


def query(home: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture
def home(small_baseline, tmp_path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(small_baseline, home, symlinks=True)
    return home


def test_a_split_refetches_the_whole_history_and_a_failed_refetch_is_retried(home):
    symbol, first = query(
        home,
        "SELECT symbol, min(session_date) FROM raw.equity_bars WHERE symbol NOT IN "
        "(SELECT symbol FROM raw.corporate_actions WHERE action = 'split') GROUP BY symbol ORDER BY symbol LIMIT 1",
    )[0]
    stored_before = dict(query(home, "SELECT session_date, close FROM raw.equity_bars WHERE symbol = ?", [symbol]))
    source = BackAdjusting(symbol)

    # Night 1: the split arrives, the whole-history re-fetch fails. The night loads; the symbol is
    # remembered as needing a rebase.
    source.fail_long_fetches, source.today = True, SPLIT_DAY
    load(home, source, SPLIT_DAY)
    assert query(home, "SELECT consecutive_failures, last_error FROM meta.fetch_state WHERE symbol = ? AND dataset = 'rebase'", [symbol]) == [
        (1, "whole-history re-fetch after a new split or dividend failed: network: connection reset")
    ]
    assert query(home, "SELECT close FROM raw.equity_bars WHERE symbol = ? AND session_date = ?", [symbol, first]) == [
        (stored_before[first],)
    ]

    # Night 2: the re-fetch works. Every stored bar before the split is on the new basis.
    source.fail_long_fetches, source.today = False, NEXT
    source.calls.clear()
    seen = Recorder()
    with progress.listening(seen):
        load(home, source, NEXT)
    # The CLI's bar: every unit announced (the re-fetch added one) was done, the export last (these
    # loads write no report).
    assert len(seen.starts) == 1 and seen.grown == 1
    assert len(seen.steps) == seen.starts[0] + seen.grown and seen.steps[-1] == "exported"
    assert any(long for _, _, long in source.calls)
    assert query(home, "SELECT consecutive_failures FROM meta.fetch_state WHERE symbol = ? AND dataset = 'rebase'", [symbol]) == [(0,)]
    stored = dict(query(home, "SELECT session_date, close FROM raw.equity_bars WHERE symbol = ? AND session_date < ?", [symbol, SPLIT_DAY]))
    assert stored.keys() == {d for d in stored_before if d < SPLIT_DAY}
    for day, close in stored.items():
        assert close == pytest.approx(stored_before[day] / RATIO), day
    # No false crash where the old rows would have met the new ones: the largest daily move stays
    # what the market made (the small market has no -60% day).
    worst = query(home, "SELECT min(ret_1d) FROM core.equity_returns WHERE symbol = ?", [symbol])[0][0]
    assert worst > -0.6
    assert query(home, "SELECT value FROM raw.corporate_actions WHERE symbol = ? AND action = 'split'", [symbol]) == [(RATIO,)]
    # Recorded as what it is: history revised, a warning that does not stop the night.
    warned = query(
        home,
        "SELECT r.success, r.severity FROM dq.results r JOIN meta.loads l USING (load_id) WHERE l.end_date = ? "
        "AND r.table_name = 'raw.equity_bars' AND r.expectation = 'big_revision'",
        [NEXT],
    )
    assert warned == [(False, "warning")]

    # The same split fetched again on a later night is not new: no second whole-history fetch.
    again = source.bars([symbol], date(2025, 6, 17), NEXT)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        assert planning.rebase_symbols(con, again, NEXT) == {}
    finally:
        con.close()
