"""Fetched.combine: parts of one fetch put together, off-contract frames passed on to the gate."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from sources.base import BARS_SCHEMA, Fetched, empty


def _bars(**overrides) -> pl.DataFrame:
    row = {"symbol": "ABC", "session_date": date(2025, 3, 17), "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "adj_close": 1.5, "volume": 10}
    return pl.DataFrame([{**row, **overrides}], schema=BARS_SCHEMA)


def test_parts_following_the_contract_are_stacked():
    got = Fetched.combine([Fetched(), Fetched(bars=_bars()), Fetched(bars=_bars(symbol="XYZ"))])
    assert got.bars.get_column("symbol").to_list() == ["ABC", "XYZ"]
    assert got.bars.schema == pl.Schema(BARS_SCHEMA)


def test_an_off_contract_part_reaches_the_gate_instead_of_failing_the_concat():
    # Empty parts (here: the holdings answer's bars) carry the contract's schema; the one part with
    # rows keeps its renamed column and its text prices, for the gate to name.
    renamed = _bars().rename({"adj_close": "Adj Close"}).with_columns(pl.col("close").cast(pl.String))
    got = Fetched.combine([Fetched(), Fetched(bars=renamed), Fetched(bars=empty(BARS_SCHEMA))])
    assert "Adj Close" in got.bars.columns and got.bars.schema["close"] == pl.String


def test_parts_that_disagree_fail_with_both_schemas():
    with pytest.raises(ValueError, match=r"disagree on the bars columns.*close String.*\|.*close Float64|close Float64.*\|.*close String"):
        Fetched.combine([Fetched(bars=_bars()), Fetched(bars=_bars().with_columns(pl.col("close").cast(pl.String)))])
