"""Runs loads of the small market in processes of their own, for the crash and reader tests.

    python tests/integration/load_worker.py HOME nightly|backfill AS_OF [START]
        one load, then exit (status=... on stdout)
    python tests/integration/load_worker.py --serve
        a fork server: reads `HOME KIND AS_OF START|- CRASHPOINT|-` lines on stdin, runs each load in
        a forked child (the load process, which a crashpoint kills with SIGKILL) and answers
        `exit CODE` (negative: killed by that signal). The imports (Prefect, Great Expectations,
        polars: seconds) are paid once, not once per load.

The loads report to the Prefect API in PREFECT_API_URL (the tests' server).
"""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prefect import flow  # noqa: E402

from flows.run import run_load  # noqa: E402
from small_market import SmallSample, small_settings  # noqa: E402


@flow(name="small-load")
def small_load(home: str, kind: str, as_of: date, start: date | None = None) -> dict:
    return run_load(small_settings(Path(home)), kind, as_of=as_of, start=start, source=SmallSample())


def serve() -> None:
    import great_expectations  # noqa: F401  (imported before forking: the children inherit it)

    import expectations.gate  # noqa: F401

    for line in sys.stdin:
        home, kind, as_of, start, crash = line.split()
        log = open(Path(home).parent / f"{Path(home).name}-load.log", "ab")
        pid = os.fork()
        if pid == 0:  # the load process
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            if crash != "-":
                os.environ["SMALLCAPS_CRASHPOINT"] = crash
            code = 0
            try:
                small_load(home, kind, date.fromisoformat(as_of), None if start == "-" else date.fromisoformat(start))
            except BaseException as exc:  # noqa: BLE001  (reported through the exit code and the log)
                print(f"load failed: {type(exc).__name__}: {exc}", flush=True)
                code = 1
            os._exit(code)
        log.close()
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(f"exit {code}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve()
        sys.exit(0)
    home, kind, as_of = sys.argv[1], sys.argv[2], date.fromisoformat(sys.argv[3])
    start = date.fromisoformat(sys.argv[4]) if len(sys.argv) > 4 else None
    result = small_load(home, kind, as_of, start)
    print(f"status={result['status']} as_of={result['as_of']}")
