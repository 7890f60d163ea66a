"""core.equity_returns: daily returns on Adj Close, by hand and by property."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.returns import equity_returns
from tests.helpers.contract import sql_columns
from tests.helpers.matrix import examples

ROOT = Path(__file__).resolve().parents[2]
BARS = {"symbol": pl.String, "session_date": pl.Date, "close": pl.Float64, "adj_close": pl.Float64}


def bars(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (symbol, session_date, close, adj_close)."""
    return pl.LazyFrame(rows, schema=BARS, orient="row")


def test_returns_by_hand_per_symbol_in_any_input_order():
    d = [date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 5)]
    out = equity_returns(
        bars(
            [
                ("BBB", d[1], 21.0, 21.0),
                ("AAA", d[2], 9.9, 9.9),
                ("AAA", d[0], 10.0, 10.0),
                ("BBB", d[0], 20.0, 20.0),
                ("AAA", d[1], 11.0, 11.0),
            ]
        )
    ).collect()
    assert out.schema == pl.Schema(sql_columns("core.equity_returns"))
    got = {(r["symbol"], r["session_date"]): r["ret_1d"] for r in out.to_dicts()}
    assert got[("AAA", d[0])] is None and got[("BBB", d[0])] is None  # first row of each symbol
    assert got[("AAA", d[1])] == pytest.approx(0.10)  # 11 / 10 - 1
    assert got[("AAA", d[2])] == pytest.approx(-0.10)  # 9.9 / 11 - 1
    assert got[("BBB", d[1])] == pytest.approx(0.05)  # 21 / 20 - 1


def test_adj_close_not_close_so_a_split_is_not_a_loss():
    # A 2-for-1 split on 03-04: close halves, Adj Close (split-adjusted) does not.
    out = equity_returns(bars([("AAA", date(2025, 3, 3), 100.0, 50.0), ("AAA", date(2025, 3, 4), 51.0, 51.0)])).collect()
    assert out.get_column("ret_1d").to_list()[1] == pytest.approx(0.02)


def test_a_missing_bar_is_not_filled_the_next_return_spans_the_gap():
    # No bar on 03-04: the return on 03-05 is 03-05 over 03-03.
    out = equity_returns(bars([("AAA", date(2025, 3, 3), 10.0, 10.0), ("AAA", date(2025, 3, 5), 12.0, 12.0)])).collect()
    assert out.height == 2 and out.get_column("ret_1d").to_list()[1] == pytest.approx(0.2)


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.floats(0.01, 1_000.0), min_size=1, max_size=60))
def test_compounded_returns_give_last_over_first(prices):
    rows = [("AAA", date(2025, 1, 1) + timedelta(days=i), p, p) for i, p in enumerate(prices)]
    out = equity_returns(bars(rows)).collect()
    rets = out.get_column("ret_1d").to_list()
    assert rets[0] is None and all(r is not None for r in rets[1:])
    assert math.prod(1.0 + r for r in rets[1:]) == pytest.approx(prices[-1] / prices[0], rel=1e-9)
