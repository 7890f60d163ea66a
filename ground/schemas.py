"""The frames that cross layers: the columns and dtypes of what a source returns, and the
bookkeeping columns staging adds on the way into `raw`.

Part of the ground (see the README's layout): sources produce these frames, the gate checks them,
the warehouse stores them, so none of those packages should own them.
"""

from __future__ import annotations

import polars as pl

# What staging (warehouse.load.stage) stamps on a source's rows on their way into raw: which source
# and load wrote a row and when (first_seen_at on fundamentals only). Not part of a row's value: a
# refetch that differs only here is no change (the merge), and no suite checks them (the gate).
BOOKKEEPING_COLUMNS = ("source", "fetched_at", "load_id", "first_seen_at")

BARS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "session_date": pl.Date,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "adj_close": pl.Float64,
    "volume": pl.Int64,  # null where the source has none (indexes: ^VIX)
}

HOLDINGS_SCHEMA: dict[str, pl.DataType] = {
    "universe": pl.String,  # settings universe name: russell2000, sp600
    "as_of_date": pl.Date,  # the "Fund Holdings as of" date of the snapshot
    "symbol": pl.String,  # Yahoo symbol (MOG-A), the warehouse's key for a company
    "ticker": pl.String,  # ticker as printed in the holdings file (MOGA)
    "name": pl.String,
    "sector": pl.String,
    "asset_class": pl.String,  # always "Equity" for kept rows
    "exchange": pl.String,
    "weight_pct": pl.Float64,  # share of the whole fund in percent, as published (cash included)
    "market_value_usd": pl.Float64,
    "shares": pl.Float64,
    "price_usd": pl.Float64,
}

FUNDAMENTALS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "period_end_date": pl.Date,  # fiscal quarter end
    "report_date": pl.Date,  # when the quarter became public, null where unknown
    "net_income_common_usd": pl.Float64,  # net income to common shareholders; null = missing
    "net_income_usd": pl.Float64,
    "diluted_eps": pl.Float64,
    "revenue_usd": pl.Float64,
}

ACTIONS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "ex_date": pl.Date,
    "action": pl.String,  # "split" (value = new shares per old share) or "dividend" (value = USD per share)
    "value": pl.Float64,
}

FAILURES_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,  # symbol, or universe name for holdings
    "dataset": pl.String,  # bars, fundamentals, holdings
    "error": pl.String,
}

EXCLUDED_SCHEMA: dict[str, pl.DataType] = {
    "dataset": pl.String,
    "key": pl.String,  # what identifies the row in its file (e.g. "IWM 2025-11-05 line 1970 XTSLA")
    "reason": pl.String,
    "row_json": pl.String,
}
