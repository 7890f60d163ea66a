"""Market data sources behind one protocol (`sources.base.Source`), and the registry that builds
them by name. The pipeline and the flows ask a source's `capabilities`, never its name: adding a
source is its module, one line in SOURCES and its tests (docs/sources.md, "Adding a source")."""

from __future__ import annotations

from typing import Callable

from smallcaps.settings import Settings
from sources.base import Source

# Factories import their module when called: a source's dependencies (yfinance, numpy's market
# simulation) load only when that source is used.


def _sample(settings: Settings) -> Source:
    from sources.sample import SampleSource

    return SampleSource(
        seed=settings.sample_seed,
        start=settings.sample_start,
        companies=settings.sample_companies,
        memory_mb=settings.sample_memory_mb,
        cache_dir=settings.cache_dir / "sample",  # the market is kept there between runs (sources.sample._Cache)
    )


def _csv(settings: Settings) -> Source:
    from sources.csv import CsvSource

    if settings.csv_path is None:
        raise ValueError("the csv source needs a folder: pass --path DIR or set SMALLCAPS_CSV_PATH")
    return CsvSource(
        settings.csv_path,
        universes={u.etf: u.name for u in settings.universes},
        overrides_path=settings.home / "symbol_overrides.csv",
        index_symbols=settings.index_symbols,
    )


def _yahoo(settings: Settings) -> Source:
    from sources.yahoo import YahooConfig, YahooSource

    return YahooSource(YahooConfig.from_settings(settings))


SOURCES: dict[str, Callable[[Settings], Source]] = {
    "sample": _sample,
    "csv": _csv,
    "yahoo": _yahoo,
}


def make_source(settings: Settings) -> Source:
    """The source `settings.source` names, built from the settings it uses."""
    factory = SOURCES.get(settings.source)
    if factory is None:
        raise ValueError(f"unknown source {settings.source!r}: known sources are {', '.join(sorted(SOURCES))}")
    return factory(settings)
