"""`smallcaps sql` output that scripts can trust: values printed literally, valid JSON, NULL told
from the empty string in CSV, streaming with bounded memory, --timeout and Ctrl-C as one-line
errors, SET refused as a locked setting. The snapshot here is a small DuckDB file written by the
test in the published place of a data home (what the command reads is only that file)."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from smallcaps.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("sql-out") / "home"
    (home / "published").mkdir(parents=True)
    con = duckdb.connect(str(home / "published" / "smallcaps.duckdb"))
    con.execute(
        "CREATE TABLE odd (id INTEGER, label VARCHAR, x DOUBLE, amount DECIMAL(18, 6), day DATE, stamp_at TIMESTAMP, raw BLOB)"
    )
    con.execute(
        "INSERT INTO odd VALUES "
        "(1, '[red]x[/red]', 'NaN'::DOUBLE, 12345678901.123456, DATE '2026-01-22', TIMESTAMP '2026-01-22 16:00:00', '\\x00\\xFFab'::BLOB), "
        "(2, '', 'Infinity'::DOUBLE, -0.5, NULL, NULL, NULL), "
        "(3, NULL, '-Infinity'::DOUBLE, NULL, NULL, NULL, ''::BLOB), "
        "(4, 'a,b \"q\"', 1.25, 0, NULL, NULL, NULL)"
    )
    con.close()
    return home


def sql(home: Path, query: str, *args: str):
    return runner.invoke(app, ["sql", query, "--home", str(home), *args])


def cli(home: Path, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "smallcaps.cli", *args, "--home", str(home)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, **kw,
    )


@pytest.mark.parametrize("text", ["[/x]", "[red]x[/red]", "[bold]", "[link=file:///etc]y[/link]"])
def test_table_prints_values_and_names_literally(home, text):
    result = sql(home, f"SELECT '{text}' AS \"{text}\"")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert sum(text in line for line in lines) == 2, result.output  # the header and the value, as typed


def test_json_is_valid_with_nan_infinity_null_dates_decimals_and_blobs(home):
    result = sql(home, "SELECT * FROM odd ORDER BY id", "--format", "json")
    assert result.exit_code == 0, result.output
    # json.loads rejects NaN/Infinity only when told to: a strict parser is what other tools use.
    rows = json.loads(result.output, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"), parse_float=Decimal)
    assert [r["x"] for r in rows] == [None, None, None, Decimal("1.25")]
    assert rows[0]["amount"] == Decimal("12345678901.123456")  # every digit, not a float's 15
    assert [r["amount"] for r in rows[1:]] == [Decimal("-0.5"), None, 0]
    assert rows[0]["day"] == "2026-01-22" and rows[0]["stamp_at"] == "2026-01-22T16:00:00"
    assert base64.b64decode(rows[0]["raw"]) == b"\x00\xffab" and rows[2]["raw"] == ""
    assert [r["label"] for r in rows] == ["[red]x[/red]", "", None, 'a,b "q"']


def test_json_of_no_rows_is_an_empty_array(home):
    result = sql(home, "SELECT * FROM odd WHERE false", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.output) == []


def test_csv_tells_null_from_the_empty_string(home):
    result = sql(home, "SELECT id, label, amount FROM odd ORDER BY id", "--format", "csv")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines == ["id,label,amount", '1,[red]x[/red],12345678901.123456', '2,"",-0.500000', "3,,", '4,"a,b ""q""",0.000000']
    # A standard reader gets the values back; the raw text is where NULL and '' differ.
    assert list(csv.reader(io.StringIO(result.output)))[4] == ["4", 'a,b "q"', "0.000000"]


def test_set_on_the_locked_configuration_says_settings_are_locked(home):
    result = sql(home, "SET threads = 1")
    assert result.exit_code == 1
    assert "settings are locked" in result.output and "Traceback" not in result.output


def test_table_caps_rows_and_says_so(home):
    result = sql(home, "SELECT * FROM range(50)", "--max-rows", "7")
    assert result.exit_code == 0, result.output
    assert "first 7 rows shown" in result.output and "--format csv" in result.output
    whole = sql(home, "SELECT * FROM range(5)", "--max-rows", "7")
    assert "5 row(s)" in whole.output and "shown" not in whole.output


def test_no_column_is_cut_when_stdout_is_not_a_terminal(home):
    long = "v" * 300
    result = sql(home, f"SELECT '{long}' AS a, '{long}' AS b, '{long}' AS c")
    assert result.exit_code == 0
    assert sum(line.count(long) for line in result.output.splitlines()) == 3


@pytest.mark.slow  # over ~10 s: kept out of `make test-fast`, run by `make test`
def test_csv_streams_millions_of_rows_in_bounded_memory(home, tmp_path):
    """2M rows to csv: peak RSS must stay near that of a one-row query. Holding the rows as Python
    tuples (what `fetchall` did) costs hundreds of MB more."""
    probe = (
        "import resource, sys\n"
        "from smallcaps.cli import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, code, file=sys.stderr)\n"
    )
    peaks = {}
    for n in (1, 2_000_000):
        query = f"SELECT i, 'row ' || i AS label FROM range({n}) t(i)"
        with open(tmp_path / f"{n}.csv", "w") as out:
            done = subprocess.run(
                [sys.executable, "-c", probe, "sql", query, "--format", "csv", "--home", str(home)],
                stdout=out, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120,
            )
        peak_mb, code = done.stderr.split()[-2:]
        assert code in ("0", "None"), done.stderr
        peaks[n] = int(peak_mb)
    with open(tmp_path / "2000000.csv") as f:
        assert sum(1 for _ in f) == 2_000_001
    assert peaks[2_000_000] - peaks[1] < 150, peaks


def test_timeout_stops_a_runaway_query_with_one_line(home):
    started = time.monotonic()
    p = cli(home, "sql", "SELECT sum(hash(i)) FROM range(1000000000000) t(i)", "--timeout", "1")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1
    assert time.monotonic() - started < 30
    assert "--timeout 1 s" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_ctrl_c_stops_a_query_with_one_line(home):
    p = cli(home, "sql", "SELECT sum(hash(i)) FROM range(1000000000000) t(i)", "--format", "csv")
    # Ctrl-C once the snapshot is open (imports done, the query about to run): on a busy machine a
    # fixed sleep could land in the imports, which no command can answer with one line.
    snapshot = home / "published" / "smallcaps.duckdb"
    deadline = time.monotonic() + 60
    while not any(Path(os.readlink(fd)) == snapshot for fd in Path(f"/proc/{p.pid}/fd").iterdir() if _is_link(fd)):
        assert time.monotonic() < deadline and p.poll() is None, "the command never opened the snapshot"
        time.sleep(0.1)
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def _is_link(fd: Path) -> bool:
    try:
        return fd.is_symlink()
    except OSError:  # the descriptor closed while listed
        return False
