"""Our derivation of core and marts from raw against idiomatic pandas of the same definitions.

Usage: .venv/bin/python bench/rebuild_vs_pandas.py [--home DIR] [--rounds 3] [--sample-start DATE]
                                                    [--sides memory,pandas,rebuild,rebuild-over]

Without --home it backfills a fresh sample warehouse in a temporary folder first (the pipeline
steps called directly, no Prefect). With --home it reads DIR/warehouse.duckdb (a home made by
`SMALLCAPS_HOME=DIR smallcaps backfill --source sample`, say); that file is only read.

Four sides, each run once per round, the order rotating between rounds (the machine is shared:
rotation spreads the noise over all sides), all in this one process:
- `pandas`: bench/pandas_marts.py (the yardstick), on the raw tables held as pandas frames (read
  once, outside its time).
- `memory`: our transforms over the whole history at once, in memory, no carried state, no window
  (what tests/helpers/oracle.py:derive_all computes, here with a time per table); it reads the raw
  tables from an in-memory DuckDB into polars inside its time.
- `rebuild`: the real full rebuild, `pipeline.loading.rebuild` (what `smallcaps rebuild` runs
  without Prefect, publish and export), on a copy of the warehouse's raw tables in a new warehouse
  file whose core and marts are empty: every derived row is computed year by year, gated, and
  written. Its time is the whole thing: open the file, rebuild (one transaction), close.
- `rebuild-over`: the same rebuild on a copy of the whole warehouse, whose core and marts already
  hold the right rows: everything is computed and compared, nothing written (the cost of
  `smallcaps rebuild` on a healthy warehouse).
Copies are made before each run, outside its time. Great Expectations is imported before the first
round (its import, paid once by any process that gates, is printed apart).

Printed: per-table median seconds of each side, the ratio pandas / side (above 1: ours faster; the
goal of issue 13 is 10 for a full rebuild), CPU seconds, the load average. Then it CHECKS that every
side of ours computed what pandas computed: same keys, every value equal (floats within 1e-9
relative), listing each column that disagrees with examples; exit 1 if any table disagrees.
`marts.headlines` is not compared (sentences built from the other marts, not in the yardstick).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pandas_marts  # noqa: E402

from ground import calendar  # noqa: E402
from ground.registry import get  # noqa: E402
from ground.settings import Settings  # noqa: E402

RAW_TABLES = ("raw.index_bars", "raw.equity_bars", "raw.holdings", "raw.fundamentals")
# Copied into the rebuild's warehouse as well (derivation does not read it; a warehouse has it).
RAW_COPIED = (*RAW_TABLES, "raw.corporate_actions")
# The eleven datasets the yardstick computes, in the order it computes them.
TABLES = (
    "marts.index_daily",
    "marts.index_records",
    "marts.index_performance",
    "marts.relative_performance",
    "core.membership",
    "core.cohorts",
    "core.equity_returns",
    "marts.cohort_composition",
    "marts.cohort_performance",
    "marts.sector_daily",
    "marts.sector_performance",
)
KEYS: dict[str, tuple[str, ...]] = {t: get(t).key for t in TABLES}
SIDES = ("memory", "pandas", "rebuild", "rebuild-over")
REL_TOL = 1e-9
EXAMPLES = 5


# --- our side, in memory -------------------------------------------------------------------------


def _raw(con: duckdb.DuckDBPyConnection, table: str, as_of: date, col: str | None = "session_date") -> pl.LazyFrame:
    sql = f"SELECT * EXCLUDE (source, fetched_at, load_id) FROM {table}"
    if col:
        sql += f" WHERE {col} <= DATE '{as_of}'"
    return con.sql(sql).pl().lazy()


def first_raw_date(con: duckdb.DuckDBPyConnection) -> date:
    return scalar(
        con,
        "SELECT least((SELECT min(session_date) FROM raw.index_bars), (SELECT min(session_date) FROM raw.equity_bars), "
        "(SELECT min(as_of_date) FROM raw.holdings))",
    )


def whole_history(
    con: duckdb.DuckDBPyConnection, *, as_of: date, pairs, anchors
) -> tuple[dict[str, pl.DataFrame], dict[str, float]]:
    """Every table of TABLES from the raw tables `con` holds, by our transforms over the whole
    history at once (tests/helpers/oracle.py:derive_all without headlines): ({table: frame},
    {table: seconds, "read": seconds reading raw into polars})."""
    from transforms.cohort_performance import cohort_performance, resolve_anchors
    from transforms.cohorts import cohort_composition, cohorts
    from transforms.index_daily import index_daily, index_records
    from transforms.index_performance import index_performance
    from transforms.membership import membership
    from transforms.relative_performance import relative_performance
    from transforms.returns import equity_returns
    from transforms.sectors import sector_daily, sector_performance

    timings: dict[str, float] = {}
    t = time.perf_counter()
    index_bars = _raw(con, "raw.index_bars", as_of)
    equity_bars = _raw(con, "raw.equity_bars", as_of)
    holdings = _raw(con, "raw.holdings", as_of, "as_of_date")
    fundamentals = _raw(con, "raw.fundamentals", as_of, None).drop("first_seen_at")
    days = calendar.sessions(first_raw_date(con), as_of)
    s = pl.LazyFrame({"session_date": days}, schema={"session_date": pl.Date})
    timings["read"] = time.perf_counter() - t

    out: dict[str, pl.DataFrame] = {}

    def timed(name: str, frame: pl.LazyFrame) -> pl.DataFrame:
        t = time.perf_counter()
        out[name] = frame.collect()
        timings[name] = time.perf_counter() - t
        return out[name]

    daily = timed("marts.index_daily", index_daily(index_bars)).lazy()
    timed("marts.index_records", index_records(daily))
    timed("marts.index_performance", index_performance(daily, s, anchors=anchors, as_of=as_of))
    timed("marts.relative_performance", relative_performance(daily, pairs))
    members = timed("core.membership", membership(holdings, s)).lazy()
    coh = timed("core.cohorts", cohorts(members, holdings, fundamentals, s)).lazy()
    rets = timed("core.equity_returns", equity_returns(equity_bars)).lazy()
    timed("marts.cohort_composition", cohort_composition(coh))
    timed("marts.cohort_performance", cohort_performance(coh, rets, s, anchors=anchors, as_of=as_of))
    sectors = timed("marts.sector_daily", sector_daily(coh, rets)).lazy()
    timed("marts.sector_performance", sector_performance(sectors, resolve_anchors(s, anchors, as_of=as_of)))
    return out, timings


def ours(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date) -> tuple[dict[str, pl.DataFrame], dict[str, float]]:
    """Our in-memory whole-history derivation with the pairs and anchors of `settings`."""
    return whole_history(con, as_of=as_of, pairs=[(p.lead, p.lag) for p in settings.pairs], anchors=list(settings.anchors))


# --- our side, the real rebuild --------------------------------------------------------------------


def raw_only_warehouse(source: Path, folder: Path) -> Path:
    """A new warehouse (migrated, empty core and marts) holding a copy of the raw tables of
    `source`: what the `rebuild` side starts from, copied again before each run."""
    from pipeline.load_run import open_warehouse

    settings = Settings(home=folder)
    con = open_warehouse(settings)
    try:
        con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
        for table in RAW_COPIED:
            con.execute(f"INSERT INTO {table} SELECT * FROM src.{table}")
        con.execute("DETACH src")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return settings.warehouse_path


def fresh_home(template: Path) -> Path:
    """A new home whose warehouse is a copy of `template` (a warehouse file)."""
    home = Path(tempfile.mkdtemp(prefix="smallcaps-bench-rebuild-"))
    shutil.copyfile(template, home / "warehouse.duckdb")
    return home


def real_rebuild(home: Path) -> dict[str, float]:
    """loading.rebuild on home's warehouse, as `smallcaps rebuild` runs it (without its publish and
    export): seconds per dataset, "derive" (all of them), "open" and "close" (the file)."""
    from pipeline import load_run, loading
    from warehouse import load_log

    settings = Settings(home=home)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    con = load_run.open_warehouse(settings)
    timings["open"] = time.perf_counter() - t
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    load_id = load_run.new_load_id(now)
    load_log.begin(con, load_id=load_id, flow_run_id=None, flow_name="bench-rebuild", source="sample", start=None, end=None)
    loaded = loading.rebuild(con, settings, load_id=load_id, at=now)
    timings.update(loaded.timings)
    t = time.perf_counter()
    con.close()
    timings["close"] = time.perf_counter() - t
    return timings


def read_tables(warehouse: Path) -> dict[str, pl.DataFrame]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {t: con.sql(f"SELECT * FROM {t}").pl() for t in TABLES}
    finally:
        con.close()


# --- both ------------------------------------------------------------------------------------------


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
    """The raw tables as pandas frames, cut at as_of as our derivation cuts them."""
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
    """The sessions our derivation uses: from the first raw date to as_of."""
    return pandas_marts.sessions_index(calendar.sessions(first_raw_date(mem), as_of)).as_unit("us")


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
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, in rotating order (default 3)")
    parser.add_argument("--sample-start", type=date.fromisoformat, help="first session of the sample, when backfilling one")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, of {', '.join(SIDES)} (default all)")
    args = parser.parse_args()
    sides = [s for s in args.sides.split(",") if s]
    unknown = [s for s in sides if s not in SIDES]
    if unknown or "pandas" not in sides or len(sides) < 2:
        sys.exit(f"--sides {args.sides!r}: give pandas and at least one of {', '.join(s for s in SIDES if s != 'pandas')}")

    print(load_avg())
    home = args.home or build_sample_home(args.sample_start)
    settings = Settings(home=home)
    warehouse = home / "warehouse.duckdb"
    if not warehouse.exists():
        sys.exit(f"{warehouse} does not exist: give --home a data home with a loaded warehouse, or no --home")
    scratch = Path(tempfile.mkdtemp(prefix="smallcaps-bench-pandas-scratch-"))

    mem = raw_in_memory(warehouse)
    as_of = scalar(mem, "SELECT max(session_date) FROM raw.index_bars")
    raw_rows = {t: scalar(mem, f"SELECT count(*) FROM {t}") for t in RAW_TABLES}
    t = time.perf_counter()
    raw_pd = raw_for_pandas(mem, as_of)
    read_pandas_s = time.perf_counter() - t
    sessions = sessions_for(mem, as_of)
    pairs = [(p.lead, p.lag) for p in settings.pairs]
    print(f"raw as of {as_of}: " + ", ".join(f"{t} {n:,}" for t, n in raw_rows.items()) + f"; {len(sessions)} sessions")
    print(f"raw read into pandas once: {read_pandas_s:.2f} s (outside the pandas total)")
    if "rebuild" in sides:
        t = time.perf_counter()
        raw_only = raw_only_warehouse(warehouse, scratch / "raw-only")
        print(f"raw-only warehouse for the rebuild side: {raw_only.stat().st_size / 1e6:,.0f} MB, made in {time.perf_counter() - t:.1f} s")
    if any(s.startswith("rebuild") for s in sides):
        from expectations.gate import warm_up

        t = time.perf_counter()
        warm_up()
        print(f"Great Expectations import and context (once per process, before the rounds): {time.perf_counter() - t:.1f} s")

    runs: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    cpu: dict[str, list[float]] = {s: [] for s in sides}
    results: dict[str, dict] = {}
    homes: dict[str, Path] = {}

    def run(side: str) -> None:
        home_copy = None
        if side == "rebuild":
            home_copy = fresh_home(raw_only)
        elif side == "rebuild-over":
            home_copy = fresh_home(warehouse)
        gc.collect()
        t, c = time.perf_counter(), time.process_time()
        if side == "memory":
            frames, timings = ours(mem, settings, as_of)
        elif side == "pandas":
            frames, timings = pandas_marts.derive(raw_pd, sessions, pairs=pairs, anchors=settings.anchors)
        else:
            frames = None
            timings = real_rebuild(home_copy)
        timings = dict(timings, total=time.perf_counter() - t)
        cpu[side].append(time.process_time() - c)
        runs[side].append(timings)
        if frames is not None:
            results[side] = frames
        else:
            old = homes.pop(side, None)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            homes[side] = home_copy

    for r in range(args.rounds):
        order = sides[r % len(sides):] + sides[: r % len(sides)]
        for side in order:
            results.pop(side, None)
            run(side)
        print(f"round {r + 1}: " + ", ".join(f"{s} {runs[s][-1]['total']:.2f} s" for s in order) + f"; {load_avg()}")
    for side, h in homes.items():
        results[side] = read_tables(h / "warehouse.duckdb")

    def med(side: str, key: str) -> float:
        return statistics.median(r.get(key, 0.0) for r in runs[side])

    ours_sides = [s for s in sides if s != "pandas"]
    print()
    print(f"median of {args.rounds} rounds in rotating order (seconds; ratio = pandas / ours, above 1: ours faster)")
    header = f"{'table':28} {'rows':>11} {'pandas s':>9}" + "".join(f" {s + ' s':>15} {'ratio':>6}" for s in ours_sides)
    print(header)
    print("-" * len(header))
    sums = {s: 0.0 for s in sides}
    for table in TABLES:
        p = med("pandas", table)
        sums["pandas"] += p
        line = f"{table:28} {len(results['pandas'][table]):>11,} {p:9.2f}"
        for s in ours_sides:
            o = med(s, table)
            sums[s] += o
            line += f" {o:15.2f} {p / o if o else float('inf'):6.2f}"
        print(line)
    print("-" * len(header))
    line = f"{'the eleven tables':28} {'':>11} {sums['pandas']:9.2f}"
    for s in ours_sides:
        line += f" {sums[s]:15.2f} {sums['pandas'] / sums[s]:6.2f}"
    print(line)
    p_total = med("pandas", "total")
    line = f"{'whole run':28} {'':>11} {p_total:9.2f}"
    for s in ours_sides:
        line += f" {med(s, 'total'):15.2f} {p_total / med(s, 'total'):6.2f}"
    print(line)
    print("CPU seconds, median: " + ", ".join(f"{s} {statistics.median(cpu[s]):.1f}" for s in sides))
    if "memory" in sides:
        print(f"  memory's whole run includes reading raw into polars ({med('memory', 'read'):.2f} s); pandas' does not")
    for s in ("rebuild", "rebuild-over"):
        if s in sides:
            extra = {k: med(s, k) for k in ("open", "core.sessions", "marts.headlines", "close")}
            print(f"  {s}'s tables include gating each, reading the stored rows and writing what differs; its whole run also "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in extra.items()))

    print()
    print(f"agreement with pandas (same keys; values equal, floats within {REL_TOL:g} relative):")
    disagreeing = 0
    for s in ours_sides:
        for table in TABLES:
            problems = compare(table, results[s][table], results["pandas"][table])
            disagreeing += bool(problems)
            print(f"  {s:13} {table}: {'agree' if not problems else 'DISAGREE'}")
            for line in problems:
                print(f"    {line}")
    checked = len(TABLES) * len(ours_sides)
    print(f"{checked - disagreeing} of {checked} (side, table) pairs agree; {load_avg()}")
    for h in homes.values():
        shutil.rmtree(h, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(1 if disagreeing else 0)


if __name__ == "__main__":
    main()
