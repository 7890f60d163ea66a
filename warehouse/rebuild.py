"""Rebuild `core` and `marts` from `raw` with the pure transforms, then gate the marts.

Marts are rebuilt, never edited in place: every load recomputes them from the raw tables inside
the load's transaction, so a rolled-back load leaves them exactly as they were.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

import duckdb
import polars as pl

from smallcaps import calendar
from smallcaps.crashpoints import crashpoint
from smallcaps.settings import Settings
from warehouse.load import read, replace

GATED_MARTS = (
    "marts.index_daily",
    "marts.index_performance",
    "marts.relative_performance",
    "marts.cohort_composition",
    "marts.cohort_performance",
    "marts.sector_daily",
)


@dataclass
class Rebuilt:
    rows: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    results: dict[str, pl.DataFrame] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return bool(self.errors)


def _raw(con: duckdb.DuckDBPyConnection, table: str) -> pl.LazyFrame:
    return read(con, f"SELECT * EXCLUDE (source, fetched_at, load_id) FROM {table}").lazy()


def derive(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date) -> tuple[dict[str, pl.DataFrame], dict[str, float]]:
    """Compute every core and mart table from raw. Pure apart from reading raw."""
    from transforms.cohort_performance import cohort_performance
    from transforms.cohorts import cohort_composition, cohorts
    from transforms.headlines import INDEX_NAMES, headlines
    from transforms.index_daily import index_daily, index_records
    from transforms.index_performance import index_performance
    from transforms.membership import membership
    from transforms.relative_performance import relative_performance
    from transforms.returns import equity_returns
    from transforms.sectors import sector_daily

    timings: dict[str, float] = {}
    out: dict[str, pl.DataFrame] = {}

    def timed(name: str, frame: pl.LazyFrame) -> pl.DataFrame:
        t = time.perf_counter()
        df = frame.collect()
        timings[name] = time.perf_counter() - t
        out[name] = df
        return df

    index_bars = _raw(con, "raw.index_bars").filter(pl.col("session_date") <= as_of)
    equity_bars = _raw(con, "raw.equity_bars").filter(pl.col("session_date") <= as_of)
    holdings = _raw(con, "raw.holdings").filter(pl.col("as_of_date") <= as_of)
    fundamentals = _raw(con, "raw.fundamentals").drop("first_seen_at")

    first = con.execute(
        "SELECT least((SELECT min(session_date) FROM raw.index_bars), (SELECT min(session_date) FROM raw.equity_bars), "
        "(SELECT min(as_of_date) FROM raw.holdings))"
    ).fetchone()[0]
    days = calendar.sessions(first, as_of) if first else []
    sessions = pl.DataFrame(
        {
            "session_date": days,
            "year": [d.year for d in days],
            "is_early_close": [calendar.is_early_close(d) for d in days],
        },
        schema={"session_date": pl.Date, "year": pl.Int32, "is_early_close": pl.Boolean},
    )
    out["core.sessions"] = sessions
    sessions_lf = sessions.lazy().select("session_date")

    daily = timed("marts.index_daily", index_daily(index_bars))
    timed("marts.index_records", index_records(daily.lazy()))
    timed(
        "marts.index_performance",
        index_performance(daily.lazy(), sessions_lf, anchors=settings.anchors, as_of=as_of),
    )
    pairs = [(p.lead, p.lag) for p in settings.pairs]
    timed("marts.relative_performance", relative_performance(daily.lazy(), pairs))

    members = timed("core.membership", membership(holdings, sessions_lf))
    coh = timed("core.cohorts", cohorts(members.lazy(), holdings, fundamentals, sessions_lf))
    rets = timed("core.equity_returns", equity_returns(equity_bars))
    timed("marts.cohort_composition", cohort_composition(coh.lazy()))
    timed(
        "marts.cohort_performance",
        cohort_performance(coh.lazy(), rets.lazy(), sessions_lf, anchors=settings.anchors, as_of=as_of),
    )
    timed("marts.sector_daily", sector_daily(coh.lazy(), rets.lazy()))
    nights = sorted(set(daily.get_column("session_date").to_list())) if daily.height else []
    timed(
        "marts.headlines",
        headlines(
            nights,
            daily.lazy(),
            out["marts.index_records"].lazy(),
            out["marts.relative_performance"].lazy(),
            out["marts.cohort_composition"].lazy(),
            out["marts.cohort_performance"].lazy(),
            out["marts.sector_daily"].lazy(),
            index_performance=out["marts.index_performance"].lazy(),
            pairs=pairs,
            anchors=settings.anchors,
            names=INDEX_NAMES,
        ),
    )
    return out, timings


def rebuild(con: duckdb.DuckDBPyConnection, settings: Settings, *, as_of: date, load_id: str) -> Rebuilt:
    from expectations.docs import save_validations
    from expectations.gate import gate

    result = Rebuilt()
    frames, result.timings = derive(con, settings, as_of)
    crashpoint("transform.derived")
    t = time.perf_counter()
    gated = {}
    for table in GATED_MARTS:
        g = gated[table] = gate(table, frames[table], load_id=load_id, as_of=as_of, severity_overrides=settings.dq_severity)
        result.results[table] = g.results
        result.errors.extend(g.errors)
        result.warnings.extend(g.warnings)
    save_validations(settings, load_id, gated)
    result.timings["gate_marts"] = time.perf_counter() - t
    crashpoint("transform.gated")
    if result.blocked:
        return result
    t = time.perf_counter()
    for table, df in frames.items():
        result.rows[table] = replace(con, table, df)
        crashpoint("transform.replace")
    result.timings["write_derived"] = time.perf_counter() - t
    return result
