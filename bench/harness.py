"""What the flow benches share: homes prepared by a real backfill, flows run in fresh processes.

Not a bench itself (it prints nothing when run). Every flow runs in a new `python -c` process, as
a scheduler would start it, with no PREFECT_API_URL: each process starts Prefect's temporary local
server, as `make demo` does. PREFECT_HOME is one temporary folder per bench invocation, warmed by
one untimed flow run, so that no timed run pays for creating Prefect's database and the bench never
touches another Prefect database. Sample-market settings (SMALLCAPS_SAMPLE_START, ...) reach the
flows as environment variables.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

BACKFILL = """
import sys
from datetime import date
from flows.backfill import backfill
r = backfill(end=date.fromisoformat(sys.argv[1]), source="sample", home=sys.argv[2])
assert r["status"] == "succeeded", r
"""
NIGHTLY = """
import sys
from datetime import date
from flows.nightly import nightly
r = nightly(as_of=date.fromisoformat(sys.argv[1]), source="sample", home=sys.argv[2])
assert r["status"] == "succeeded", r
"""
# The smallest Prefect flow: one task, the same task runner as the nightly flow.
BARE = """
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

@task
def one() -> int:
    return 1

@flow(name="bare", task_runner=ThreadPoolTaskRunner(max_workers=4))
def bare() -> int:
    return one.submit().result()

assert bare() == 1
"""


def module_at(rev: str, path: str):
    """The module at `path` (e.g. "warehouse/load.py") as it is at git revision `rev`, imported under
    another name (`<stem>_at_rev`), to run beside this checkout's in one process."""
    import importlib.util

    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True, text=True, check=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="bench-rev-"))
    name = f"{Path(path).stem}_at_rev"
    file = folder / f"{name}.py"
    file.write_text(text)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    shutil.rmtree(folder)
    return module


def load_avg() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def bytecode_state() -> str:
    """Whether imports can use compiled bytecode: every process recompiles what has none."""
    site = Path(PYTHON).resolve().parents[1] / "lib"
    venv_lib = ROOT / ".venv" / "lib"
    where = venv_lib if venv_lib.exists() else site
    pyc = sum(1 for _ in where.rglob("*.pyc"))
    flag = os.environ.get("PYTHONDONTWRITEBYTECODE")
    return f"bytecode: {pyc:,} .pyc files under {where}; PYTHONDONTWRITEBYTECODE={flag or 'unset'}"


def flow_env(extra: dict[str, str] | None = None, prefect_home: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL" and not k.startswith("SMALLCAPS_")}
    env.update(
        PREFECT_HOME=str(prefect_home or Path(tempfile.mkdtemp(prefix="smallcaps-bench-prefect-"))),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        # The temporary server's start is part of what is measured: on a loaded machine it can take
        # minutes (more without compiled bytecode), and the default 90 s would end the run instead.
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="900",
    )
    env.update(extra or {})
    return env


@dataclass
class Run:
    wall_s: float
    max_rss_kb: int | None = None
    stderr: str = ""
    # user + system CPU seconds of the process and the children it waited for (the Prefect server):
    # steadier than wall time on a machine whose other users take most of the cores.
    cpu_s: float = 0.0
    # With time_v: peaks (KiB) of the flow process's VmRSS, RssAnon and RssFile (RssSampler).
    rss_peaks: dict[str, int] = field(default_factory=dict)
    # With time_v: (wall-clock time, RssAnon KiB) every 0.2 s.
    rss_timeline: list[tuple[float, int]] = field(default_factory=list)


def run_python(code: str, args: list[str], env: dict[str, str], *, time_v: bool = False) -> Run:
    """Run `python -c code args` from the repository; wall time of the whole process. With time_v,
    under /usr/bin/time -v, whose peak RSS (of the largest process it waited for) is returned."""
    cmd = [PYTHON, "-c", code, *args]
    if time_v:
        if not Path("/usr/bin/time").exists():
            sys.exit("/usr/bin/time is missing: install Debian's `time` package (apt-get install -y time)")
        cmd = ["/usr/bin/time", "-v", *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        sampler = RssSampler(proc.pid, under_time=time_v) if time_v else None
        out, err = proc.communicate()
        if sampler:
            sampler.stop()
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    own_stderr = done.stderr.split("\tCommand being timed:")[0] if time_v else done.stderr
    if done.returncode:
        sys.exit(f"flow process failed (exit {done.returncode}): {' '.join(cmd[:3])} ...\n{own_stderr[-4000:]}")
    rss = None
    if time_v:
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        if not found:
            sys.exit(f"/usr/bin/time -v printed no peak RSS:\n{done.stderr[-2000:]}")
        rss = int(found.group(1))
    return Run(wall, rss, own_stderr, cpu, sampler.peaks if sampler else {}, sampler.timeline if sampler else [])


_LOG_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d(?:\.\d+)?) \| \w+\s*\| (.*)$")


def rss_by_log_line(run: Run) -> list[tuple[int, int, str]]:
    """The flow's log lines (Prefect's `HH:MM:SS.fff | LEVEL | ...` on stderr, local time) cut the
    run into windows: per window, in order, (RssAnon KiB at its first sample, its highest sample,
    the log line that opened it)."""
    if not run.rss_timeline:
        return []
    t0 = run.rss_timeline[0][0]
    day = time.mktime(time.localtime(t0)[:3] + (0, 0, 0, 0, 0, -1))
    marks: list[tuple[float, str]] = [(t0, "(start of the process)")]
    for line in run.stderr.splitlines():
        found = _LOG_LINE.match(line)
        if found:
            h, m, sec, text = found.groups()
            at = day + int(h) * 3600 + int(m) * 60 + float(sec)
            marks.append((at + (86400 if at < t0 - 3600 else 0), text.strip()[:140]))
    marks.sort()
    first: dict[int, int] = {}
    best: dict[int, int] = {}
    i = 0
    for at, kib in run.rss_timeline:
        while i + 1 < len(marks) and marks[i + 1][0] <= at:
            i += 1
        first.setdefault(i, kib)
        best[i] = max(best.get(i, 0), kib)
    return [(first[i], best[i], marks[i][1]) for i in sorted(best)]


def peak_windows(run: Run, top: int = 5) -> list[tuple[int, str]]:
    """Where the flow process's own memory (RssAnon) was highest: the `top` highest windows of
    rss_by_log_line, (highest sample KiB, the log line that opened the window)."""
    ranked = sorted(rss_by_log_line(run), key=lambda w: -w[1])[:top]
    return [(best, text) for _, best, text in ranked]


def rss_kib(pid: int | str = "self") -> dict[str, int]:
    """A process's resident memory by kind (KiB), from /proc/PID/status: VmRSS, RssAnon, RssFile."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in lines) if k in ("VmRSS", "RssAnon", "RssFile")}


def rss_anon_kib() -> int:
    """This process's own memory (RssAnon, KiB)."""
    return rss_kib()["RssAnon"]


class RssSampler:
    """Peaks of the flow process's resident memory by kind, from /proc/PID/status every 0.2 s:
    RssAnon (its own heap: what a memory budget bounds) and RssFile (pages of files it maps, here
    the sample cache's blocks: the kernel keeps them as long as memory is free and takes them back
    under pressure). /usr/bin/time's peak RSS is their sum at its highest. `timeline` keeps every
    sample's (wall-clock time, RssAnon KiB), so a peak can be put beside the flow's log lines
    (`peak_windows`)."""

    def __init__(self, pid: int, *, under_time: bool) -> None:
        self.pid, self.under_time = pid, under_time
        self.peaks: dict[str, int] = {}
        self.timeline: list[tuple[float, int]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _target(self) -> int | None:
        if not self.under_time:
            return self.pid
        try:  # /usr/bin/time's one child: the flow process
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def _run(self) -> None:
        while not self._done.wait(0.2):
            pid = self._target()
            if pid is None:
                continue
            try:
                got = rss_kib(pid)
            except OSError:
                continue
            for k, v in got.items():
                self.peaks[k] = max(self.peaks.get(k, 0), v)
            if "RssAnon" in got:
                self.timeline.append((time.time(), got["RssAnon"]))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def backfill(home: Path, end: date, env: dict[str, str], *, time_v: bool = False) -> Run:
    home.mkdir(parents=True, exist_ok=True)
    if (home / "warehouse.duckdb").exists():
        sys.exit(f"{home} already holds a warehouse: give an empty folder")
    return run_python(BACKFILL, [end.isoformat(), str(home)], env, time_v=time_v)


def nightly(home: Path, night: date, env: dict[str, str]) -> Run:
    return run_python(NIGHTLY, [night.isoformat(), str(home)], env)


def bare(env: dict[str, str]) -> Run:
    return run_python(BARE, [], env)


def copy_home(home: Path) -> Path:
    """A fresh copy of a prepared home (warehouse and published snapshots), so every nightly starts
    from the same state."""
    target = Path(tempfile.mkdtemp(prefix="smallcaps-bench-night-")) / "home"
    shutil.copytree(home, target, ignore=shutil.ignore_patterns(".load.lock"))
    settle_writes()
    return target


def settle_writes() -> None:
    """Write the copy's dirty pages to disk now: otherwise the kernel writes them back during the
    timed run (10 GB for a 30-year home), and every fsync of the run (publish's, 1.2 GB) waits
    behind them: the long home's publish measured 3-5 s instead of 2."""
    os.sync()


@dataclass
class Load:
    flow_name: str
    start_date: date
    end_date: date
    rows_in: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def loads(home: Path) -> list[Load]:
    """meta.loads of a home, oldest first (succeeded loads only)."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT flow_name, start_date, end_date, rows_in, epoch(finished_at - started_at), timings "
            "FROM meta.loads WHERE status = 'succeeded' ORDER BY started_at"
        ).fetchall()
    finally:
        con.close()
    return [Load(f, s, e, n or 0, secs, json.loads(t) if t else {}) for f, s, e, n, secs, t in rows]


def first_session(home: Path):
    """The earliest equity bar of a home: where its history starts (a backfill's window loads
    end as `merged`, only the last as `succeeded`, so meta.loads alone does not say)."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("SELECT min(session_date) FROM raw.equity_bars").fetchone()[0]
    finally:
        con.close()


def raw_rows(home: Path) -> dict[str, int]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        tables = ("raw.index_bars", "raw.equity_bars", "raw.holdings", "raw.fundamentals")
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables}
    finally:
        con.close()


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    return ", ".join(f"{x:.1f}" for x in xs)


# Steps of flows.run recorded in meta.loads.timings (load.* are parts of `load`).
STEPS = ("fetch", "validate", "load", "publish", "export", "report")


LOAD_PARTS = ("load.merge", "load.gate_marts", "load.write_derived")


def step_medians(all_loads: list[Load]) -> str:
    """Median seconds per step of the loads; `load.derive` sums the per-table load.core.* and
    load.marts.* entries (the recomputation of core and marts)."""

    def derive_s(load: Load) -> float:
        return sum(v for k, v in load.timings.items() if k.startswith(("load.core.", "load.marts.")))

    parts = [(k, [l.timings.get(k, 0.0) for l in all_loads]) for k in STEPS if any(k in l.timings for l in all_loads)]
    parts += [(k, [l.timings.get(k, 0.0) for l in all_loads]) for k in LOAD_PARTS]
    parts.append(("load.derive", [derive_s(l) for l in all_loads]))
    return ", ".join(f"{k} {median(v):.1f}" for k, v in parts)
