"""Our rebuild of core and marts from raw against idiomatic pandas of the same definitions.

Usage: .venv/bin/python bench/rebuild_vs_pandas.py [--home DIR] [--rounds 3] [--sample-start DATE]

Without --home it backfills a fresh sample warehouse in a temporary folder first (the pipeline
steps called directly, no Prefect; about a minute for the default sample). With --home it reads
DIR/warehouse.duckdb (e.g. a home made by `SMALLCAPS_HOME=DIR smallcaps backfill --source sample`).

The raw tables are copied once into an in-memory DuckDB; our derivation reads them from there (as
it reads the warehouse), the pandas side gets them once as pandas frames, so both start from raw
held in memory. The time our side spends reading raw into polars is printed separately. Then, for
--rounds rounds, each side runs once, the order alternating between rounds (the machine is
shared: alternation spreads the noise over both). Printed: per-table median seconds of each side
and the ratio pandas / ours (above 1: ours is faster), CPU seconds, the load average.

Then it CHECKS that both sides computed the same tables: same keys, every value equal (floats
within 1e-9 relative), and lists every column that disagrees with examples. The yardstick is
bench/pandas_marts.py; `marts.headlines` is not in it (sentences, not a computation).

`ours` below is the one function that runs our derivation: point it at a new entry point when
the derivation moves.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pandas_marts  # noqa: E402

from smallcaps import calendar  # noqa: E402
from smallcaps.settings import Settings  # noqa: E402

RAW_TABLES = ("raw.index_bars", "raw.equity_bars", "raw.holdings", "raw.fundamentals")
# The nine tables both sides compute, with their primary keys (warehouse/migrations/0001_init.sql).
KEYS: dict[str, tuple[str, ...]] = {
    "core.equity_returns": ("symbol", "session_date"),
    "core.membership": ("universe", "symbol", "valid_from_date"),
    "core.cohorts": ("universe", "symbol", "session_date"),
    "marts.index_daily": ("symbol", "session_date"),
    "marts.index_records": ("symbol", "year"),
    "marts.relative_performance": ("lead_symbol", "lag_symbol", "session_date"),
    "marts.cohort_composition": ("universe", "session_date", "cohort"),
    "marts.cohort_performance": ("universe", "anchor", "cohort", "session_date"),
    "marts.sector_daily": ("universe", "sector", "session_date"),
}
REL_TOL = 1e-9
EXAMPLES = 5


def ours(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date) -> tuple[dict[str, pl.DataFrame], dict[str, float]]:
    """Our derivation of every core table and mart from the raw tables `con` holds:
    ({table: frame}, {table: seconds}). Today warehouse/rebuild.py:derive."""
    from warehouse.rebuild import derive

    out = derive(con, settings, as_of)
    con.complete()  # derive leaves a fetchone() result open; DuckDB 2.0 blocks the next query on it
    return out


def load_avg() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def scalar(con: duckdb.DuckDBPyConnection, sql: str):
    # fetchall, not fetchone: DuckDB 2.0 refuses further work while a result is half read.
    return con.execute(sql).fetchall()[0][0]


def raw_in_memory(warehouse: Path) -> duckdb.DuckDBPyConnection:
    mem = duckdb.connect()
    mem.execute(f"ATTACH '{warehouse}' AS src (READ_ONLY)")
    mem.execute("CREATE SCHEMA raw")
    for table in RAW_TABLES:
        mem.execute(f"CREATE TABLE {table} AS SELECT * FROM src.{table}")
    mem.execute("DETACH src")
    return mem


def raw_for_pandas(mem: duckdb.DuckDBPyConnection, as_of: date) -> dict[str, pd.DataFrame]:
    """The raw tables as pandas frames, cut at as_of as derive cuts them."""
    where = {"raw.index_bars": "session_date", "raw.equity_bars": "session_date", "raw.holdings": "as_of_date"}
    out = {}
    for table in RAW_TABLES:
        sql = f"SELECT * EXCLUDE (source, fetched_at, load_id) FROM {table}"
        if table in where:
            sql += f" WHERE {where[table]} <= DATE '{as_of}'"
        out[table] = mem.sql(sql).df()
    out["raw.fundamentals"] = out["raw.fundamentals"].drop(columns="first_seen_at")
    return out


def sessions_for(mem: duckdb.DuckDBPyConnection, as_of: date) -> pd.DatetimeIndex:
    """The sessions derive uses: from the first raw date to as_of."""
    first = scalar(
        mem,
        "SELECT least((SELECT min(session_date) FROM raw.index_bars), (SELECT min(session_date) FROM raw.equity_bars), "
        "(SELECT min(as_of_date) FROM raw.holdings))",
    )
    return pandas_marts.sessions_index(calendar.sessions(first, as_of)).as_unit("us")


def compare(name: str, mine: pl.DataFrame, theirs: pd.DataFrame) -> list[str]:
    """Disagreements between our table and the pandas one, as printable lines (none: they agree)."""
    keys = list(KEYS[name])
    nans = sum(mine[c].is_nan().sum() for c, t in mine.schema.items() if t.is_float())
    mine = mine.with_columns(pl.col(c).fill_nan(None) for c, t in mine.schema.items() if t.is_float())
    missing = [c for c in mine.columns if c not in theirs.columns]
    if missing:
        return [f"pandas lacks column(s) {', '.join(missing)}"]
    other = pl.from_pandas(theirs[mine.columns], nan_to_null=True).select(
        pl.col(c).cast(t) for c, t in mine.schema.items()
    )
    problems = []
    if nans:
        problems.append(f"ours holds {nans} NaN value(s) (compared as null)")
    for side, frame in (("ours", mine), ("pandas", other)):
        dupes = frame.select(keys).is_duplicated().sum()
        if dupes:
            problems.append(f"{side}: {dupes} rows share a key")
    for side, a, b in (("ours", mine, other), ("pandas", other, mine)):
        only = a.join(b, on=keys, how="anti", nulls_equal=True)
        if only.height:
            problems.append(f"{only.height:,} keys only in {side}, e.g. {only.select(keys).head(EXAMPLES).rows()}")
    both = mine.join(other, on=keys, how="inner", suffix="_pd", nulls_equal=True)
    for c in mine.columns:
        if c in keys:
            continue
        a, b = pl.col(c), pl.col(f"{c}_pd")
        if mine.schema[c].is_float():
            scale = pl.max_horizontal(a.abs(), b.abs())
            differs = (a.is_null() != b.is_null()) | ((a - b).abs() > REL_TOL * scale).fill_null(False)
        else:
            differs = a.ne_missing(b)
        bad = both.filter(differs)
        if bad.height:
            sample = bad.select(*keys, c, f"{c}_pd").head(EXAMPLES).rows()
            problems.append(f"column {c}: {bad.height:,} of {both.height:,} rows differ (ours, pandas last), e.g. {sample}")
    return problems


def build_sample_home(sample_start: date | None) -> Path:
    from rebuild_marts import backfill_without_prefect

    home = Path(tempfile.mkdtemp(prefix="smallcaps-bench-pandas-"))
    settings = Settings(home=home, **({"sample_start": sample_start} if sample_start else {}))
    t = time.perf_counter()
    backfill_without_prefect(settings)
    print(f"sample backfill (no Prefect) into {home}: {time.perf_counter() - t:.1f} s")
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a data home holding warehouse.duckdb (default: backfill a new sample)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, alternating (default 3)")
    parser.add_argument("--sample-start", type=date.fromisoformat, help="first session of the sample, when backfilling one")
    args = parser.parse_args()

    print(load_avg())
    home = args.home or build_sample_home(args.sample_start)
    settings = Settings(home=home)
    warehouse = home / "warehouse.duckdb"
    if not warehouse.exists():
        sys.exit(f"{warehouse} does not exist: give --home a data home with a loaded warehouse, or no --home")

    mem = raw_in_memory(warehouse)
    as_of = scalar(mem, "SELECT max(session_date) FROM raw.index_bars")
    raw_rows = {t: scalar(mem, f"SELECT count(*) FROM {t}") for t in RAW_TABLES}
    t = time.perf_counter()
    for table in RAW_TABLES:
        mem.sql(f"SELECT * EXCLUDE (source, fetched_at, load_id) FROM {table}").pl()
    read_polars_s = time.perf_counter() - t
    t = time.perf_counter()
    raw_pd = raw_for_pandas(mem, as_of)
    read_pandas_s = time.perf_counter() - t
    sessions = sessions_for(mem, as_of)
    pairs = [(p.lead, p.lag) for p in settings.pairs]
    print(f"raw as of {as_of}: " + ", ".join(f"{t} {n:,}" for t, n in raw_rows.items()) + f"; {len(sessions)} sessions")
    print(f"raw read from the in-memory DuckDB: into polars {read_polars_s:.2f} s (inside our total), "
          f"into pandas {read_pandas_s:.2f} s (outside the pandas total)")
    print(f"ours: {ours.__doc__.split('Today ')[-1].strip().rstrip('.')}; pandas: bench/pandas_marts.py:derive")

    runs: dict[str, list[dict[str, float]]] = {"ours": [], "pandas": []}
    cpu: dict[str, list[float]] = {"ours": [], "pandas": []}
    results: dict[str, dict] = {}

    def run(side: str) -> None:
        gc.collect()
        t, c = time.perf_counter(), time.process_time()
        if side == "ours":
            frames, timings = ours(mem, settings, as_of)
        else:
            frames, timings = pandas_marts.derive(raw_pd, sessions, pairs=pairs, anchors=settings.anchors)
        timings = dict(timings, total=time.perf_counter() - t)
        cpu[side].append(time.process_time() - c)
        runs[side].append(timings)
        results[side] = frames

    for r in range(args.rounds):
        order = ("ours", "pandas") if r % 2 == 0 else ("pandas", "ours")
        for side in order:
            results.pop(side, None)
            run(side)
        print(f"round {r + 1}: ours {runs['ours'][-1]['total']:.2f} s, pandas {runs['pandas'][-1]['total']:.2f} s; {load_avg()}")

    def med(side: str, table: str) -> float:
        return statistics.median(r[table] for r in runs[side])

    print()
    print(f"median of {args.rounds} alternating rounds (seconds; ratio = pandas / ours, above 1: ours faster)")
    header = f"{'table':28} {'rows':>11} {'ours s':>8} {'pandas s':>9} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    ours_sum = pandas_sum = 0.0
    for table in KEYS:
        o, p = med("ours", table), med("pandas", table)
        ours_sum += o
        pandas_sum += p
        print(f"{table:28} {results['ours'][table].height:>11,} {o:8.2f} {p:9.2f} {p / o:7.2f}")
    print("-" * len(header))
    print(f"{'the nine tables':28} {'':>11} {ours_sum:8.2f} {pandas_sum:9.2f} {pandas_sum / ours_sum:7.2f}")
    ours_total, pandas_total = med("ours", "total"), med("pandas", "total")
    print(f"{'whole call':28} {'':>11} {ours_total:8.2f} {pandas_total:9.2f} {pandas_total / ours_total:7.2f}")
    print(f"  ours' whole call also reads raw into polars, builds core.sessions and marts.headlines "
          f"({med('ours', 'marts.headlines'):.2f} s); pandas' has no headlines")
    print(f"CPU seconds, median: ours {statistics.median(cpu['ours']):.1f}, pandas {statistics.median(cpu['pandas']):.1f}")

    print()
    print(f"agreement (same keys; values equal, floats within {REL_TOL:g} relative):")
    disagreeing = 0
    for table in KEYS:
        problems = compare(table, results["ours"][table], results["pandas"][table])
        disagreeing += bool(problems)
        print(f"  {table}: {'agree' if not problems else 'DISAGREE'}")
        for line in problems:
            print(f"    {line}")
    print(f"{len(KEYS) - disagreeing} of {len(KEYS)} tables agree; {load_avg()}")
    sys.exit(1 if disagreeing else 0)


if __name__ == "__main__":
    main()
