"""Named points where a test may kill the load process, to prove crash safety.

`SMALLCAPS_CRASHPOINT=NAME` (or `NAME#N` for the N-th time the point is reached) makes the process
send itself SIGKILL there: no cleanup, no finally blocks, exactly like kill -9 or a power cut.
Unset (always, outside tests), a crashpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "SMALLCAPS_CRASHPOINT"
_hits: Counter[str] = Counter()


def crashpoint(name: str) -> None:
    target = os.environ.get(ENV)
    if not target:
        return
    _hits[name] += 1
    point, _, nth = target.partition("#")
    if point == name and _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
