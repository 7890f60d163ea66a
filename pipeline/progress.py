"""Progress of the running load, for whoever shows it (the CLI draws a bar); silent otherwise.

The flow reports units of work: the holdings, each chunk of bars and of fundamentals, then gate,
load, publish, export and report. It announces the total once the chunks are known. Tasks run in
threads of the same process, so one listener per process is enough; reporting never raises.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Protocol


class Listener(Protocol):
    def start(self, label: str, total: int) -> None: ...
    def advance(self, label: str) -> None: ...
    def grow(self, units: int) -> None: ...


_lock = threading.Lock()
_listener: Listener | None = None


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    global _listener
    with _lock:
        previous, _listener = _listener, listener
    try:
        yield
    finally:
        with _lock:
            _listener = previous


def _call(fn: Callable[[Listener], None]) -> None:
    with _lock:
        listener = _listener
        if listener is None:
            return
        try:
            fn(listener)
        except Exception:  # noqa: BLE001  (a display must never break a load)
            pass


def start(label: str, total: int) -> None:
    """A new load of `total` units begins (`label`: what it is)."""
    _call(lambda l: l.start(label, total))


def advance(label: str) -> None:
    """One unit is done; `label` says which."""
    _call(lambda l: l.advance(label))


def grow(units: int) -> None:
    """The load found `units` more to do (a symbol's history to fetch again, say)."""
    _call(lambda l: l.grow(units))
