"""The views file after its data home moved (`smallcaps status --fix-views`), and a CLI that exits
without nanobind's `leaked ...` lines.

The home here is built without a flow: the registry's tables, real ^RUT closes of 2021-2022 in
marts.index_daily (tests/fixtures/yahoo-daily-csv), the other marts empty, then the nightly's own
export() writes the Parquet and the views file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from smallcaps.cli import app
from ground.registry import DATASETS
from warehouse.datasets import sync
from warehouse.db import connect
from warehouse.export import export

ROOT = Path(__file__).resolve().parents[2]
RUT_CSV = ROOT / "tests" / "fixtures" / "yahoo-daily-csv" / "^RUT.csv"
runner = CliRunner()


# What a reader gets from index_daily, exactly (a float sum would depend on the scan's order).
CHECK = "SELECT count(*), sum(round(close * 100000)::BIGINT), max(session_date)::VARCHAR"


def build_home(home: Path) -> list:
    """A migrated warehouse whose index_daily holds ^RUT's real 2021-2022 closes, exported as the
    nightly does; returns CHECK on that mart."""
    con = connect(home / "warehouse.duckdb")
    try:
        sync(con, DATASETS)
        con.execute(
            """INSERT INTO marts.index_daily (symbol, session_date, close, is_record_close, records_ytd,
                   drawdown_from_record, record_close, record_date)
               SELECT '^RUT', "Date", "Close", "Close" = record, 0, "Close" / record - 1, record, "Date"
               FROM (SELECT "Date", "Close", max("Close") OVER (ORDER BY "Date") AS record
                     FROM read_csv(?, header = true) WHERE "Date" >= DATE '2021-01-01')""",
            [str(RUT_CSV)],
        )
        export(con, home / "exports", load_id="L1", partitions={d.name: d.date_column for d in DATASETS if d.export})
        return list(con.execute(f"{CHECK} FROM marts.index_daily").fetchone())
    finally:
        con.close()


# Reads a view as a BI tool would: a new process, its own working directory, no file_search_path.
_READ_VIEW = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
try:
    got = con.execute(sys.argv[2] + " FROM marts.index_daily").fetchone()
    empty = con.execute("SELECT count(*) FROM marts.index_records").fetchone()[0]
    print(json.dumps({"index_daily": list(got), "index_records": empty}))
except duckdb.Error as exc:
    print(json.dumps({"error": str(exc)}))
"""


def read_views(views: Path, cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _READ_VIEW, str(views), CHECK], capture_output=True, text=True, cwd=cwd, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def status_json(home: Path, *args: str) -> dict:
    result = runner.invoke(app, ["status", "--home", str(home), "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_fix_views_makes_a_moved_home_readable_from_any_working_directory(tmp_path):
    first = tmp_path / "first place" / "o'brien home"
    first.parent.mkdir()
    expected = build_home(first)
    assert expected[0] == 252 + 223  # NYSE sessions: all of 2021, 2022 up to the fixture's last day (2022-11-18)
    elsewhere = tmp_path / "a working directory"
    elsewhere.mkdir()
    views = status_json(first)["views"]
    assert views["is_current"] and views["reads"] == str(first / "exports" / "current")
    assert read_views(first / "exports" / "smallcaps_views.duckdb", elsewhere)["index_daily"] == expected

    moved = tmp_path / "moved [2]" / "home"  # brackets: DuckDB globs the path read_parquet gets
    moved.parent.mkdir()
    first.rename(moved)  # the original path is gone: nothing can answer from there
    moved_views = moved / "exports" / "smallcaps_views.duckdb"
    stale = status_json(moved)["views"]
    assert not stale["is_current"] and stale["reads"] == str(first / "exports" / "current")
    text = runner.invoke(app, ["status", "--home", str(moved)])
    assert "`smallcaps status --fix-views` writes it for this home" in text.output
    assert "No files found" in read_views(moved_views, elsewhere)["error"]

    fixed = runner.invoke(app, ["status", "--home", str(moved), "--fix-views", "--format", "json"])
    assert fixed.exit_code == 0, fixed.output
    assert f"views written: {moved_views}" in fixed.stderr
    assert json.loads(fixed.stdout)["views"] == {
        "path": str(moved_views), "reads": str(moved / "exports" / "current"), "is_current": True, "problem": None,
    }
    assert read_views(moved_views, elsewhere) == {"index_daily": expected, "index_records": 0}


def test_status_reports_a_views_file_of_relative_paths_and_fix_views_replaces_it(tmp_path):
    """A home exported before the views held absolute paths: its views read `current/...`, which
    only resolves from the exports folder or through file_search_path."""
    import duckdb

    home = tmp_path / "home"
    expected = build_home(home)
    views = home / "exports" / "smallcaps_views.duckdb"
    views.unlink()
    old = duckdb.connect(str(views))
    old.execute("CREATE SCHEMA marts")
    old.execute("SET file_search_path = ?", [str(home / "exports")])
    old.execute("CREATE VIEW marts.index_daily AS SELECT * EXCLUDE (year) FROM read_parquet('current/index_daily/*/*.parquet', hive_partitioning = true)")
    old.execute("CREATE VIEW marts.index_records AS SELECT * FROM read_parquet('current/index_records.parquet')")
    old.close()
    assert status_json(home)["views"] == {"path": str(views), "reads": "current", "is_current": False, "problem": None}
    assert "No files found" in read_views(views, tmp_path)["error"]
    status_json(home, "--fix-views")
    assert read_views(views, tmp_path) == {"index_daily": expected, "index_records": 0}


def test_fix_views_without_exports_says_what_to_run(tmp_path):
    home = tmp_path / "home"
    connect(home / "warehouse.duckdb").close()
    result = runner.invoke(app, ["status", "--home", str(home), "--fix-views"])
    assert result.exit_code == 1
    assert f"nothing exported at {home.resolve() / 'exports' / 'current'}" in result.output
    assert "first nightly load" in result.output


def test_fix_views_refuses_while_a_load_holds_the_home(tmp_path):
    from pipeline.lock import load_lock

    home = tmp_path / "home"
    build_home(home)
    views = home / "exports" / "smallcaps_views.duckdb"
    before = views.read_bytes()
    with load_lock(home):
        result = runner.invoke(app, ["status", "--home", str(home), "--fix-views"])
    assert result.exit_code == 1
    assert "cannot fix the views: another load is running on" in result.output
    assert views.read_bytes() == before


def test_cli_commands_exit_without_nanobind_leak_lines(tmp_path):
    """DuckDB's bindings (nanobind) list every binding object still alive when the interpreter
    ends. The commands that open DuckDB files, including the --timeout timer thread of `sql`, run
    in processes of their own here; none may print that list."""
    home = tmp_path / "home"
    build_home(home)
    (home / "published").mkdir()
    # A stand-in snapshot (the closed warehouse's copy): `sql` opens published/smallcaps.duckdb read-only.
    shutil.copy(home / "warehouse.duckdb", home / "published" / "smallcaps.duckdb")
    commands = [
        ["sql", "--timeout", "60", "SELECT count(*) FROM marts.index_daily"],
        ["sql", "--format", "csv", "SELECT * FROM marts.index_daily"],
        ["status", "--fix-views", "--format", "json"],
    ]
    procs = [
        subprocess.Popen([sys.executable, "-m", "smallcaps.cli", *c, "--home", str(home)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    for command, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (command, err[-2000:])
        assert out and "nanobind" not in err, (command, err[-2000:])


def test_the_leak_check_sees_a_connection_that_outlives_the_interpreter():
    """The check above is not vacuous: this DuckDB build does print the leak lines when a
    connection outlives the interpreter (here one given a reference nobody ever drops)."""
    leaky = "import ctypes, duckdb\ncon = duckdb.connect()\nctypes.pythonapi.Py_IncRef(ctypes.py_object(con))\n"
    done = subprocess.run([sys.executable, "-c", leaky], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "nanobind: leaked" in done.stderr and 'leaked type "_duckdb.DuckDBPyConnection"' in done.stderr
