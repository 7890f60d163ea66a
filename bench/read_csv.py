"""Time of the csv source's daily-bar reader on one real file (^GSPC, 5,759 rows).

Usage: .venv/bin/python bench/read_csv.py [--reads N] [--against GIT_REV]
A csv backfill of a whole universe reads about 2,600 such files (twice: date_range, then bars).
With --against, the reader of sources/csv.py at GIT_REV runs too, interleaved with the current one
(alternating which goes first) so that a busy machine slows both alike; both must return the same
frame. Prints the total, median, minimum and 90th percentile per read.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sources.csv import read_bars  # noqa: E402

FILE = ROOT / "tests" / "fixtures" / "yahoo-daily-csv" / "^GSPC.csv"


def reader_at(rev: str):
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:sources/csv.py"], check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="smallcaps-bench-")) / "csv_at_rev.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("csv_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["csv_at_rev"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module.read_bars


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--against", metavar="GIT_REV")
    args = parser.parse_args()
    readers = {"current": read_bars}
    if args.against:
        readers[args.against] = reader_at(args.against)
    first = {name: f(FILE) for name, f in readers.items()}
    if args.against and not first["current"].equals(first[args.against]):
        raise SystemExit(f"the readers disagree on {FILE.name}")
    times: dict[str, list[float]] = {name: [] for name in readers}
    order = list(readers)
    for i in range(args.reads):
        for name in order if i % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            readers[name](FILE)
            times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        ts.sort()
        print(
            f"{name}: {args.reads} reads of {FILE.name} in {sum(ts):.2f} s; per read median {statistics.median(ts) * 1e3:.1f} ms, "
            f"min {ts[0] * 1e3:.1f} ms, p90 {ts[int(len(ts) * 0.9)] * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main()
