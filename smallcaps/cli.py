"""`smallcaps`: a thin command line over the flows and the published warehouse.

About 650 lines because it holds every command's arguments, help and checks (made before any
Prefect server starts); the work itself is in flows/, query, status, dq and output.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
import sys
import threading
import time
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Optional

# Prefect must stay offline and quiet unless the user configured otherwise.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The temporary Prefect server a plain run starts needs ~10 s; give a busy machine room.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

import typer
from rich.console import Console, ConsoleDimensions
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    help="smallcaps: the nightly US small-cap warehouse (Prefect flows, DuckDB, polars, Great Expectations).",
    no_args_is_help=True,
    add_completion=False,
)


class _Console(Console):
    """Rich's console, except that a pipe or a file is as wide as its longest line: a script
    reading `smallcaps status | grep` gets every column whole, never cut to a screen's 80."""

    @property
    def size(self) -> ConsoleDimensions:
        if not self.is_terminal:
            return ConsoleDimensions(1_000_000, 25)
        return Console.size.fget(self)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


console = _Console()
err = _Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        import duckdb

        typer.echo(f"smallcaps {version('smallcaps')} (DuckDB {duckdb.__version__})")
        raise typer.Exit(0)


@app.callback()
def _main(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """smallcaps: the nightly US small-cap warehouse (Prefect flows, DuckDB, polars, Great Expectations)."""


# The table format stops here (and says so); csv and json stream every row.
TABLE_MAX_ROWS = 1_000


class Fmt(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def _settings(source: Optional[str] = None, path: Optional[Path] = None, home: Optional[Path] = None):
    from ground.settings import Settings

    overrides = {}
    if source:
        overrides["source"] = source
    if path:
        overrides["csv_path"] = path
    if home:
        overrides["home"] = home
    try:
        settings = Settings(**overrides)
        # The source names belong to the registry and the severity names to the suites, so they are
        # checked here, before any work, rather than by settings (ground) itself.
        from sources import check_source_name

        check_source_name(settings.source)
        if settings.dq_severity:
            from expectations.suites import check_overrides

            check_overrides(settings.dq_severity)
        return settings
    except Exception as exc:  # pydantic's message (or the registry's, or check_overrides') names the bad setting
        err.print(Text.assemble(("invalid settings:", "red"), f" {exc}"))
        raise typer.Exit(2)


def _fail(message: str, code: int = 1) -> None:
    # The message may quote SQL or a path with brackets: printed as is, never read as markup.
    err.print(Text.assemble(("error:", "bold red"), f" {message}"), highlight=False)
    raise typer.Exit(code)


def _warm_up_gate() -> None:
    """Import Great Expectations in a thread while the flow's Prefect server starts (the main
    thread only waits for it then): the gate's import costs seconds a run would otherwise wait."""
    from expectations.gate import warm_up_in_background

    warm_up_in_background()


def _run_flow(label: str, fn, **kwargs) -> dict:
    """Run a flow with a live elapsed-time status; turn pipeline errors into clear exits."""
    from pipeline.lock import LoadLocked
    from flows.run import PublishFailed
    from pipeline.load_run import LoadFailed, NightHeld

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pipeline import progress

    started = time.perf_counter()
    _warm_up_gate()
    bar = Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[step]}"), TimeElapsedColumn(), console=err, transient=False,
    )
    task = bar.add_task(label, total=None, step="starting (Prefect flow run; logs below)")

    class _Bar:
        def start(self, what: str, total: int) -> None:
            bar.reset(task, total=total, description=f"{label}: {what}", step="fetching")

        def advance(self, step: str) -> None:
            bar.update(task, advance=1, step=step)

        def grow(self, units: int) -> None:
            bar.update(task, total=(bar.tasks[0].total or 0) + units)

    try:
        with bar, progress.listening(_Bar()):
            result = fn(**kwargs)
    except (LoadFailed, NightHeld, LoadLocked, PublishFailed) as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(str(exc), 2)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _print_summary(result: dict, settings) -> None:
    if result.get("status") == "skipped":
        console.print(Text.assemble(("skipped:", "yellow"), f" {result['message']}"), highlight=False)
        return
    ids = result.get("load_ids") or [result["load_id"]]
    what = f"load {ids[0]}" if len(ids) == 1 else f"{len(ids)} loads ({ids[0]} .. {ids[-1]}), one per window,"
    t = Table(title=f"{what} ({result['status']}), night of {result['as_of']}")
    for col in ("table", "rows in", "inserted", "changed"):
        t.add_column(col, justify="right" if col != "table" else "left")
    for name, c in result["tables"].items():
        t.add_row(name, f"{c['rows_in']:,}", f"{c['inserted']:,}", f"{c['changed']:,}")
    console.print(t)
    console.print(f"warehouse: {result['warehouse']}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"published: {result['published_path']}", soft_wrap=True, highlight=False, markup=False)
    if result.get("rows_quarantined"):
        n = result["rows_quarantined"]
        console.print(f"quarantined: {n:,} row{'' if n == 1 else 's'} did not load (see `smallcaps dq`):")
        for line in result.get("quarantined", []):
            console.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)
    for w in result.get("warnings", []):
        console.print(Text.assemble(("warning:", "yellow"), f" {w}"), highlight=False)
    console.print(f"took {result['seconds']} s")
    _print_headlines(settings, date.fromisoformat(result["as_of"]))


def _print_headlines(settings, as_of: date) -> None:
    from warehouse.db import connect
    from warehouse.publish import snapshot_for

    con = connect(snapshot_for(settings.published_dir, None), read_only=True)
    try:
        rows = con.execute(
            "SELECT sentence FROM marts.headlines WHERE as_of_date = ? ORDER BY rank", [as_of]
        ).fetchall()
        # As the report decides it: any succeeded sample load behind this night makes it synthetic.
        is_synthetic = con.execute(
            "SELECT count(*) > 0 FROM meta.loads WHERE status = 'succeeded' AND source = 'sample' "
            "AND (start_date IS NULL OR start_date <= ?)",
            [as_of],
        ).fetchone()[0]
    finally:
        con.close()
    title = f"The night of {as_of}" + (" (synthetic sample data, not market prices)" if is_synthetic else "")
    t = Table(title=Text(title, style="bold red" if is_synthetic else ""), show_header=False)
    t.add_column("fact")
    for (sentence,) in rows:
        t.add_row(Text(sentence))
    console.print(t)
    if is_synthetic:
        console.print(Text("synthetic sample data, not market prices: the symbols are fictional", style="bold red"))


@app.command()
def run(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="session to load (YYYY-MM-DD); default: latest completed"),
    source: Optional[str] = typer.Option(None, help="sample | yahoo | csv (default: SMALLCAPS_SOURCE or sample)"),
    path: Optional[Path] = typer.Option(None, help="folder for the csv source"),
    home: Optional[Path] = typer.Option(None, help="data home (default: SMALLCAPS_HOME or ./data)"),
) -> None:
    """Nightly load: fetch the session, gate it, merge it, rebuild the marts, publish, print the headlines."""
    day = _date(as_of, "--as-of")
    settings = _settings(source, path, home)
    _check_source(settings, path)
    # Checked here, before the flow starts a Prefect server (seconds) for a run that cannot load.
    from ground import calendar

    if day is not None:
        _check_not_after_latest(day, calendar.latest_completed_session(), "--as-of")
        if not calendar.is_session(day):
            console.print(f"[yellow]skipped:[/yellow] {day} is not an NYSE session (weekend or holiday): nothing to load")
            return
    from flows.nightly import nightly

    result = _run_flow(
        "nightly", nightly, as_of=day, source=settings.source, csv_path=str(path) if path else None, home=str(settings.home)
    )
    _print_summary(result, settings)


@app.command()
def backfill(
    start: Optional[str] = typer.Option(None, help="first session (YYYY-MM-DD); default: the source's first"),
    end: Optional[str] = typer.Option(None, help="last session; default: latest completed"),
    source: Optional[str] = typer.Option(None, help="sample | yahoo | csv"),
    path: Optional[Path] = typer.Option(None, help="folder for the csv source (bar CSVs, holdings, fundamentals.csv)"),
    home: Optional[Path] = typer.Option(None, help="data home"),
) -> None:
    """Load a range of sessions (whole history by default) and publish its last night."""
    first, last = _date(start, "--start"), _date(end, "--end")
    if first is not None and last is not None and first > last:
        _fail(f"--start {first} is after --end {last}: nothing to load; swap them", 2)
    settings = _settings(source, path, home)
    _check_source(settings, path)
    if last is not None:
        from ground import calendar

        _check_not_after_latest(last, calendar.latest_completed_session(), "--end")
    from flows.backfill import backfill as backfill_flow

    result = _run_flow(
        "backfill",
        backfill_flow,
        start=first,
        end=last,
        source=settings.source,
        csv_path=str(path) if path else None,
        home=str(settings.home),
    )
    _print_summary(result, settings)


def _check_source(settings, path: Optional[Path]) -> None:
    """A source that reads a folder has one that exists; --path is not given to a source that would
    ignore it."""
    from sources import SOURCES

    if SOURCES[settings.source].reads_path:
        name = settings.source
        if settings.csv_path is None:
            _fail(f"the {name} source needs a folder: pass --path DIR or set SMALLCAPS_CSV_PATH", 2)
        if not settings.csv_path.is_dir():
            what = "is a file, not a folder" if settings.csv_path.exists() else "does not exist"
            _fail(f"{name} source: {settings.csv_path} {what}; pass --path with the folder of your files", 2)
    elif path is not None:
        readers = sorted(n for n, r in SOURCES.items() if r.reads_path)
        _fail(
            f"--path is read by the {' and '.join(readers)} source only, and the source is {settings.source}; "
            f"add --source {readers[0]}",
            2,
        )


def _check_not_after_latest(day: date, latest: date, flag: str) -> None:
    if day > latest:
        _fail(
            f"{flag} {day} is after the latest completed NYSE session ({latest}): nobody has that close yet; "
            f"ask for {latest} or an earlier session",
            2,
        )


@app.command()
def rebuild(home: Optional[Path] = typer.Option(None, help="data home")) -> None:
    """Recompute every core table and mart from raw (year by year), write what differs, publish."""
    settings = _settings(None, None, home)
    from flows.rebuild import rebuild as rebuild_flow

    result = _run_flow("rebuild", rebuild_flow, home=str(settings.home))
    console.print(f"rebuilt through {result['as_of']}: published {result['published_path']}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"took {result['seconds']} s")


@app.command()
def demo(home: Optional[Path] = typer.Option(None, help="data home")) -> None:
    """Backfill the embedded sample market, run the nightly load for the latest session, print the night."""
    settings = _settings("sample", None, home)
    from flows.demo import demo as demo_flow

    result = _run_flow("demo: sample backfill + nightly", demo_flow, home=str(settings.home))
    for stage in ("backfill", "nightly"):
        r = result[stage]
        console.print(
            f"{stage}: load {r['load_id']} {r['status']}, night of {r['as_of']}, "
            f"{r['rows_in']:,} rows in, timings {json.dumps({k: round(v, 1) for k, v in r['timings'].items() if '.' not in k})}"
        )
    result["nightly"]["seconds"] = result["seconds"]
    _print_summary(result["nightly"], settings)


@app.command()
def sql(
    query: str = typer.Argument(..., help="SQL to run on the published snapshot"),
    fmt: Fmt = typer.Option(Fmt.table, "--format", help="table | csv | json (csv and json stream every row)"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="read the snapshot published that night"),
    allow_files: bool = typer.Option(False, "--allow-files", help="let the query read or write files (off by default)"),
    timeout_s: Optional[float] = typer.Option(
        None, "--timeout", min=0.001, help="stop the query after SECONDS with a one-line error", metavar="SECONDS"
    ),
    max_rows: int = typer.Option(
        TABLE_MAX_ROWS, "--max-rows", min=1, help="table format only: show at most this many rows (csv and json write all)"
    ),
    home: Optional[Path] = typer.Option(None, help="data home"),
) -> None:
    """Query the published warehouse, read-only. Writes, ATTACH, file access and SET are refused.

    csv: NULL is an empty unquoted field, an empty string is "". json: NaN and Infinity are null,
    dates ISO 8601, decimals exact numbers, blobs base64 (README, "Output for scripts").
    """
    settings = _settings(None, None, home)
    day = _date(as_of, "--as-of")
    from smallcaps import output
    from smallcaps.query import Query, QueryRefused, QueryStopped

    try:
        q = Query(settings, query, as_of=day, allow_files=allow_files, timeout_s=timeout_s)
    except FileNotFoundError as exc:
        _fail(str(exc))

    def consume() -> None:
        q.start()
        if fmt is Fmt.json:
            output.write_json(sys.stdout, q.columns, q.batches())
        elif fmt is Fmt.csv:
            output.write_csv(sys.stdout, q.columns, q.batches())
        else:
            _print_rows(q, max_rows)

    try:
        with q, _ctrl_c_interrupts(q):
            consume()
    except QueryStopped as exc:
        _fail(str(exc), 130 if q.stopped_by == "ctrl-c" else 1)
    except QueryRefused as exc:
        _fail(str(exc))
    except BrokenPipeError:
        # `smallcaps sql ... | head`: the reader has what it wanted.
        sys.stdout = None
        raise typer.Exit(0)


@contextmanager
def _ctrl_c_interrupts(q):
    """Ctrl-C interrupts the DuckDB query, wherever the main thread is blocked in it.

    Python runs a SIGINT handler only when the main thread is back in Python code, and DuckDB's
    streaming fetch does not return for it (nor can the query run in another thread: DuckDB 2.0
    aborts the process when SIGINT meets a query running off the main thread). The C-level handler
    does write the signal number to the wakeup fd at once, so a watcher thread reads it there and
    calls the connection's interrupt(); the Python-level handler is a no-op meanwhile.
    """
    import signal
    import socket

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)

    def watch() -> None:
        while True:
            try:
                got = reader.recv(64)
            except OSError:
                return
            if not got:
                return
            if signal.SIGINT in got:
                q.interrupt("ctrl-c")

    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    old_handler = signal.signal(signal.SIGINT, lambda signum, frame: None)
    watcher = threading.Thread(target=watch, name="ctrl-c", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_handler)
        signal.set_wakeup_fd(old_fd)
        reader.shutdown(socket.SHUT_RDWR)
        watcher.join(5)
        reader.close()
        writer.close()


def _print_rows(q, max_rows: int) -> None:
    """A Rich table of at most max_rows rows; every value printed literally (never read as markup)."""
    rows: list[tuple] = []
    is_more = False
    for batch in q.batches(min(max_rows + 1, 10_000)):
        rows.extend(batch)
        if len(rows) > max_rows:
            is_more = True
            break
    rows = rows[:max_rows]
    t = Table()
    for c in q.columns:
        t.add_column(Text(c))
    for r in rows:
        t.add_row(*[Text("" if v is None else (f"{v:,.4f}" if isinstance(v, float) else str(v))) for v in r])
    console.print(t)
    if is_more:
        console.print(
            f"first {len(rows):,} rows shown; the query returns more (--max-rows N shows more, "
            "--format csv or json writes every row)", highlight=False
        )
    else:
        console.print(f"{len(rows):,} row(s)", highlight=False)


STATUS_LOAD_COLUMNS = ("load_id", "flow", "source", "sessions", "status", "rows_loaded", "rows_quarantined", "finished_at", "message")
RESTATEMENT_COLUMNS = ("load_id", "table", "first_date", "last_date", "rows", "reason")


@app.command()
def status(
    fmt: Fmt = typer.Option(Fmt.table, "--format", help="table | json (csv: use `smallcaps sql` on meta.loads)"),
    home: Optional[Path] = typer.Option(None, help="data home"),
    fix_views: bool = typer.Option(
        False, "--fix-views", help="first write the views file again for where the data home is now (after a move or copy)"
    ),
) -> None:
    """Last loads, freshness per table, row counts, and the published snapshot BI tools should open."""
    _no_csv(fmt)
    settings = _settings(None, None, home)
    from pipeline.lock import LoadLocked
    from smallcaps.status import collect, fix_views as write_views

    if fix_views:
        try:
            written = write_views(settings)
        except (FileNotFoundError, LoadLocked) as exc:
            _fail(f"cannot fix the views: {exc}")
        # On stderr: stdout stays the status (and valid JSON with --format json).
        err.print(f"views written: {written}", soft_wrap=True, highlight=False, markup=False)
    try:
        s = collect(settings)
    except FileNotFoundError as exc:
        _fail(str(exc))
    if fmt is Fmt.json:
        _write_json_doc(
            {
                "published": None if s.published is None else str(s.published),
                "warehouse": str(s.warehouse),
                "read_from": s.read_from,
                "loads": [dict(zip(STATUS_LOAD_COLUMNS, r)) for r in s.loads],
                "tables": [{"table": t, "rows": n, "latest": latest} for t, n, latest in s.tables],
                "restatements": [dict(zip(RESTATEMENT_COLUMNS, r)) for r in s.restatements],
                "views": {
                    "path": None if s.views.path is None else str(s.views.path),
                    "reads": s.views.reads,
                    "is_current": s.views.is_current,
                    "problem": s.views.problem,
                },
            }
        )
        return
    # Paths on lines of their own, never wrapped: scripts and BI set-up copy them as printed.
    console.print(f"published: {s.published}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"warehouse: {s.warehouse} ({s.read_from})", soft_wrap=True, highlight=False, markup=False)
    console.print(f"views: {s.views.advice()}", soft_wrap=True, highlight=False, markup=False)
    t = Table(title="last loads")
    for c in ("load", "flow", "source", "sessions", "status", "rows loaded", "quarantined", "finished", "message"):
        t.add_column(c)
    for r in s.loads:
        t.add_row(*[Text("" if v is None else str(v)) for v in r])
    console.print(t)
    t = Table(title="tables")
    for c in ("table", "rows", "latest"):
        t.add_column(c)
    for name, rows, latest in s.tables:
        t.add_row(name, f"{rows:,}", "" if latest is None else str(latest))
    console.print(t)
    if s.restatements:
        t = Table(title="restatements: rows of published nights a later load rewrote (meta.restatements)")
        for c in ("load", "table", "first night", "last night", "rows", "why"):
            t.add_column(c)
        for r in s.restatements:
            t.add_row(*[Text("" if v is None else str(v)) for v in r])
        console.print(t)
    else:
        console.print("restatements: none (no published night has changed)")


@app.command()
def dq(
    load_id: Optional[str] = typer.Option(None, "--load", help="a load id (default: the latest gated load)"),
    docs: bool = typer.Option(False, "--docs", help="also write an HTML page of the results into the data home"),
    show_all: bool = typer.Option(False, "--all", help="list every expectation, not only failures and warnings"),
    fmt: Fmt = typer.Option(Fmt.table, "--format", help="table | json (json lists every expectation)"),
    home: Optional[Path] = typer.Option(None, help="data home"),
) -> None:
    """Data-quality results of the latest load: failures first, quarantined rows with examples."""
    _no_csv(fmt)
    settings = _settings(None, None, home)
    from smallcaps.dq import collect

    try:
        r = collect(settings, load_id)
    except FileNotFoundError as exc:
        _fail(str(exc))
    if r.load is None and load_id is not None:
        _fail(f"no load {load_id!r} in meta.loads of {settings.warehouse_path}; `smallcaps status` lists the latest loads")
    if fmt is Fmt.json:
        load = None if r.load is None else dict(zip(("load_id", "flow", "source", "status", "started_at", "message"), r.load))
        results = [
            dict(zip(("table", "expectation", "severity", "success", "unexpected_count", "element_count", "details"), x))
            for x in r.results
        ]
        quarantine = [dict(zip(("table", "expectation", "rows", "reason", "examples"), x)) for x in r.quarantine]
        _write_json_doc({"load": load, "read_from": r.read_from, "results": results, "quarantine": quarantine})
        return
    if r.load is None:
        console.print("no gated load yet")
        return
    lid, flow, source, st, started, message = r.load
    console.print(f"load {lid} ({flow}, {source}) {st} at {started:%Y-%m-%d %H:%M:%S}; read from the {r.read_from}")
    if message:
        console.print(f"message: {message}", markup=False, highlight=False)
    per_table: dict[str, list[int]] = {}
    failed = []
    # passed, warnings, quarantined (rows set aside, the rest loaded), failures (the load blocked)
    column = {"warning": 1, "quarantine": 2, "error": 3}
    for table, exp, sev, ok, bad, n, details in r.results:
        c = per_table.setdefault(table, [0, 0, 0, 0])
        c[0 if ok else column.get(sev, 3)] += 1
        if not ok or show_all:
            failed.append((table, exp, sev, ok, bad, n, details))
    t = Table(title="expectations per table")
    for c in ("table", "passed", "warnings", "quarantined", "failures"):
        t.add_column(c, justify="left" if c == "table" else "right")
    for table, (p, w, q, f) in per_table.items():
        t.add_row(
            table, str(p), f"[yellow]{w}[/yellow]" if w else "0", f"[magenta]{q}[/magenta]" if q else "0", f"[red]{f}[/red]" if f else "0"
        )
    console.print(t)
    if failed:
        t = Table(title="all expectations (failures first)" if show_all else "failures, quarantines and warnings")
        t.add_column("table.expectation (severity)", overflow="fold")
        t.add_column("result")
        t.add_column("unexpected / rows", justify="right")
        t.add_column("details", overflow="fold")
        marks = {"error": "[red]FAIL[/red]", "quarantine": "[magenta]quarantined[/magenta]", "warning": "[yellow]warn[/yellow]"}
        for table, exp, sev, ok, bad, n, details in failed:
            mark = "[green]pass[/green]" if ok else marks.get(sev, "[red]FAIL[/red]")
            counts = f"{'' if bad is None else f'{bad:,}'} / {'' if n is None else f'{n:,}'}"
            t.add_row(Text(f"{table}.{exp} ({sev})"), mark, counts, Text(details or ""))
        console.print(t)
    else:
        console.print("every expectation passed (--all lists them)")
    if r.quarantine:
        q = Table(title="dq.quarantine")
        for c in ("table", "expectation", "rows", "reason", "examples"):
            q.add_column(c, overflow="fold")
        for table, exp, n, reason, keys in r.quarantine:
            q.add_row(Text(table), Text(exp), f"{n:,}", Text(reason or ""), Text(", ".join(keys)))
        console.print(q)
    if docs:
        from expectations.docs import write_data_docs

        path = write_data_docs(settings, collect(settings, lid, examples=10))
        console.print(f"data docs: {path}", soft_wrap=True, highlight=False, markup=False)


@app.command()
def report(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="night to report (YYYY-MM-DD); default: the published snapshot's"),
    home: Optional[Path] = typer.Option(None, help="data home"),
) -> None:
    """Write the night's static HTML report (charts embedded, also saved as PNGs) from the published snapshot."""
    settings = _settings(None, None, home)
    day = _date(as_of, "--as-of")
    from report import ReportError, write_report

    try:
        r = write_report(settings, day)
    except ReportError as exc:
        _fail(str(exc))
    if r.is_synthetic:
        console.print(f"[bold red]synthetic sample data, not market prices[/bold red] (source {r.source})")
    # One path per line, never wrapped: scripts and terminals can open them as printed.
    console.print(f"report: {r.html_path}", soft_wrap=True, highlight=False, markup=False)
    for png in r.png_paths:
        console.print(f"chart: {png}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"latest: {r.latest_path} -> {os.readlink(r.latest_path)}", soft_wrap=True, highlight=False, markup=False)
    for text in r.absent:
        console.print(f"not drawn: {text}", soft_wrap=True, highlight=False, markup=False)
    console.print(
        f"data quality: {r.dq_status}; written in {r.seconds:.1f} s "
        f"({r.charts_reused} of {len(r.png_paths)} charts unchanged, from the chart cache)"
    )


def _no_csv(fmt: Fmt) -> None:
    if fmt is Fmt.csv:
        _fail("--format csv is for `smallcaps sql`; this command writes table or json", 2)


def _write_json_doc(doc: dict) -> None:
    from smallcaps.output import json_value

    sys.stdout.write(json_value(doc) + "\n")


def _date(text: Optional[str], flag: str) -> Optional[date]:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"{flag} {text!r} is not a date like 2026-01-22", 2)


if __name__ == "__main__":
    app()
