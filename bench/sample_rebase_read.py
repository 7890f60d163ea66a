"""A night's rebase reads from the sample cache: whole histories of a few symbols, in chunks,
read directly (rows of <= FEW_ROWS companies, sources/sample_blocks._Block._read_rows) against
through a memory map of each block file, alternating in one process.

Usage: .venv/bin/python bench/sample_rebase_read.py HOME --start DATE [--companies N] [--end DATE]
                                                     [--symbols 34] [--chunks 10] [--rounds 3]

HOME is a sample data home (its cache/sample); --start and --companies are its sample settings.
A dividend makes the pipeline fetch a symbol's whole stored history again; on 2026-11-30 a 30-year,
10,000-company home re-fetched 34 symbols in 10 chunks. This takes that many member symbols of
--end, each from its first stored bar, and reads them as the flow's chunks do. The cache is keyed by
the sample's code: a home prepared by another checkout is simulated again first (untimed, but it
replaces that home's cache: use a copy).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--start", required=True)
    parser.add_argument("--companies", type=int)
    parser.add_argument("--end", type=date.fromisoformat, help="default: the home's last stored session")
    parser.add_argument("--symbols", type=int, default=34)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["SMALLCAPS_HOME"] = str(args.home)
    os.environ["SMALLCAPS_SAMPLE_START"] = args.start
    if args.companies:
        os.environ["SMALLCAPS_SAMPLE_COMPANIES"] = str(args.companies)

    import duckdb
    import numpy as np

    from ground.settings import Settings
    from sources import make_source, sample_blocks

    con = duckdb.connect(str(args.home / "warehouse.duckdb"), read_only=True)
    try:
        end = args.end or con.execute("SELECT max(session_date) FROM raw.index_bars").fetchone()[0]
        rows = con.execute(
            "SELECT symbol, min(session_date) FROM raw.equity_bars WHERE symbol IN "
            "(SELECT DISTINCT symbol FROM raw.holdings WHERE as_of_date = (SELECT max(as_of_date) FROM raw.holdings)) "
            "GROUP BY symbol ORDER BY hash(symbol) LIMIT ?",
            [args.symbols],
        ).fetchall()
    finally:
        con.close()
    maps = [0]
    real_load = sample_blocks._load_npy

    def counted(*a, **k):
        maps[0] += 1
        return real_load(*a, **k)

    sample_blocks._load_npy = counted
    few_rows = sample_blocks.FEW_ROWS
    source = make_source(Settings())
    t = time.perf_counter()
    source._market_to(end)
    print(f"{len(rows)} symbols from {min(d for _, d in rows)} to {end} in {args.chunks} chunks; "
          f"cache {source.cache_folder.name} ready in {time.perf_counter() - t:.1f} s (untimed)")
    seconds: dict[str, list[float]] = {"direct": [], "mapped": []}
    for r in range(args.rounds):
        for how in (("direct", "mapped") if r % 2 == 0 else ("mapped", "direct")):
            sample_blocks.FEW_ROWS = few_rows if how == "direct" else 0
            source = make_source(Settings())  # a new market: each side opens its block files afresh, as a night does
            source._market_to(end)
            maps[0] = 0
            t = time.perf_counter()
            got = sum(
                source.bars([s for s, _ in rows[i :: args.chunks]], min(d for _, d in rows[i :: args.chunks]), end).bars.height
                for i in range(args.chunks)
            )
            seconds[how].append(time.perf_counter() - t)
            print(f"round {r + 1} {how}: {seconds[how][-1]:.2f} s, {got:,} rows, {maps[0]:,} block files mapped")
    sample_blocks.FEW_ROWS = few_rows
    med = {k: float(np.median(v)) for k, v in seconds.items()}
    print(f"median: mapped {med['mapped']:.2f} s, direct {med['direct']:.2f} s; ratio mapped / direct {med['mapped'] / med['direct']:.1f}")


if __name__ == "__main__":
    main()
