"""Ad-hoc SQL on a published snapshot: read-only, no file access unless asked for.

The snapshot is opened with DuckDB's read_only mode (no CREATE/INSERT/UPDATE/DELETE on it) and,
unless `allow_files`, with external access disabled and the configuration locked, so a query can
neither ATTACH another database, COPY ... TO a file, nor read a file, nor switch those back on.

Results stream: `Query.batches()` fetches a bounded number of rows at a time from DuckDB's
streaming result, so writing a 20-million-row answer to a pipe never holds it all in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date

import duckdb

from ground.settings import Settings
from warehouse.publish import snapshot_for

BATCH_ROWS = 10_000


class QueryRefused(RuntimeError):
    pass


class QueryStopped(RuntimeError):
    """The query ran past --timeout or the user pressed Ctrl-C."""


def open_snapshot(settings: Settings, *, as_of: date | None = None, allow_files: bool = False) -> duckdb.DuckDBPyConnection:
    path = snapshot_for(settings.published_dir, as_of)
    con = duckdb.connect(str(path), read_only=True)
    # DuckDB's progress bar writes to stdout, into the csv or json a script reads: never draw it.
    # It is a per-connection option, so it is set before the configuration is locked.
    con.execute("SET enable_progress_bar = false")
    if not allow_files:
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    return con


class Query:
    """One query on a snapshot: `start()` runs it, `columns` names the result, `batches()` streams
    it; use as a context manager.

    `timeout_s` interrupts the query (DuckDB's `interrupt()` from a timer thread) wherever it is:
    planning, computing or streaming rows out; `interrupt()` does the same for Ctrl-C. DuckDB's
    streaming fetch does not answer SIGINT by itself, so the CLI has a watcher thread read the
    signal from a wakeup fd and call `interrupt()` (smallcaps/cli.py:_ctrl_c_interrupts).
    """

    def __init__(
        self, settings: Settings, query: str, *, as_of: date | None = None, allow_files: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        self.query = query
        self.timeout_s = timeout_s
        self.columns: list[str] = []
        self._con = open_snapshot(settings, as_of=as_of, allow_files=allow_files)
        self._cur = None
        self._timer: threading.Timer | None = None
        self.stopped_by: str | None = None  # 'timeout' or 'ctrl-c' once interrupted

    def start(self) -> "Query":
        if self.timeout_s is not None:
            self._timer = threading.Timer(self.timeout_s, self.interrupt, ["timeout"])
            self._timer.daemon = True
            self._timer.start()
        with _translate(self):
            self._cur = self._con.execute(self.query)
        self._check_stopped()
        self.columns = [d[0] for d in self._cur.description] if self._cur.description else []
        return self

    def interrupt(self, why: str) -> None:
        if self.stopped_by is None:
            self.stopped_by = why
        self._con.interrupt()

    def batches(self, rows: int = BATCH_ROWS) -> Iterator[list[tuple]]:
        if not self.columns:
            return
        while True:
            with _translate(self):
                got = self._cur.fetchmany(rows)
            if not got:
                # An interrupt can end DuckDB's stream without an error: never pass it off as the end.
                self._check_stopped()
                return
            yield got

    def _check_stopped(self) -> None:
        if self.stopped_by is not None:
            raise _stopped(self)

    def close(self) -> None:
        if self._timer is not None:
            # Joined, not only cancelled: a timer thread still alive at exit holds the connection
            # (through self.interrupt), and a DuckDB object alive at interpreter shutdown is what
            # prints nanobind's "leaked" lines.
            self._timer.cancel()
            self._timer.join()
            self._timer = None
        self._con.close()

    def __enter__(self) -> "Query":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stopped(query: Query) -> QueryStopped:
    if query.stopped_by == "timeout":
        return QueryStopped(f"query stopped after --timeout {query.timeout_s:g} s; narrow it or give it more time")
    return QueryStopped("query interrupted (Ctrl-C)")


class _translate:
    """DuckDB's errors as the one-line messages `smallcaps sql` prints."""

    def __init__(self, query: Query) -> None:
        self.query = query

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None:
            return False
        # An interrupt surfaces as InterruptException, or as RuntimeError("Query interrupted")
        # when DuckDB saw SIGINT itself.
        is_interrupt = isinstance(exc, duckdb.InterruptException) or (
            isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower()
        )
        if is_interrupt or self.query.stopped_by is not None:
            if self.query.stopped_by is None:
                self.query.stopped_by = "ctrl-c"  # DuckDB saw SIGINT itself
            raise _stopped(self.query) from None
        if isinstance(exc, duckdb.PermissionException):
            raise QueryRefused(
                f"refused: the query needs file access, which `smallcaps sql` keeps off ({exc}); "
                "pass --allow-files if you mean to read or write files"
            ) from None
        if isinstance(exc, duckdb.InvalidInputException) and "configuration has been locked" in str(exc):
            raise QueryRefused(
                f"refused: settings are locked: `smallcaps sql` runs with DuckDB's configuration locked, so SET "
                f"and RESET cannot change it ({exc}); pass --allow-files to run without the lock"
            ) from None
        if isinstance(exc, duckdb.InvalidInputException) and "read-only" in str(exc):
            raise QueryRefused(
                f"refused: the published warehouse is read-only; `smallcaps sql` cannot change it ({exc})"
            ) from None
        if isinstance(exc, duckdb.Error):
            raise QueryRefused(f"query failed: {exc}") from None
        return False


def run_query(settings: Settings, query: str, *, as_of: date | None = None, allow_files: bool = False):
    """Every row at once: for callers that know their answer is small."""
    with Query(settings, query, as_of=as_of, allow_files=allow_files) as q:
        q.start()
        return q.columns, [row for batch in q.batches() for row in batch]
