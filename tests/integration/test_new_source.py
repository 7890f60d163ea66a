"""A source the pipeline has never heard of runs through the backfill and nightly flows from one
registry line: the flows ask what it can do (its first session, whether requests cost), never its
name. The name "fake" appears nowhere in smallcaps/ or flows/."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

import flows.backfill
import flows.nightly
from flows.backfill import backfill
from flows.nightly import nightly
from small_market import SmallSample, small_settings
from sources import SOURCES, Registered
from sources.base import Capabilities, Fetched

# Runs a flow: a backfill and a nightly on the small market.
pytestmark = pytest.mark.slow

FIRST = date(2025, 12, 1)  # the fake's first session
END = date(2026, 1, 9)  # the backfill crosses a year: two windows of 1 year for a free source
NIGHT = date(2026, 1, 12)


class Metered(SmallSample):
    """The small market behind a new source that starts on FIRST and whose requests cost: it
    records what it is asked."""

    name = "fake"

    def __init__(self) -> None:
        super().__init__(start=date(2025, 3, 3))
        self.capabilities = Capabilities(first_date=FIRST, is_metered=True)
        self.bar_starts: list[date] = []
        self.fundamentals_asked: list[str] = []

    def bars(self, symbols, start, end) -> Fetched:
        self.bar_starts.append(start)
        return super().bars(symbols, start, end)

    def fundamentals(self, symbols, as_of) -> Fetched:
        self.fundamentals_asked += list(symbols)
        return super().fundamentals(symbols, as_of)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    home = tmp_path_factory.mktemp("fake-source")
    settings = small_settings(home).model_copy(update={"source": "fake", "backfill_window_years": 1})
    built: list[Metered] = []

    def make(_settings) -> Metered:
        built.append(Metered())
        return built[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(SOURCES, "fake", Registered(make))
        mp.setattr(flows.backfill, "settings_for", lambda *args: settings)
        mp.setattr(flows.nightly, "settings_for", lambda *args: settings)
        filled = backfill(end=END)
        backfill_sources = list(built)
        night = nightly(as_of=NIGHT)
    return home, filled, night, backfill_sources, built[len(backfill_sources):]


def test_a_backfill_starts_at_the_sources_first_session_in_one_load_when_requests_cost(run):
    home, filled, _, sources, _ = run
    assert filled["status"] == "succeeded"
    # One load although the range crosses a year with 1-year windows: a metered source is asked once.
    assert "load_ids" not in filled
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        loads = con.execute("SELECT source, start_date, end_date FROM meta.loads ORDER BY started_at").fetchall()
        assert loads[0] == ("fake", FIRST, END)
        assert con.execute("SELECT min(session_date) FROM raw.index_bars").fetchone() == (FIRST,)
    finally:
        con.close()
    # The flow built one source to ask its capabilities, the load one to fetch; bars from FIRST only.
    assert len(sources) == 2 and min(sources[-1].bar_starts) == FIRST


def test_a_nightly_of_a_metered_source_asks_only_for_due_fundamentals(run):
    _, filled, night, backfill_sources, night_sources = run
    assert night["status"] == "succeeded"
    [source] = night_sources
    members = set(backfill_sources[-1].fundamentals_asked)
    assert len(members) > 50  # the backfill asked every member (none was fetched before)
    # Fetched three days ago, no quarter due before spring: a metered source is not asked again.
    # (A source whose requests cost nothing is asked for every member every night.)
    assert source.fundamentals_asked == []
    # Bars from five sessions back (the overlap), and a split's re-fetch of history from FIRST at most.
    assert source.bar_starts[0] == date(2026, 1, 2) and min(source.bar_starts) >= FIRST
