"""Which dataset's derivation holds the most memory: a replayed derivation on a home, measured step by step.

Usage: .venv/bin/python bench/derive_rss.py HOME [--from DATE] [--months N]

Runs, in this one process, what a backfill window's load derives (pipeline.derive.run, replayed in
periods from --from, default the 1st of January three years before the home's last session; months
per period as the load would choose them, pipeline.loading.derive_budget, unless --months) on the
home's private warehouse, inside a transaction that is rolled back: the home is left as it was
(rows equal to the stored ones are not written anyway). Each dataset's scope, compute, gate, read of
the stored rows and write is labelled; a thread samples /proc/self/status (RssAnon: the process's
own memory, what a memory budget bounds) every 20 ms and puts each sample on the running label.

Printed: RssAnon before the derivation, then per label its highest sample and how far that is above
the sample taken when the label began, the labels with the highest samples first; then the peak.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402
from ground.registry import Dataset  # noqa: E402
from ground.settings import Settings  # noqa: E402
from pipeline import derive, load_run, loading  # noqa: E402


class Labelled:
    """The highest RssAnon sample of each label, and the sample when the label began."""

    def __init__(self) -> None:
        self.label = "(before)"
        self.began: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def set(self, label: str) -> str:
        now = harness.rss_anon_kib()
        with self._lock:
            previous, self.label = self.label, label
            self.began.setdefault(label, now)
            self.peak[label] = max(self.peak.get(label, 0), now)
        return previous

    def _run(self) -> None:
        while not self._done.wait(0.02):
            now = harness.rss_anon_kib()
            with self._lock:
                self.peak[self.label] = max(self.peak.get(self.label, 0), now)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def labelled(sampler: Labelled, label: str, fn):
    def call(*args, **kwargs):
        previous = sampler.set(label)
        try:
            return fn(*args, **kwargs)
        finally:
            sampler.set(previous)
    return call


def wrapped(sampler: Labelled, name: str, fn):
    """`fn` (one of derive's per-dataset phases, the Dataset among its first two arguments) labelled
    with the dataset's name and the phase."""
    def call(*args, **kwargs):
        dataset = next(a for a in args[:2] if isinstance(a, Dataset))
        return labelled(sampler, f"{dataset.name} {name.strip('_')}", fn)(*args, **kwargs)
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--from", dest="first", type=date.fromisoformat, help="first day derived again")
    parser.add_argument("--months", type=int, help="months per period (default: as a load chooses)")
    args = parser.parse_args()
    if not (args.home / "warehouse.duckdb").exists():
        sys.exit(f"{args.home} holds no warehouse.duckdb")

    settings = Settings(home=args.home)
    sampler = Labelled()
    con = load_run.open_warehouse(settings)
    last = con.execute("SELECT max(session_date) FROM raw.index_bars").fetchone()[0]
    first = args.first or date(last.year - 3, 1, 1)
    budget_rows, months = loading.derive_budget(con, settings)
    months = args.months or months
    print(f"{args.home}: derive {first}..{last} in periods of {months} month(s) (budget {budget_rows:,} rows); "
          f"memory_limit_gb {settings.memory_limit_gb} (DuckDB {settings.memory_limit_gb / 2:g} GB)")

    step_of = derive.step_of
    derive.step_of = lambda ds: (lambda s: replace(
        s,
        scope=labelled(sampler, f"{ds.name} scope", s.scope),
        compute=labelled(sampler, f"{ds.name} compute", s.compute),
    ))(step_of(ds))
    for name in ("_gate", "_read_scope", "diff_and_write", "_new_in_scope"):
        setattr(derive, name, wrapped(sampler, name, getattr(derive, name)))

    before = harness.rss_anon_kib()
    con.execute("BEGIN TRANSACTION")
    try:
        ctx = loading.derive_context(con, settings, last)
        ctx = derive.Context(**{**ctx.__dict__, "first_date": first})
        t = time.perf_counter()
        got = derive.run(ctx, derive.Changes(), load_id="bench-derive-rss", rebuild=True, period_months=months,
                         progress=lambda text: sampler.set(f"({text})"))
        wall = time.perf_counter() - t
    finally:
        con.execute("ROLLBACK")
        sampler.stop()
        con.close()
    print(f"derived in {wall:.1f} s; {sum(got.rows_written.values()):,} rows would be written (rolled back); "
          f"errors: {got.errors or 'none'}")
    print(f"RssAnon before the derivation: {before / 2**20:.2f} GiB")
    print(f"{'label':<48} {'peak GiB':>9} {'above start GiB':>16}")
    for label, kib in sorted(sampler.peak.items(), key=lambda kv: -kv[1])[:25]:
        print(f"{label:<48} {kib / 2**20:9.2f} {(kib - sampler.began.get(label, kib)) / 2**20:16.2f}")
    print(f"peak RssAnon: {max(sampler.peak.values()) / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
