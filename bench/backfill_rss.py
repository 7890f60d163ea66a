"""Peak memory (RSS) and time of a full sample backfill at given sizes, measured by /usr/bin/time -v.

Usage: .venv/bin/python bench/backfill_rss.py [SIZE ...] [--end DATE] [--keep DIR]

SIZE is `[COMPANIESx]YEARSy`: `3y` is the sample market's own companies (about 2,600 listed at a
time, 2,750 over its history) over the 3 years before --end; `10000x30y` is 10,000 companies over 30
years. Issue 13's sizes: 3y 10y 10000x10y 10000x30y (goal: 10k x 30y within 6 GiB). A company count
is the sample's SMALLCAPS_SAMPLE_COMPANIES: it widens the pool the universes draw from (non-members,
later listings), not the universes, so the rows priced stay those of about 2,600 members and the
former members still needed; a longer history is what adds rows. Default: 3y (a few minutes).

Each size is a real backfill (flows.backfill, sample source) in a fresh process under
`/usr/bin/time -v` (Debian package `time`), into a new home. Printed per size: the raw rows the
home holds after it (bars, holdings, fundamentals), wall seconds, peak RSS (GiB; the largest process
of the run, which is the flow's own: the Prefect server is a smaller child), and GiB of peak RSS per
million rows, with the slowest steps of the last window's load, and the peaks of the flow
process's VmRSS, RssAnon and RssFile sampled from /proc (harness.RssSampler): a peak made of mapped
cache files is memory the kernel takes back under pressure, one of RssAnon is not.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402
from nightly_history import COMPANIES_SETTING  # noqa: E402

from ground import calendar  # noqa: E402
from ground.settings import Settings  # noqa: E402


@dataclass(frozen=True)
class Size:
    text: str
    companies: int | None
    years: int

    @classmethod
    def parse(cls, text: str) -> "Size":
        found = re.fullmatch(r"(?:(\d+)x)?(\d+)y", text)
        if not found:
            raise argparse.ArgumentTypeError(f"size {text!r}: expected [COMPANIESx]YEARSy, e.g. 3y or 10000x30y")
        return cls(text, int(found.group(1)) if found.group(1) else None, int(found.group(2)))

    def start(self, end: date) -> date:
        try:
            back = end.replace(year=end.year - self.years)
        except ValueError:  # 29 February
            back = end.replace(year=end.year - self.years, day=28)
        return calendar.sessions(back, end)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=Size.parse, default=[Size.parse("3y")], metavar="SIZE")
    parser.add_argument("--end", type=date.fromisoformat, help="last session (default: the latest completed)")
    parser.add_argument("--keep", type=Path, help="make the homes under this folder and keep them (default: deleted)")
    parser.add_argument("--trace", type=Path, help="write here, per size, RssAnon at each of the flow's log lines")
    args = parser.parse_args()

    end = calendar.session_on_or_before(args.end or calendar.latest_completed_session())
    for size in args.sizes:
        if size.companies is not None and COMPANIES_SETTING not in Settings.model_fields:
            sys.exit(
                f"size {size.text}: this checkout's Settings has no {COMPANIES_SETTING!r} "
                f"(SMALLCAPS_{COMPANIES_SETTING.upper()}): the sample's number of companies cannot be set yet"
            )
    print(harness.load_avg())
    print(harness.bytecode_state())
    header = (f"{'size':>10} {'start':>10} {'end':>10} {'rows M':>7} {'seconds':>8} {'peak RSS GiB':>12} "
              f"{'GiB / M rows':>12}")
    results = []
    prefect_home = Path(tempfile.mkdtemp(prefix="smallcaps-bench-prefect-"))
    for size in args.sizes:
        start = size.start(end)
        env = {"SMALLCAPS_SAMPLE_START": start.isoformat()}
        if size.companies is not None:
            env[f"SMALLCAPS_{COMPANIES_SETTING.upper()}"] = str(size.companies)
        base = args.keep or Path(tempfile.mkdtemp(prefix="smallcaps-bench-rss-"))
        home = base / f"home-{size.text}-{start}"
        run = harness.backfill(home, end, harness.flow_env(env, prefect_home), time_v=True)
        # The home's raw rows, not a load's rows_in: a backfill longer than
        # SMALLCAPS_BACKFILL_WINDOW_YEARS is one load per window, and only the last ends `succeeded`.
        load = harness.loads(home)[-1]
        gib = run.max_rss_kb / 2**20
        rows_m = sum(harness.raw_rows(home).values()) / 1e6
        line = (f"{size.text:>10} {start!s:>10} {end!s:>10} {rows_m:7.2f} {run.wall_s:8.1f} {gib:12.2f} "
                f"{gib / rows_m:12.2f}")
        results.append(line)
        slowest = sorted(((v, k) for k, v in load.timings.items() if "." not in k or k.startswith("load.")), reverse=True)[:6]
        peaks = ", ".join(f"{k} {v / 2**20:.2f}" for k, v in run.rss_peaks.items())
        print(f"{size.text}: {line.split(None, 3)[3].strip()}; slowest steps of its last window: "
              + ", ".join(f"{k} {v:.1f}" for v, k in slowest) + f"; peaks of the flow process (GiB, sampled): {peaks}; "
              + harness.load_avg())
        print(f"{size.text}: where RssAnon was highest (GiB, the log line that opened the window):")
        for kib, text in harness.peak_windows(run):
            print(f"  {kib / 2**20:6.2f}  {text}")
        if args.trace:
            with args.trace.open("a") as out:
                out.write(f"# {size.text}: RssAnon GiB when the log line came, highest until the next line, the line\n")
                for at, best, text in harness.rss_by_log_line(run):
                    out.write(f"{at / 2**20:6.2f} {best / 2**20:6.2f}  {text}\n")
        if not args.keep:
            shutil.rmtree(base)
    print()
    print(header)
    print("-" * len(header))
    print("\n".join(results))
    print("rows: raw rows the home holds after the backfill (bars, holdings, fundamentals); peak RSS: /usr/bin/time -v; "
          "the per-size lines above split it: RssAnon is the process's own memory, RssFile the sample cache's mapped "
          "files the kernel keeps while memory is free")
    print(harness.load_avg())


if __name__ == "__main__":
    main()
