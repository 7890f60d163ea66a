"""The contract every source fulfils: what it returns, in which shape.

A source fetches; it does not stamp `load_id`, `fetched_at` or `source` (staging does that) and it
never touches the warehouse. Every frame it returns has exactly the columns and dtypes of
`ground.schemas`, so that the gate and the merge can rely on them. A symbol that could not be fetched is reported in
`failures`, never silently left out. Rows a source reads but deliberately does not keep (cash and
futures lines of a holdings file, say) are reported in `excluded` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from typing import Protocol, Sequence, runtime_checkable

import polars as pl

# The schemas live in the ground (ground.schemas) because the gate and the warehouse read them
# too; they are re-exported here as part of the source contract, which sources/ and the tests import.
from ground.schemas import (  # noqa: F401
    ACTIONS_SCHEMA,
    BARS_SCHEMA,
    BOOKKEEPING_COLUMNS,
    EXCLUDED_SCHEMA,
    FAILURES_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HOLDINGS_SCHEMA,
)


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType], what: str) -> pl.DataFrame:
    """Select and cast `df` to `schema`; a missing column is an error naming it."""
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")
    return df.select([pl.col(c).cast(t, strict=True) for c, t in schema.items()])


def failures_frame(rows: Sequence[tuple[str, str, str]]) -> pl.DataFrame:
    """`failures` rows (symbol, dataset, error) as a frame of FAILURES_SCHEMA (none: empty)."""
    return pl.DataFrame(list(rows), schema=FAILURES_SCHEMA, orient="row") if rows else empty(FAILURES_SCHEMA)


@dataclass(frozen=True)
class Fetched:
    """What one fetch call returned. Frames follow the schemas above; absent parts are empty."""

    bars: pl.DataFrame = field(default_factory=lambda: empty(BARS_SCHEMA))
    actions: pl.DataFrame = field(default_factory=lambda: empty(ACTIONS_SCHEMA))
    fundamentals: pl.DataFrame = field(default_factory=lambda: empty(FUNDAMENTALS_SCHEMA))
    holdings: pl.DataFrame = field(default_factory=lambda: empty(HOLDINGS_SCHEMA))
    failures: pl.DataFrame = field(default_factory=lambda: empty(FAILURES_SCHEMA))
    excluded: pl.DataFrame = field(default_factory=lambda: empty(EXCLUDED_SCHEMA))
    requests: int = 0  # HTTP requests made (0 for offline sources)

    @staticmethod
    def combine(parts: Sequence["Fetched"]) -> "Fetched":
        if not parts:
            return Fetched()
        frames = {}
        for f in fields(Fetched):
            if f.name == "requests":
                continue
            # Empty parts carry the contract's schema. Leaving them out lets a source whose rows do
            # not follow it (a renamed column, text where a number belongs) reach the gate, which
            # names the column and quarantines the rows, instead of failing the concat here.
            frames_of = [getattr(p, f.name) for p in parts]
            kept = [df for df in frames_of if df.height] or frames_of[:1]
            try:
                frames[f.name] = pl.concat(kept, how="vertical")
            except (pl.exceptions.ShapeError, pl.exceptions.SchemaError, pl.exceptions.ColumnNotFoundError) as exc:
                shapes = sorted({", ".join(f"{c} {t}" for c, t in df.schema.items()) for df in kept})
                raise ValueError(
                    f"the parts of one fetch disagree on the {f.name} columns ({exc}): " + " | ".join(shapes)
                ) from exc
        return Fetched(**frames, requests=sum(p.requests for p in parts))


@dataclass(frozen=True)
class Capabilities:
    """What a source can do, as far as the pipeline and the flows need to know. They ask these,
    never the source's name, so a new source is a module and a registry line (sources.SOURCES).
    The defaults fit a source that costs nothing to ask and is expected to deliver everything."""

    # The earliest session the source can have bars for, known without reading anything (the sample
    # market's first session); None where unknown. A nightly never asks for sessions before it, and
    # a backfill without a start begins there (else at flows.backfill.EARLIEST_DATE).
    first_date: date | None = None
    # Every request costs (a rate limit, a budget, a provider's patience): a backfill asks once for
    # its whole range instead of window by window, and fundamentals are asked for only when a new
    # quarter can be out (sources.yahoo.fundamentals_due), not for every member every night.
    is_metered: bool = False
    # The source can say which sessions it holds by reading what it has (a folder of files): it has
    # `date_range() -> (first, last) | None` (None: it holds no bars), and a backfill without a start
    # or an end takes them from there.
    has_date_range: bool = False
    # Expected to deliver every index, enough members of every universe and every universe's
    # holdings snapshot, so a night missing some is held (check_completeness) and a missing
    # snapshot is warned about. False for a source that holds what its user chose to bring (a csv
    # folder with one index and no holdings file is a complete answer there).
    is_complete: bool = True
    # fundamentals() takes a keyword `since` (a date): quarters reported before it may be left out,
    # because the warehouse holds them and no cohort from the load's first session on needs an older
    # one (pipeline.planning.fundamentals_since). Without it a source is asked as the protocol says
    # and returns what it has: Yahoo its last quarters whatever one asks, a csv folder all of them.
    takes_since: bool = False


@runtime_checkable
class Source(Protocol):
    """A market data source. Dates are NYSE session dates, inclusive."""

    name: str
    capabilities: Capabilities

    def holdings(self, universes: Sequence[str], start: date, end: date) -> Fetched:
        """Holdings snapshots of each universe with as_of_date in [start, end]."""
        ...

    def bars(self, symbols: Sequence[str], start: date, end: date) -> Fetched:
        """Daily bars (and splits/dividends in `actions`) of `symbols` for sessions in [start, end]."""
        ...

    def fundamentals(self, symbols: Sequence[str], as_of: date) -> Fetched:
        """Quarterly income statement lines of `symbols` as known on `as_of`. (A source whose
        capabilities say `takes_since` also takes `since=`, see Capabilities.)"""
        ...
