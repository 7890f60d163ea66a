"""The completeness gate: held when too few members have a bar or an expected index is missing."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from expectations.completeness import completeness

SESSION = date(2025, 3, 14)
INDEXES = ["^RUT", "^GSPC", "^SP600", "^IXIC", "^VIX"]


def members(n: int = 100, universe: str = "russell2000") -> pl.DataFrame:
    return pl.DataFrame({"universe": [universe] * n, "symbol": [f"SMP{i:04d}" for i in range(1, n + 1)]})


def bars(symbols: list[str], day: date = SESSION) -> pl.DataFrame:
    return pl.DataFrame({"symbol": symbols, "session_date": [day] * len(symbols)}, schema={"symbol": pl.String, "session_date": pl.Date})


ALL = [f"SMP{i:04d}" for i in range(1, 101)]


def test_complete_night_passes():
    r = completeness(members(), bars(ALL), SESSION, INDEXES, bars(INDEXES), 0.98)
    assert r.ok and not r.held and "complete" in r.message
    assert r.universes[0].with_bar == 100


def test_exactly_at_min_share_passes_one_below_is_held():
    assert completeness(members(), bars(ALL[:98]), SESSION, INDEXES, bars(INDEXES), 0.98).ok
    r = completeness(members(), bars(ALL[:97]), SESSION, INDEXES, bars(INDEXES), 0.98)
    assert r.held
    assert "russell2000: only 97 of 100 members (97.0%) have a bar for 2025-03-14, below the required 98.0%" in r.message
    assert "missing 3: SMP0098, SMP0099, SMP0100" in r.message


def test_lists_at_most_ten_missing_symbols():
    r = completeness(members(), bars(ALL[:50]), SESSION, INDEXES, bars(INDEXES), 0.98)
    assert "missing 50: SMP0051, SMP0052" in r.message and "SMP0060 and 40 more" in r.message
    assert "SMP0061" not in r.message
    assert len(r.universes[0].missing) == 50


def test_bars_of_other_sessions_do_not_count():
    r = completeness(members(), bars(ALL, date(2025, 3, 13)), SESSION, INDEXES, bars(INDEXES), 0.98)
    assert r.held and "only 0 of 100" in r.message


def test_missing_index_holds_the_night():
    r = completeness(members(), bars(ALL), SESSION, INDEXES, bars(["^RUT", "^GSPC", "^IXIC"]), 0.98)
    assert r.held and r.missing_indexes == ["^SP600", "^VIX"]
    assert "2 of 5 expected index(es) have no bar for 2025-03-14: ^SP600, ^VIX" in r.message


def test_each_universe_is_judged_on_its_own():
    both = pl.concat([members(100), members(10, "sp600")])
    r = completeness(both, bars(ALL), SESSION, INDEXES, bars(INDEXES), 0.98)
    assert r.ok  # the sp600 members are SMP0001..SMP0010, all priced
    sp = pl.DataFrame({"universe": ["sp600"] * 10, "symbol": [f"SPX{i:03d}" for i in range(10)]})
    r = completeness(pl.concat([members(100), sp]), bars(ALL + ["SPX000"]), SESSION, INDEXES, bars(INDEXES), 0.98)
    assert r.held and "sp600: only 1 of 10" in r.message and "russell2000" not in r.message


def test_no_expected_indexes_and_no_members_is_ok():
    r = completeness(members(0), bars([]), SESSION, [], bars([]), 0.98)
    assert r.ok


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="min_share"):
        completeness(members(), bars(ALL), SESSION, INDEXES, bars(INDEXES), 1.5)
    with pytest.raises(ValueError, match="bars lacks column"):
        completeness(members(), pl.DataFrame({"symbol": ALL}), SESSION, INDEXES, bars(INDEXES), 0.98)
