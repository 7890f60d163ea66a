"""The nightly report's time: the report as it was before the split, against today's drawing every
chart, and today's with the chart cache warm (the same night written again).

Usage:
  .venv/bin/python bench/report_draw.py --home HOME [--rounds 3] [--baseline REF] [--as-of DATE]

HOME is a data home with a published snapshot (`.venv/bin/smallcaps demo --home HOME`; the demo
market is the size the report's figures in docs/report.md are quoted at). HOME is only read: its
snapshot is copied, untimed, into one temporary home per variant, and each report is written there.
Variants, each in a fresh process (imports excluded from the timing: they cost all of them the same):
  before: `report.py` of git REF (default: the commit before the split), loaded from a
          temporary file; it has no cache and draws every chart
  drawn:  today's `write_report(..., redraw=True)`: every chart drawn (a new night's case: its
          title carries the night, so no chart of the previous night can be reused)
  cached: today's `write_report(...)` after a report of the same night: every chart from the cache
Rounds alternate the order of the variants (the machine is shared and its load moves). Printed: each
run's seconds inside `write_report`, the medians, the ratios before / drawn and before / cached, the
load average; the three pages' charts are checked to be byte-identical between drawn and cached.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import load_avg  # noqa: E402

# The last commit whose report was the single module report.py.
BASELINE = "0942ee4"

RUN = """
import importlib.util, json, sys, time
from datetime import date
from ground.settings import Settings
variant, home, as_of, before = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
if variant == "before":
    spec = importlib.util.spec_from_file_location("report_before", before)
    module = importlib.util.module_from_spec(spec)
    sys.modules["report_before"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    write = lambda s, d: module.write_report(s, d)
else:
    from report import write_report
    write = lambda s, d: write_report(s, d, redraw=variant == "drawn")
settings = Settings(home=home)
day = date.fromisoformat(as_of) if as_of else None
started = time.perf_counter()
r = write(settings, day)
print(json.dumps({"seconds": time.perf_counter() - started, "charts": len(r.png_paths),
                  "reused": getattr(r, "charts_reused", 0)}))
"""


def run(variant: str, home: Path, as_of: str, before: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", RUN, variant, str(home), as_of, str(before)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{variant} report failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a data home with a published snapshot")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE, help="git ref whose report.py is 'before'")
    parser.add_argument("--as-of", default="", help="night to report (default: the snapshot's)")
    args = parser.parse_args()
    snapshot = args.home / "published" / "smallcaps.duckdb"
    if not snapshot.exists():
        raise SystemExit(f"no published snapshot at {snapshot}: make one with `.venv/bin/smallcaps demo --home {args.home}`")

    tmp = Path(tempfile.mkdtemp(prefix="report-bench-"))
    try:
        before = tmp / "report_before.py"
        shown = subprocess.run(["git", "show", f"{args.baseline}:report.py"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode != 0:
            raise SystemExit(f"git show {args.baseline}:report.py failed: {shown.stderr.strip()}; pass --baseline REF")
        before.write_text(shown.stdout, "utf-8")
        homes = {}
        for variant in ("before", "drawn", "cached"):
            homes[variant] = tmp / variant
            (homes[variant] / "published").mkdir(parents=True)
            shutil.copyfile(snapshot, homes[variant] / "published" / "smallcaps.duckdb")
        run("cached", homes["cached"], args.as_of, before)  # untimed: fills the cache with the night's charts

        seconds: dict[str, list[float]] = {v: [] for v in homes}
        order = list(homes)
        for i in range(args.rounds):
            for variant in order if i % 2 == 0 else order[::-1]:
                r = run(variant, homes[variant], args.as_of, before)
                if variant == "cached" and r["reused"] != r["charts"]:
                    raise SystemExit(f"cached run reused {r['reused']} of {r['charts']} charts: the cache missed")
                seconds[variant].append(r["seconds"])
                print(f"round {i + 1} {variant:6s} {r['seconds']:6.2f} s  ({r['charts']} charts, {r['reused']} from the cache)")
        night = sorted(p.name for p in (homes["drawn"] / "report").iterdir() if p.name[:1].isdigit())[-1]
        for name in sorted(p.name for p in (homes["drawn"] / "report" / night / "charts").glob("*.png")):
            drawn = (homes["drawn"] / "report" / night / "charts" / name).read_bytes()
            cached = (homes["cached"] / "report" / night / "charts" / name).read_bytes()
            if drawn != cached:
                raise SystemExit(f"charts/{name} differs between the drawn and the cached report")
        med = {v: statistics.median(xs) for v, xs in seconds.items()}
        print(f"median seconds: before {med['before']:.2f}, drawn {med['drawn']:.2f}, cached {med['cached']:.2f}")
        print(f"ratio before / drawn:  {med['before'] / med['drawn']:.2f}")
        print(f"ratio before / cached: {med['before'] / med['cached']:.2f}")
        print(f"load average: {load_avg()}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
