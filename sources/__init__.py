"""Market data sources behind one protocol (`sources.base.Source`)."""

from __future__ import annotations

from smallcaps.settings import Settings
from sources.base import Source


# Sources whose every request counts against a budget (rate limits, a provider's patience): a
# backfill asks them once for its whole range instead of window by window.
METERED = frozenset({"yahoo"})


def is_metered(name: str) -> bool:
    return name in METERED


def make_source(settings: Settings) -> Source:
    """The configured source. Imports are local: a source's dependencies load only when used."""
    if settings.source == "sample":
        from sources.sample import SampleSource

        return SampleSource(
            seed=settings.sample_seed,
            start=settings.sample_start,
            companies=settings.sample_companies,
            memory_mb=settings.sample_memory_mb,
            cache_dir=settings.cache_dir / "sample",  # the market is kept there between runs (sources.sample._Cache)
        )
    if settings.source == "csv":
        from sources.csv import CsvSource

        if settings.csv_path is None:
            raise ValueError("the csv source needs a folder: pass --path DIR or set SMALLCAPS_CSV_PATH")
        return CsvSource(
            settings.csv_path,
            universes={u.etf: u.name for u in settings.universes},
            overrides_path=settings.home / "symbol_overrides.csv",
            index_symbols=settings.index_symbols,
        )
    if settings.source == "yahoo":
        from sources.yahoo import YahooConfig, YahooSource

        return YahooSource(YahooConfig.from_settings(settings))
    raise ValueError(f"unknown source {settings.source!r}")
