"""What a load fetched and the checks on it: split by raw table (Batch), the source gave something
(check_fetched), the gate (validate), the night is complete (check_completeness), and what the
gate set aside in words (quarantine_summary, quarantine_note)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Sequence

import duckdb
import polars as pl

from pipeline.derive import literal_in, split_by_reach
from pipeline.load_run import LoadFailed
from pipeline.planning import Plan
from ground.settings import Settings
from sources.base import (
    ACTIONS_SCHEMA,
    BARS_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HOLDINGS_SCHEMA,
    Fetched,
)
from warehouse.load import read, registered
from warehouse.publish import sql_text

# Raw table of each part of a fetch, with the source schema it follows.
RAW_TABLES: dict[str, dict[str, pl.DataType]] = {
    "raw.holdings": HOLDINGS_SCHEMA,
    "raw.index_bars": BARS_SCHEMA,
    "raw.equity_bars": BARS_SCHEMA,
    "raw.fundamentals": FUNDAMENTALS_SCHEMA,
    "raw.corporate_actions": ACTIONS_SCHEMA,
}


@dataclass
class Batch:
    """Everything one load fetched, split by destination raw table."""

    frames: dict[str, pl.DataFrame]
    failures: pl.DataFrame
    excluded: pl.DataFrame
    requests: int = 0
    asked: dict[str, list[str]] = field(default_factory=dict)  # dataset -> symbols requested

    @property
    def rows_in(self) -> int:
        return sum(f.height for f in self.frames.values()) + self.excluded.height


# fetch ----------------------------------------------------------------------------------------


# Sources name the dataset of an excluded row; dq.quarantine files it under the raw table it would
# have gone to, so every table's rows can be counted: given = loaded + quarantined.
EXCLUDED_TABLES = {"holdings": "raw.holdings", "fundamentals": "raw.fundamentals", "actions": "raw.corporate_actions",
                   "corporate_actions": "raw.corporate_actions"}


def _excluded_tables(excluded: pl.DataFrame, is_index) -> pl.DataFrame:
    """`excluded` with `dataset` set to the raw table: a bar goes with the indexes or the constituents
    like a loaded one (its symbol from row_json, or else the file its key names, `^RUT.csv line 12`)."""
    if not excluded.height:
        return excluded
    symbol = pl.coalesce(
        pl.col("row_json").str.json_path_match("$.symbol"),
        pl.col("key").str.extract(r"([^/\s]+?)(?:\.csv)?(?:\s|$)", 1),
    )
    bars = pl.when(is_index(symbol)).then(pl.lit("raw.index_bars")).otherwise(pl.lit("raw.equity_bars"))
    return excluded.with_columns(
        pl.when(pl.col("dataset") == "bars")
        .then(bars)
        .otherwise(pl.col("dataset").replace(EXCLUDED_TABLES))
        .alias("dataset")
    )


def split(fetched: Fetched, index_symbols: Sequence[str], asked: dict[str, list[str]] | None = None) -> Batch:
    # A row without a symbol goes with the constituents, where symbol_not_null quarantines it: a
    # null predicate would drop it from both tables, and the row would be lost without a trace.
    def is_index_symbol(symbol: pl.Expr) -> pl.Expr:
        return (symbol.is_in(list(index_symbols)) | symbol.str.starts_with("^")).fill_null(False)

    is_index = is_index_symbol(pl.col("symbol"))
    return Batch(
        frames={
            "raw.holdings": fetched.holdings,
            "raw.index_bars": fetched.bars.filter(is_index),
            "raw.equity_bars": fetched.bars.filter(~is_index),
            "raw.fundamentals": fetched.fundamentals,
            "raw.corporate_actions": fetched.actions,
        },
        failures=fetched.failures,
        excluded=_excluded_tables(fetched.excluded, is_index_symbol),
        requests=fetched.requests,
        asked=asked or {},
    )


def check_fetched(batch: Batch, source: str, plan: Plan, *, is_complete: bool) -> list[str]:
    """Fail when the source gave nothing to load; return warnings for partial failures."""
    bars = batch.frames["raw.index_bars"].height + batch.frames["raw.equity_bars"].height
    failed = batch.failures.filter(pl.col("dataset") == "bars")
    if bars == 0:
        if failed.height:
            errors = failed.get_column("error").value_counts(sort=True).head(3)
            why = "; ".join(f"{e} ({n})" for e, n in errors.iter_rows())
            asked = max(len(batch.asked.get("bars", [])), failed.height)
            symbols = failed.get_column("symbol").unique(maintain_order=True)
            named = ", ".join(symbols.head(10).to_list()) + (f" and {symbols.len() - 10:,} more" if symbols.len() > 10 else "")
            raise LoadFailed(
                f"{source} returned no data for {failed.height:,} of {asked:,} symbols ({why}): {named}; "
                "nothing was loaded; check the network or run with --source sample"
            )
        raise LoadFailed(
            f"{source} returned no bars for {plan.bars_start}..{plan.as_of}: nothing was loaded"
        )
    warnings = []
    if failed.height:
        sample = ", ".join(failed.get_column("symbol").head(10).to_list())
        warnings.append(f"{source}: no bars for {failed.height:,} symbol(s), e.g. {sample}; they are fetched first next time")
    # A universe without a snapshot this time keeps its stored membership: say so, or the night
    # would publish on an old membership without a word. (A source that is not expected to be
    # complete, Capabilities.is_complete, holds what its user has: a csv folder without a holdings
    # file is a choice there, as in check_completeness.)
    holdings_failed = batch.failures.filter(pl.col("dataset") == "holdings") if is_complete else batch.failures.clear()
    for universe, error in holdings_failed.select("symbol", "error").unique(maintain_order=True).iter_rows():
        warnings.append(f"{source}: no holdings snapshot for {universe} ({error}); its membership is not updated this time")
    return warnings


# validate ---------------------------------------------------------------------------------------


# The stored row before a batch is looked for this many days back (a weekend, a holiday, a halt of a
# few weeks); a symbol dormant for longer is read at its last stored session (meta.series).
GATE_HISTORY_DAYS = 40


def history_for_gate(con: duckdb.DuckDBPyConnection, table: str, batch: pl.DataFrame) -> pl.DataFrame:
    """The stored rows the gate compares a batch of bars with, per symbol: the last stored row
    before the symbol's first session in the batch (the day-over-day checks) and its stored rows
    from that session to the batch's last (big_revision compares a re-fetch with them; without them
    it never sees a revision).

    Per symbol, because a night's symbols do not all start together: one catching up from its last
    stored bar years back used to widen the range for every symbol, so the gate read and compared
    every stored bar since then (5.3M rows on a 10-year sample home). Reads only the row groups of
    the dates concerned (the bounds are literals); a symbol with no stored row in the
    GATE_HISTORY_DAYS before its first is read at its last stored session (meta.series)."""
    firsts = (
        batch.select("symbol", "session_date")
        .drop_nulls()
        .group_by("symbol")
        .agg(pl.col("session_date").min().alias("first_date"))
    )
    if firsts.height == 0:
        return read(con, f"SELECT * EXCLUDE (source, fetched_at, load_id) FROM {table} LIMIT 0")
    hi = batch.get_column("session_date").max()
    # Symbols whose batch starts long before its end (a rebase re-sends a whole history) are read
    # apart, named as literals: with the others, the one date bound would reach back decades for
    # every symbol (pipeline.derive.split_by_reach).
    pieces = split_by_reach(firsts, "first_date", hi)
    got = pl.concat(
        [_stored_for_gate(con, table, piece, hi, named=i == 1) for i, piece in enumerate(pieces)], how="vertical_relaxed"
    )
    with registered(con, _gate_firsts=firsts):
        dormant = con.execute(
            f"SELECT s.symbol, s.last_bar_date FROM meta.series s JOIN _gate_firsts f USING (symbol) "
            f"WHERE s.last_bar_date < f.first_date - INTERVAL {GATE_HISTORY_DAYS} DAY"
        ).fetchall()
    if not dormant:
        return got
    days = ", ".join(f"DATE '{d}'" for d in sorted({d for _, d in dormant}))
    names = ", ".join(sql_text(s) for s, _ in dormant)
    last = pl.DataFrame(dormant, schema={"symbol": pl.String, "session_date": pl.Date}, orient="row")
    older = read(con, f"SELECT * EXCLUDE (source, fetched_at, load_id) FROM {table} WHERE session_date IN ({days}) AND symbol IN ({names})")
    return pl.concat([got, older.join(last, on=["symbol", "session_date"], how="semi")], how="vertical_relaxed")


def _stored_for_gate(con: duckdb.DuckDBPyConnection, table: str, firsts: pl.DataFrame, hi: date, *, named: bool) -> pl.DataFrame:
    """history_for_gate's stored rows of the symbols in `firsts` (symbol, first_date), read with
    their own date bounds; `named`: with their symbols as literals too."""
    lo = firsts.get_column("first_date").min()
    recent = lo - timedelta(days=GATE_HISTORY_DAYS)
    symbols = literal_in("t.symbol", firsts.get_column("symbol")) if named else ""
    cols = "SELECT t.* EXCLUDE (source, fetched_at, load_id) FROM " + table + " t JOIN _gate_firsts f USING (symbol)"
    with registered(con, _gate_firsts=firsts):
        return read(
            con,
            f"""({cols} WHERE t.session_date BETWEEN DATE '{lo}' AND DATE '{hi}' AND t.session_date >= f.first_date{symbols})
                UNION ALL
                ({cols} WHERE t.session_date >= DATE '{recent}' AND t.session_date < DATE '{hi}'
                   AND t.session_date < f.first_date AND t.session_date >= f.first_date - INTERVAL {GATE_HISTORY_DAYS} DAY{symbols}
                 QUALIFY row_number() OVER (PARTITION BY t.symbol ORDER BY t.session_date DESC) = 1)""",
        )


def validate(con: duckdb.DuckDBPyConnection, batch: Batch, *, load_id: str, as_of: date, settings: Settings):
    from expectations.docs import save_validations
    from expectations.gate import gate  # GX costs seconds to import: only here

    results = {}
    for table, frame in batch.frames.items():
        history = None
        if (
            table in ("raw.index_bars", "raw.equity_bars")
            and frame.height
            and frame.schema.get("session_date") == pl.Date
            and frame.schema.get("symbol") == pl.String
        ):
            history = history_for_gate(con, table, frame)
        results[table] = gate(
            table,
            frame,
            load_id=load_id,
            as_of=as_of,
            severity_overrides=settings.dq_severity,
            history=history,
            universes={u.name: u for u in settings.universes},
        )
    save_validations(settings, load_id, results)
    return results


def quarantine_summary(gated: dict, batch: Batch) -> list[str]:
    """One line per table and reason for the fetched rows that did not load: the gate's
    quarantine-level findings (the rest of the table loaded), and the rows the source excluded."""
    lines = [m for g in gated.values() for m in g.quarantined]
    excluded = batch.excluded
    if excluded.height:
        by_table = excluded.group_by("dataset", maintain_order=True).agg(
            pl.len().alias("rows"), pl.col("key").first(), pl.col("reason").first()
        )
        for table, rows, key, reason in by_table.iter_rows():
            lines.append(f"{table}: {rows:,} row(s) excluded by the source, e.g. {key}: {reason}")
    return lines


def quarantine_note(gated: dict, batch: Batch) -> str | None:
    """The short form of quarantine_summary for meta.loads.message: counts per table and expectation."""
    parts = []
    for table, g in gated.items():
        if g.quarantine.height:
            for exp, rows in g.quarantine.group_by("expectation", maintain_order=True).len().iter_rows():
                parts.append(f"{table} {exp} {rows:,}")
    if batch.excluded.height:
        for table, rows in batch.excluded.group_by("dataset", maintain_order=True).len().iter_rows():
            parts.append(f"{table} excluded_by_source {rows:,}")
    if not parts:
        return None
    total = sum(g.quarantine.height for g in gated.values()) + batch.excluded.height
    return f"loaded; {total:,} row(s) in dq.quarantine: " + "; ".join(parts)


# completeness ----------------------------------------------------------------------------------


def check_completeness(
    con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date, batch: Batch, *, is_complete: bool
) -> str | None:
    """Why the night must be held, or None when enough members and every index have a bar.

    A source that is not expected to be complete (Capabilities.is_complete; a csv folder holds what
    the user has, one index, say): the marts cover that and nothing more is expected, so it is
    never held.
    """
    if not is_complete:
        return None
    from expectations.completeness import completeness

    members = read(
        con,
        "SELECT universe, symbol FROM core.membership WHERE valid_from_date <= ? "
        "AND (valid_to_date IS NULL OR valid_to_date >= ?)",
        [as_of, as_of],
    )
    bars = read(con, "SELECT symbol, session_date FROM raw.equity_bars WHERE session_date = ?", [as_of])
    index_bars = read(con, "SELECT symbol, session_date FROM raw.index_bars WHERE session_date = ?", [as_of])
    result = completeness(members, bars, as_of, list(settings.index_symbols), index_bars, settings.completeness_min_share)
    return None if result.ok else result.message
