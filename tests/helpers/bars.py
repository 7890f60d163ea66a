"""Index bars for the transform tests: real history read straight from the Yahoo daily CSVs in
tests/fixtures/yahoo-daily-csv (no source code in between, so a transform test does not depend on
the csv source), and runs of weekdays to date made-up closes."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl

YAHOO_DAILY = Path(__file__).resolve().parents[1] / "fixtures" / "yahoo-daily-csv"


def read_yahoo(symbol: str) -> pl.LazyFrame:
    """One index's daily bars (^RUT, ^GSPC, ^VIX, ...) in the columns of sources.base.BARS_SCHEMA."""
    raw = pl.read_csv(YAHOO_DAILY / f"{symbol}.csv", try_parse_dates=True)
    return raw.lazy().select(
        symbol=pl.lit(symbol),
        session_date=pl.col("Date").cast(pl.Date),
        open=pl.col("Open"),
        high=pl.col("High"),
        low=pl.col("Low"),
        close=pl.col("Close"),
        adj_close=pl.col("Adj Close"),
        volume=pl.col("Volume").cast(pl.Float64).cast(pl.Int64),
    )


def weekdays(start: date, n: int) -> list[date]:
    """The first `n` weekdays from `start` on (holidays included: a made-up calendar)."""
    out, d = [], start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out
