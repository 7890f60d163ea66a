"""A nightly load on a long history against the same night on a short one (goal: within 1.2x).

Usage:
  .venv/bin/python bench/nightly_history.py [--starts SHORT LONG] [--companies N] [--rounds 3]
                                            [--homes SHORT_HOME LONG_HOME] [--night DATE] [--keep DIR]

Issue 13's goal is 30 years against 3 years of the sample market: --starts 2023-12-01 1996-12-02
--companies 10000 (each start becomes that home's SMALLCAPS_SAMPLE_START). The default, 2024-01-02
(the sample's own start, about 3 years) against 2021-01-04 (about 6 years), is quick; 10 years
(--starts 2023-12-01 2016-12-01) is the longest measured so far (bench/README.md).

For each start a home is backfilled (flows.backfill, sample source, in a fresh process) up to the
session before the night, or --homes gives two homes prepared that way (short first; their sample
start is their first bar, and --starts is then not used). Then, for
--rounds rounds, alternating which goes first, each home is copied (untimed) and flows.nightly runs
the night on the copy in a fresh process with Prefect's temporary server. Printed: whole-process
wall seconds per round, medians, the ratio long / short, and the same for the load alone
(meta.loads) with its steps.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402

from ground import calendar  # noqa: E402
from ground.settings import Settings  # noqa: E402

# The sample's company-count setting, set through its environment variable (the check below names it
# if a checkout predates it).
COMPANIES_SETTING = "sample_companies"


def sample_env(start: date, companies: int | None, extra: list[str]) -> dict[str, str]:
    env = {"SMALLCAPS_SAMPLE_START": start.isoformat()}
    if companies is not None:
        if COMPANIES_SETTING not in Settings.model_fields:
            sys.exit(
                f"--companies: this checkout's Settings has no {COMPANIES_SETTING!r} (SMALLCAPS_{COMPANIES_SETTING.upper()}): "
                "the sample's number of companies cannot be set yet; leave --companies out, or pass the setting "
                "with --env NAME=VALUE if it has another name"
            )
        env[f"SMALLCAPS_{COMPANIES_SETTING.upper()}"] = str(companies)
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("SMALLCAPS_"):
            sys.exit(f"--env {item!r}: expected SMALLCAPS_NAME=VALUE")
        env[name] = value
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=date.fromisoformat, nargs=2, metavar=("SHORT", "LONG"),
                        default=[date(2024, 1, 2), date(2021, 1, 4)], help="sample start of each home")
    parser.add_argument("--companies", type=int, help="companies in the sample market (SMALLCAPS_SAMPLE_COMPANIES)")
    parser.add_argument("--env", action="append", default=[], metavar="SMALLCAPS_NAME=VALUE",
                        help="another sample setting for both homes")
    parser.add_argument("--homes", type=Path, nargs=2, metavar=("SHORT_HOME", "LONG_HOME"),
                        help="homes already backfilled up to the session before --night")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--night", type=date.fromisoformat, help="default: the latest completed session")
    parser.add_argument("--keep", type=Path, help="make the homes under this folder and keep them (default: temporary)")
    args = parser.parse_args()

    night = args.night or calendar.latest_completed_session()
    end = calendar.previous_session(night)
    print(harness.load_avg())
    print(harness.bytecode_state())

    labels = ("short", "long")
    homes: dict[str, Path] = {}
    envs: dict[str, dict[str, str]] = {}
    prefect_home = Path(tempfile.mkdtemp(prefix="smallcaps-bench-prefect-"))
    for label, start, given in zip(labels, args.starts, args.homes or (None, None)):
        if given:
            # The sample market depends on its start: the nightly must see the start the home was
            # backfilled from, or it would fetch other prices and record revisions. That is its first
            # bar: the first succeeded load is a long backfill's last window (the windows before it
            # end as `merged`), whose start made the nightly simulate another market.
            history = harness.loads(given)
            start = harness.first_session(given)
            if history[-1].end_date != end:
                sys.exit(f"{given}: its last load ends on {history[-1].end_date}, not on {end} (the session before {night})")
            homes[label] = given
            envs[label] = harness.flow_env(sample_env(start, args.companies, args.env), prefect_home)
            continue
        envs[label] = harness.flow_env(sample_env(start, args.companies, args.env), prefect_home)
        base = args.keep or Path(tempfile.mkdtemp(prefix="smallcaps-bench-history-"))
        homes[label] = base / f"home-{start}"
        took = harness.backfill(homes[label], end, envs[label], time_v=Path("/usr/bin/time").exists())
        rss = f", peak RSS {took.max_rss_kb / 2**20:.1f} GiB" if took.max_rss_kb else ""
        print(f"{label} home: backfill from {start} to {end}: {took.wall_s:.1f} s{rss}; {harness.load_avg()}")
    for label in labels:
        first = harness.first_session(homes[label])
        rows = harness.raw_rows(homes[label])
        years = (end - first).days / 365.25
        print(f"{label:5} home {homes[label]}: {first}..{end} ({years:.1f} years), "
              + ", ".join(f"{t} {n:,}" for t, n in rows.items()))

    t = time.perf_counter()
    harness.bare(envs["short"])
    print(f"warm-up bare flow (creates the Prefect database): {time.perf_counter() - t:.1f} s")

    walls: dict[str, list[float]] = {label: [] for label in labels}
    cpus: dict[str, list[float]] = {label: [] for label in labels}
    night_loads: dict[str, list[harness.Load]] = {label: [] for label in labels}
    for r in range(args.rounds):
        order = labels if r % 2 == 0 else labels[::-1]
        for label in order:
            copy = harness.copy_home(homes[label])
            run = harness.nightly(copy, night, envs[label])
            walls[label].append(run.wall_s)
            cpus[label].append(run.cpu_s)
            night_loads[label].append(harness.loads(copy)[-1])
            shutil.rmtree(copy.parent)
        print(f"round {r + 1} ({' then '.join(order)}): short {walls['short'][-1]:.1f} s, long {walls['long'][-1]:.1f} s; "
              f"{harness.load_avg()}")

    print()
    print(f"night of {night}, {args.rounds} rounds")
    for label in labels:
        loads_s = [l.seconds for l in night_loads[label]]
        print(f"  {label:5}: process median {harness.median(walls[label]):.1f} s ({harness.spread(walls[label])}); "
              f"load median {harness.median(loads_s):.1f} s; steps: {harness.step_medians(night_loads[label])}")
    ratio = harness.median(walls["long"]) / harness.median(walls["short"])
    load_ratio = harness.median([l.seconds for l in night_loads["long"]]) / harness.median(
        [l.seconds for l in night_loads["short"]]
    )
    print(f"  ratio long / short: process {ratio:.2f}, load alone {load_ratio:.2f} (goal <= 1.2); per round: "
          + ", ".join(f"{a / b:.2f}" for a, b in zip(walls["long"], walls["short"])))
    cpu_ratio = harness.median(cpus["long"]) / harness.median(cpus["short"])
    print(f"  CPU seconds (user + sys of the process and the children it waited for), median: short {harness.median(cpus['short']):.1f}, "
          f"long {harness.median(cpus['long']):.1f}; ratio {cpu_ratio:.2f}")
    print(harness.load_avg())


if __name__ == "__main__":
    main()
