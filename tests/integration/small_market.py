"""A small slice of the sample market for tests that run many loads: the same generator, a few
dozen members per universe, weights re-based so the slice is a whole fund. A load of it takes a
few seconds instead of half a minute, so crash and reader tests can afford many of them."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Sequence

import polars as pl

from ground.settings import Settings
from sources.base import Capabilities, Fetched
from sources.sample import SampleSource

START = date(2025, 3, 3)
EVERY = 25  # keep one company in EVERY


class SmallSample:
    name = "sample"

    def __init__(self, start: date = START) -> None:
        self.inner = SampleSource(seed=2025, start=date(2024, 1, 2))
        self.start = start
        # The slice begins at `start` (small_settings' sample_start): nothing before it is asked for.
        self.capabilities = Capabilities(first_date=start)

    @staticmethod
    def _kept(symbols: pl.Series) -> pl.Series:
        return symbols.str.slice(3).cast(pl.Int32) % EVERY == 0

    def holdings(self, universes: Sequence[str], start: date, end: date) -> Fetched:
        got = self.inner.holdings(universes, max(start, self.start), end)
        h = got.holdings.filter(self._kept(got.holdings.get_column("symbol")))
        h = h.with_columns(
            (pl.col("weight_pct") * 99.5 / pl.col("weight_pct").sum().over("universe", "as_of_date")).alias("weight_pct")
        )
        return Fetched(holdings=h, requests=got.requests)

    def bars(self, symbols: Sequence[str], start: date, end: date) -> Fetched:
        return self.inner.bars(symbols, max(start, self.start), end)

    def fundamentals(self, symbols: Sequence[str], as_of: date) -> Fetched:
        return self.inner.fundamentals(symbols, as_of)


def small_settings(home: Path) -> Settings:
    base = Settings(home=home)
    universes = [u.model_copy(update={"min_members": 10, "max_members": 200}) for u in base.universes]
    # The report has tests of its own; these loads test loading, many times over.
    return Settings(home=home, universes=universes, sample_start=START, write_report=False)
