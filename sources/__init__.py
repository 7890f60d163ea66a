"""Market data sources behind one protocol (`sources.base.Source`), and the registry that builds
them by name. The pipeline and the flows ask a source's `capabilities`, never its name: adding a
source is its module, one line in SOURCES and its tests (docs/sources.md, "Adding a source")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ground.settings import Settings
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


@dataclass(frozen=True)
class Registered:
    """A registered source: how to build it, and what is known of it by its name alone, before it is
    built or when only a loads table names it (the CLI's argument checks, the report's banner).
    What the pipeline asks of a built source is its `capabilities` (sources.base.Capabilities)."""

    build: Callable[[Settings], Source]
    # It reads the folder of `settings.csv_path` (the CLI's --path): the CLI checks the folder before
    # a flow starts, and refuses --path for a source that would ignore it.
    reads_path: bool = False
    # Its market is simulated, not observed: every page of the report says so.
    is_synthetic: bool = False


SOURCES: dict[str, Registered] = {
    "sample": Registered(_sample, is_synthetic=True),
    "csv": Registered(_csv, reads_path=True),
    "yahoo": Registered(_yahoo),
}


def check_source_name(name: str) -> Registered:
    """The registered source `name`, or a ValueError naming the known ones. The settings (the ground
    layer, below sources/) cannot know the registry, so whoever loads settings for work checks here:
    the CLI before any flow, the flows before any fetch."""
    registered = SOURCES.get(name)
    if registered is None:
        raise ValueError(
            f"unknown source {name!r}: known sources are {', '.join(sorted(SOURCES))} (SMALLCAPS_SOURCE or --source)"
        )
    return registered


def make_source(settings: Settings) -> Source:
    """The source `settings.source` names, built from the settings it uses."""
    return check_source_name(settings.source).build(settings)
