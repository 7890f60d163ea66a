"""Reading the night from the published snapshot: every query of the report is here.

The snapshot is opened read-only and without file access; the marts carry their whole history, so
an earlier night is read from the same snapshot by filtering on its date. What the charts and the
page draw comes from the marts as stored (streaks, `longest_since`, records, support and resistance,
the VIX's weekly change, each symbol's `history_start`, sector returns since each anchor, and the
relative-strength level, which the report only rebases to its window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from ground.registry import DATASETS
from ground.settings import Settings
from sources import SOURCES

# Charts of history show the 12 months up to the night (cohort returns start at their anchor).
WINDOW_DAYS = 365

SYNTHETIC_NOTE = "synthetic sample data, not market prices"

# The marts whose latest session the data-quality section lists, with their date column: every
# mart the registry dates.
FRESHNESS = tuple((d.name, d.date_column) for d in DATASETS if d.name.startswith("marts.") and d.date_column)


class ReportError(RuntimeError):
    """The report cannot be written: nothing published, or no data for the night asked for."""


@dataclass
class _Night:
    """Everything the page needs, read from the snapshot in one go."""

    as_of: date
    snapshot_path: Path
    snapshot_as_of: date
    snapshot_load_id: str
    published_at: datetime | None
    first_session: date
    source: str
    is_synthetic: bool
    window_start: date
    headlines: pl.DataFrame
    index_daily: pl.DataFrame
    history_start: dict[str, date]
    relative: pl.DataFrame
    cohort_perf: pl.DataFrame
    composition: pl.DataFrame
    sectors: pl.DataFrame  # marts.sector_daily on the night
    sector_first: dict[str, date]  # each universe's first marts.sector_daily session up to the night
    sector_perf: pl.DataFrame  # marts.sector_performance on the night
    loads: pl.DataFrame
    night_load: dict | None
    dq_results: pl.DataFrame
    publishes: pl.DataFrame
    freshness: list[tuple[str, date | None]]
    symbols: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    universes: list[str] = field(default_factory=list)
    anchors: list[str] = field(default_factory=list)

    @property
    def source_label(self) -> str:
        if self.is_synthetic:
            return f"data source: {self.source} ({SYNTHETIC_NOTE})"
        return f"data source: {self.source}"



def _open_snapshot(settings: Settings) -> duckdb.DuckDBPyConnection:
    path = settings.published_path
    if not path.exists():
        raise ReportError(
            f"no published snapshot at {path}: nothing to report on; run `smallcaps run` or `make demo` first"
        )
    # Read-only and without file access: the report only reads the snapshot's own tables.
    return duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})


def _frame(con: duckdb.DuckDBPyConnection, query: str, **params) -> pl.DataFrame:
    return con.sql(query, params=params or None).pl()


def _columns(con: duckdb.DuckDBPyConnection, mart: str) -> set[str]:
    """The columns of marts.`mart` in the snapshot (one published by older code may lack later ones)."""
    return set(
        _frame(con, "SELECT column_name AS c FROM information_schema.columns WHERE table_schema = 'marts' AND table_name = $t", t=mart)[
            "c"
        ].to_list()
    )


def _ordered(found: list, configured: list) -> list:
    """`found` in configured order; values not configured keep their own order, last."""
    pos = {v: i for i, v in enumerate(configured)}
    return sorted(found, key=lambda v: (pos.get(v, len(pos)), str(v)))


def _read_night(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date | None) -> _Night:
    snap = _frame(con, "SELECT as_of_date, load_id, source, published_at FROM meta.snapshot")
    if snap.is_empty():
        raise ReportError(f"the published snapshot {settings.published_path} has no meta.snapshot row; publish again")
    snapshot_as_of, snapshot_load_id, snapshot_source, published_at = snap.row(0)
    span = _frame(con, "SELECT min(session_date) AS first, max(session_date) AS last FROM marts.index_daily")
    first_session, last_session = span.row(0)
    if first_session is None:
        raise ReportError(
            f"the published snapshot {settings.published_path} holds no index data; run `smallcaps run` or `make demo` first"
        )
    as_of = as_of or snapshot_as_of
    present = _frame(con, "SELECT count(*) AS n FROM marts.index_daily WHERE session_date = $d", d=as_of).item()
    if not present:
        hint = "it is not a session" if first_session <= as_of <= last_session else "it is outside that range"
        raise ReportError(
            f"no data for {as_of.isoformat()} in the published snapshot {settings.published_path}: it holds "
            f"sessions {first_session.isoformat()} to {last_session.isoformat()} and {hint}; "
            "pass --as-of with a session in that range"
        )
    window_start = max(first_session, as_of - timedelta(days=WINDOW_DAYS))

    # The data's origin: every load that brought rows up to this night. A single `sample` load marks
    # the whole page synthetic.
    loads = _frame(
        con,
        "SELECT load_id, flow_name, source, start_date, end_date, sessions, rows_loaded, rows_quarantined, "
        "status, message, started_at, finished_at FROM meta.loads ORDER BY started_at DESC",
    )
    contributing = loads.filter(
        pl.col("status").is_in(["succeeded", "merged"]) & (pl.col("start_date").is_null() | (pl.col("start_date") <= as_of))
    )
    sources = sorted(set(contributing["source"].to_list())) or [snapshot_source]
    source = ", ".join(sources)
    night_load = _night_load(loads, as_of, snapshot_as_of, snapshot_load_id)
    dq_results = _frame(
        con,
        "SELECT table_name, expectation, severity, success, element_count, unexpected_count, details "
        "FROM dq.results WHERE load_id = $id ORDER BY success, severity, table_name, expectation",
        id=night_load["load_id"] if night_load else "",
    )
    publishes = _frame(
        con, "SELECT load_id, as_of_date, bytes, published_at FROM meta.publishes ORDER BY published_at DESC LIMIT 5"
    )
    # A snapshot published before a migration added a mart lacks it until the next load publishes.
    present_tables = set(
        _frame(con, "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables")["t"].to_list()
    )
    freshness = [
        (t, _frame(con, f"SELECT max({col}) AS d FROM {t}").item() if t in present_tables else None)
        for t, col in FRESHNESS
    ]

    # Columns added by migration 0005 read as null from a snapshot published before it.
    daily_columns = _columns(con, "index_daily")
    later = ", ".join(
        c if c in daily_columns else f"CAST(NULL AS {t}) AS {c}"
        for c, t in (("change_5d", "DOUBLE"), ("ret_5d", "DOUBLE"), ("support_level", "DOUBLE"),
                     ("support_date", "DATE"), ("resistance_level", "DOUBLE"), ("resistance_date", "DATE"))
    )  # fmt: skip
    index_daily = _frame(
        con,
        "SELECT symbol, session_date, close, ret_1d, is_record_close, records_ytd, rsi_14, sma_50, sma_200, "
        f"{later} FROM marts.index_daily WHERE session_date BETWEEN $s AND $d ORDER BY symbol, session_date",
        s=window_start,
        d=as_of,
    )
    # Where each symbol's loaded history starts (records are relative to it), as the mart states it.
    history_start = dict(
        _frame(con, "SELECT symbol, min(history_start) AS d FROM marts.index_records GROUP BY symbol").iter_rows()
    )
    if "marts.relative_performance" in present_tables and "relative_level" not in _columns(con, "relative_performance"):
        raise ReportError(
            f"the published snapshot {settings.published_path} predates marts.relative_performance.relative_level, "
            "which the relative-strength chart draws; run a load (`smallcaps run`) to publish the marts again"
        )
    # The relative-strength line is the mart's relative_level over its level on the pair's last
    # session before the window (1 when the pair's rows start inside it): 100 = the close before the
    # window's first return, as a line compounded over the window's rows would be.
    relative = _frame(
        con,
        """
        WITH base AS (
            SELECT lead_symbol, lag_symbol, arg_max(relative_level, session_date) AS base_level
            FROM marts.relative_performance WHERE session_date < $s GROUP BY lead_symbol, lag_symbol
        )
        SELECT r.lead_symbol, r.lag_symbol, r.session_date, r.lead_ret, r.lag_ret, r.outperformed, r.streak,
               r.longest_since, r.relative_level, coalesce(b.base_level, 1.0) AS base_level
        FROM marts.relative_performance r LEFT JOIN base b USING (lead_symbol, lag_symbol)
        WHERE r.session_date BETWEEN $s AND $d
        ORDER BY r.lead_symbol, r.lag_symbol, r.session_date
        """,
        s=window_start,
        d=as_of,
    )
    # A cohort's path since its anchor: the rows that share the anchor session the night resolves to
    # (`ytd` moves once a year, a dated anchor never). `1y` resolves to a different session every
    # night, so its path does not exist in the mart: its rows over the window are the rolling
    # one-year return, and the chart says so.
    cohort_perf = _frame(
        con,
        """
        WITH night AS (
            SELECT DISTINCT universe, anchor, anchor_date FROM marts.cohort_performance WHERE session_date = $d
        )
        SELECT p.universe, p.anchor, p.cohort, p.session_date, p.anchor_date, p.members, p.priced,
               p.return_equal_weight, p.return_cap_weight
        FROM marts.cohort_performance p JOIN night n USING (universe, anchor)
        WHERE p.session_date <= $d
          AND ((p.anchor = '1y' AND p.session_date >= $s) OR (p.anchor <> '1y' AND p.anchor_date = n.anchor_date))
        ORDER BY p.universe, p.anchor, p.cohort, p.session_date
        """,
        d=as_of,
        s=window_start,
    )
    composition = _frame(
        con,
        "SELECT universe, session_date, cohort, members, share_of_members, share_of_weight "
        "FROM marts.cohort_composition WHERE session_date BETWEEN $s AND $d ORDER BY universe, session_date, cohort",
        s=window_start,
        d=as_of,
    )
    # The sector chart draws the night: each sector's return of the session and since each anchor
    # (marts.sector_performance), and says where a universe's sector history starts.
    sectors = _frame(
        con,
        "SELECT universe, sector, session_date, members, return_equal_weight, return_cap_weight "
        "FROM marts.sector_daily WHERE session_date = $d ORDER BY universe, sector",
        d=as_of,
    )
    sector_first = dict(
        _frame(
            con, "SELECT universe, min(session_date) AS d FROM marts.sector_daily WHERE session_date <= $d GROUP BY universe", d=as_of
        ).iter_rows()
    )
    if "marts.sector_performance" not in present_tables:
        raise ReportError(
            f"the published snapshot {settings.published_path} predates marts.sector_performance, which the sector "
            "charts draw; run a load (`smallcaps run`) to publish the marts again"
        )
    sector_perf = _frame(
        con,
        "SELECT universe, anchor, sector, anchor_date, return_equal_weight, return_cap_weight "
        "FROM marts.sector_performance WHERE session_date = $d ORDER BY universe, anchor, sector",
        d=as_of,
    )
    headlines = _frame(
        con,
        "SELECT rank, fact_key, sentence, value, unit, definition FROM marts.headlines "
        "WHERE as_of_date = $d ORDER BY rank",
        d=as_of,
    )

    configured_symbols = list(settings.index_symbols)
    symbols = _ordered(sorted(set(index_daily["symbol"].to_list()) | set(configured_symbols)), configured_symbols)
    configured_pairs = [(p.lead, p.lag) for p in settings.pairs]
    found_pairs = set(relative.select("lead_symbol", "lag_symbol").unique().iter_rows())
    pairs = _ordered(sorted(found_pairs | set(configured_pairs)), configured_pairs)
    configured_universes = [u.name for u in settings.universes]
    found_universes = set(composition["universe"].to_list()) | set(cohort_perf["universe"].to_list())
    universes = _ordered(sorted(found_universes | set(configured_universes)), configured_universes)
    anchors = _ordered(sorted(set(cohort_perf["anchor"].to_list()) | set(settings.anchors)), list(settings.anchors))

    return _Night(
        as_of=as_of,
        snapshot_path=settings.published_path,
        snapshot_as_of=snapshot_as_of,
        snapshot_load_id=snapshot_load_id,
        published_at=published_at,
        first_session=first_session,
        source=source,
        is_synthetic=any(SOURCES[s].is_synthetic for s in sources if s in SOURCES),
        window_start=window_start,
        headlines=headlines,
        index_daily=index_daily,
        history_start=history_start,
        relative=relative,
        cohort_perf=cohort_perf,
        composition=composition,
        sectors=sectors,
        sector_first=sector_first,
        sector_perf=sector_perf,
        loads=loads,
        night_load=night_load,
        dq_results=dq_results,
        publishes=publishes,
        freshness=freshness,
        symbols=symbols,
        pairs=pairs,
        universes=universes,
        anchors=anchors,
    )


def _night_load(loads: pl.DataFrame, as_of: date, snapshot_as_of: date, snapshot_load_id: str) -> dict | None:
    """The load behind the night: the published one for the snapshot's night; for an earlier night,
    the latest successful load whose range covers it."""
    if as_of == snapshot_as_of:
        hit = loads.filter(pl.col("load_id") == snapshot_load_id)
    else:
        hit = loads.filter(
            # A window of a long backfill ('merged') loaded the nights of its range too.
            pl.col("status").is_in(["succeeded", "merged"]) & (pl.col("start_date") <= as_of) & (pl.col("end_date") >= as_of)
        )
    return hit.row(0, named=True) if hit.height else None

