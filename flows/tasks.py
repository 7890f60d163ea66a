"""Prefect tasks: thin wrappers over the load's steps (pipeline.planning, checks, loading).

Retries sit only on the tasks that do I/O against a source or the file system; validation and
the transactional load are deterministic, so retrying them would only repeat a failure. No task
caches its result (sources return fresh data; frames are large).

The fetch tasks the flows map over chunks may run on a Dask worker (flows/runner.py): what they get
and return is pickled there and back (a source ships how to rebuild itself, not its state), and
they report progress through the flow, which advances the bar as each result arrives. The other
tasks take the DuckDB connection and are called directly: they run in the flow's process.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Sequence

import duckdb
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipeline import checks, loading
from ground.crashpoints import crashpoint
from ground.settings import Settings
from sources.base import Fetched, Source
from warehouse.publish import Published, publish

def _retryable(task, task_run, state) -> bool:
    """Retry what the network or a file system may fix; a ValueError is bad input, and asking
    again would only repeat it (and delay the clear error by the retry delays)."""
    try:
        state.result()
    except ValueError:
        return False
    except BaseException:
        return True
    return False


FETCH_RETRIES = dict(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=_retryable, cache_policy=NO_CACHE)


@task(name="fetch-holdings", **FETCH_RETRIES)
def fetch_holdings(source: Source, universes: Sequence[str], start: date, end: date) -> Fetched:
    got = source.holdings(universes, start, end)
    get_run_logger().info(
        "holdings: %s rows for %s, %s..%s (%s excluded, %s failures)",
        f"{got.holdings.height:,}", ", ".join(universes), start, end, got.excluded.height, got.failures.height,
    )
    return got


@task(name="fetch-bars", task_run_name="fetch-bars-{part}", **FETCH_RETRIES)
def fetch_bars(source: Source, symbols: Sequence[str], start: date, end: date, part: str) -> Fetched:
    got = source.bars(symbols, start, end)
    crashpoint("fetch.bars")
    get_run_logger().info(
        "bars %s: %s symbols, %s rows, %s failures", part, len(symbols), f"{got.bars.height:,}", got.failures.height
    )
    return got


@task(name="fetch-fundamentals", task_run_name="fetch-fundamentals-{part}", **FETCH_RETRIES)
def fetch_fundamentals(source: Source, symbols: Sequence[str], as_of: date, part: str, since: date | None = None) -> Fetched:
    """`since` only for a source that takes it (Capabilities.takes_since)."""
    got = source.fundamentals(symbols, as_of) if since is None else source.fundamentals(symbols, as_of, since=since)
    get_run_logger().info(
        "fundamentals %s: %s symbols, %s quarters%s, %s failures", part, len(symbols), got.fundamentals.height,
        f" reported since {since}" if since is not None else "", got.failures.height,
    )
    return got


@task(name="validate", cache_policy=NO_CACHE)
def validate(con: duckdb.DuckDBPyConnection, batch: checks.Batch, load_id: str, as_of: date, settings: Settings):
    return checks.validate(con, batch, load_id=load_id, as_of=as_of, settings=settings)


@task(name="load", cache_policy=NO_CACHE)
def load(con, batch, gated, load_id: str, source: str, fetched_at: datetime, settings: Settings, as_of: date):
    log = get_run_logger()
    return loading.load(
        con, batch, gated, load_id=load_id, source=source, fetched_at=fetched_at, settings=settings, as_of=as_of,
        log=log.info,
    )


@task(name="publish", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def publish_snapshot(con, settings: Settings, as_of: date, load_id: str, source: str, patches=None, base=None) -> Published:
    from ground.registry import DATASETS

    return publish(
        con, settings.published_dir, as_of=as_of, load_id=load_id, source=source, keep=settings.keep_snapshots,
        declared=DATASETS, patches=patches, storage_version=settings.publish_storage_version, base=base,
    )


@task(name="export-parquet", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def export_parquet(con, settings: Settings, load_id: str, patches=None):
    """With `patches` (publish's), only what they change is written; the rest links the previous export."""
    from ground.registry import DATASETS
    from warehouse.export import export

    partitions = {d.name: d.date_column for d in DATASETS if d.export}
    return export(
        con, settings.exports_dir, load_id=load_id, partitions=partitions, storage_version=settings.publish_storage_version,
        previous=loading.previous_load(con, load_id), changed=loading.export_changes(patches, partitions),
    )


@task(name="report", cache_policy=NO_CACHE)
def write_report(settings: Settings, as_of: date):
    """The night's HTML report and charts, linked from a Prefect markdown artifact."""
    from prefect.artifacts import create_markdown_artifact

    from report import write_report as write

    report = write(settings, as_of)
    create_markdown_artifact(key="smallcaps-report", markdown=report.markdown, description=f"smallcaps, night of {as_of}")
    return report
