"""What the sample market's cache in the data home buys a nightly: its fetch with a warm cache
against the same fetch simulating the market from its start (no cache, as before the cache).

Usage:
  .venv/bin/python bench/sample_cache.py [--night DATE] [--rounds 3] [--companies 2750]
                                         [--starts 2024-01-02 2016-12-01] [--tmp DIR]

For each start (default: the sample's own, about 3 years of history, and one about 10 years before
the night), a cache is prepared, untimed, up to the session before the night (what last night's
run left in the data home). Then, for --rounds rounds, alternating which goes first, a fresh process
makes the night's fetch of the sample source:
  warm: on a copy of the prepared cache (copied untimed): it continues the stream by one session,
        appends it to the cache and reads the night's window;
  cold: without a cache: it simulates every session from the start.
The fetch is what flows.run asks of the source on a nightly (default settings): the holdings of
both universes from the previous session to the night, the bars of the five indexes and of every
member from 5 sessions before the night in chunks of 250 symbols, and the fundamentals of every
member in chunks of 250. Timed inside the process from making the source to the last answer
(imports and the NYSE calendar's build excluded: they cost both the same); wall and CPU seconds.
Both answers are checked to be the same rows. Printed: per round, medians, the ratio cold / warm,
the cache's size and the load average. Temporary folders are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import load_avg  # noqa: E402

CHUNK_SIZE = 250  # settings.chunk_size
OVERLAP_SESSIONS = 5  # settings.overlap_sessions

PREPARE = """
import sys
from datetime import date
from pathlib import Path
from sources.sample import SampleSource
start, companies, cache, last = date.fromisoformat(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), date.fromisoformat(sys.argv[4])
SampleSource(start=start, companies=companies, cache_dir=cache).bars(["SMP0001"], last, last)
"""

NIGHT = """
import json, sys, time
from datetime import date
from pathlib import Path
import polars as pl
from ground import calendar
from sources.sample import INDEX_SYMBOLS, UNIVERSES, SampleSource

start, companies, night = date.fromisoformat(sys.argv[1]), int(sys.argv[2]), date.fromisoformat(sys.argv[3])
cache = Path(sys.argv[4]) if sys.argv[4] else None
chunk, overlap = int(sys.argv[5]), int(sys.argv[6])
calendar.sessions(start, night)  # the calendar's one-off build: the flow pays it when it plans

wall, cpu = time.perf_counter(), time.process_time()
source = SampleSource(start=start, companies=companies, cache_dir=cache)
bars_start = night
for _ in range(overlap):
    bars_start = calendar.previous_session(bars_start)
held = source.holdings(list(UNIVERSES), calendar.previous_session(night), night).holdings
members = sorted(held.get_column("symbol").unique().to_list())
asked = [*INDEX_SYMBOLS, *members]
bars = [source.bars(asked[i : i + chunk], bars_start, night) for i in range(0, len(asked), chunk)]
funds = [source.fundamentals(members[i : i + chunk], night) for i in range(0, len(members), chunk)]
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

frames = {
    "holdings": held,
    "bars": pl.concat([b.bars for b in bars]),
    "actions": pl.concat([b.actions for b in bars]),
    "fundamentals": pl.concat([f.fundamentals for f in funds]),
}
print(json.dumps({
    "wall_s": wall, "cpu_s": cpu,
    "rows": {k: f.height for k, f in frames.items()},
    "digest": {k: int(f.hash_rows(seed=1).sum()) if f.height else 0 for k, f in frames.items()},
}))
"""


def run(code: str, args: list[str]) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"bench process failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def night_fetch(start: date, companies: int, night: date, cache: Path | None) -> dict:
    out = run(NIGHT, [start.isoformat(), str(companies), night.isoformat(), str(cache or ""), str(CHUNK_SIZE), str(OVERLAP_SESSIONS)])
    return json.loads(out.strip().splitlines()[-1])


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    from ground import calendar

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--night", type=date.fromisoformat, default=None, help="default: the latest completed session")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--companies", type=int, default=2_750)
    parser.add_argument("--starts", type=date.fromisoformat, nargs="+", default=None,
                        help="sample starts, one market each (default: 2024-01-02 and about 10 years before the night)")
    parser.add_argument("--tmp", type=Path, default=None, help="where the caches are prepared (default: the system's temporary folder)")
    args = parser.parse_args()
    night = args.night or calendar.latest_completed_session()
    starts = args.starts or [date(2024, 1, 2), calendar.sessions(date(night.year - 10, night.month, 1), night)[0]]
    previous = calendar.previous_session(night)
    print(f"night {night}; {args.companies:,} companies; {args.rounds} rounds; {load_avg()}")

    summary = []
    with tempfile.TemporaryDirectory(prefix="smallcaps-bench-sample-cache-", dir=args.tmp) as tmp:
        for start in starts:
            sessions = len(calendar.sessions(start, night))
            prepared = Path(tmp) / f"prepared-{start}"
            run(PREPARE, [start.isoformat(), str(args.companies), str(prepared), previous.isoformat()])
            size = folder_bytes(prepared)
            runs: dict[str, list[dict]] = {"warm": [], "cold": []}
            for r in range(args.rounds):
                for kind in ("warm", "cold") if r % 2 == 0 else ("cold", "warm"):
                    cache = None
                    if kind == "warm":
                        cache = Path(tmp) / f"round-{start}-{r}"
                        shutil.copytree(prepared, cache)
                    got = night_fetch(start, args.companies, night, cache)
                    if cache is not None:
                        shutil.rmtree(cache)
                    runs[kind].append(got)
                    print(f"  {start} ({sessions:,} sessions) round {r + 1} {kind}: {got['wall_s']:.2f} s wall, {got['cpu_s']:.2f} s CPU")
            first = runs["warm"][0]
            for kind, xs in runs.items():
                for got in xs:
                    if got["rows"] != first["rows"] or got["digest"] != first["digest"]:
                        sys.exit(f"{start}: a {kind} run gave other rows than the first warm run: {got['rows']} vs {first['rows']}")
            med = {k: {m: statistics.median(g[m] for g in xs) for m in ("wall_s", "cpu_s")} for k, xs in runs.items()}
            summary.append((start, sessions, size, first["rows"], med))

    print(f"\nmedians ({args.rounds} rounds), the night's fetch of the sample source; {load_avg()}")
    print("| history | sessions | cache | rows (holdings, bars, fundamentals) | warm wall / CPU | cold wall / CPU | cold / warm (wall, CPU) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for start, sessions, size, rows, med in summary:
        w, c = med["warm"], med["cold"]
        print(
            f"| {start}.. | {sessions:,} | {size / 1e6:,.0f} MB | {rows['holdings']:,}, {rows['bars']:,}, {rows['fundamentals']:,} "
            f"| {w['wall_s']:.2f} / {w['cpu_s']:.2f} s | {c['wall_s']:.2f} / {c['cpu_s']:.2f} s "
            f"| {c['wall_s'] / w['wall_s']:.1f}x, {c['cpu_s'] / w['cpu_s']:.1f}x |"
        )


if __name__ == "__main__":
    main()
