"""Client side of load_worker.py: loads of the small market in processes of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from prefect.settings import PREFECT_API_URL

WORKER = Path(__file__).resolve().parent / "load_worker.py"


def worker_env() -> dict:
    """The tests' environment, pointed at the tests' Prefect server, without a crashpoint."""
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value())
    env.pop("SMALLCAPS_CRASHPOINT", None)
    return env


def run_worker(home: Path, kind: str, as_of: date, start: date | None = None) -> subprocess.CompletedProcess:
    """One load in a fresh process."""
    args = [sys.executable, str(WORKER), str(home), kind, as_of.isoformat()] + ([start.isoformat()] if start else [])
    return subprocess.run(args, env=worker_env(), capture_output=True, text=True, timeout=300)


class ForkServer:
    """Loads in forked children of one long-lived process, which has paid the imports once."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "--serve"], env=worker_env(), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )

    def load(self, home: Path, as_of: date, *, kind: str = "nightly", crash: str | None = None) -> int:
        """Exit code of the load process: 0 done, 1 failed, -9 killed (a crashpoint). Output goes to
        HOME-load.log beside the data home."""
        self.proc.stdin.write(f"{home} {kind} {as_of.isoformat()} - {crash or '-'}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        assert answer and answer[0] == "exit", f"fork server died: {answer}"
        return int(answer[1])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)

    def __enter__(self) -> "ForkServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
