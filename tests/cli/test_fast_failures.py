"""A CLI that fails fast and speaks machine: arguments are checked before a Prefect server starts
(each refusal in seconds, not the ~10 s a server takes), `dq --load UNKNOWN` exits non-zero,
`status` and `dq` write JSON, `--version`, and a backfill whose csv folder holds a malformed file
leaves a failed load in meta.loads instead of nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from smallcaps.cli import app
from tests.helpers.matrix import first_of_each_kind

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
# Prefect prints this when a flow run starts its temporary API server: none of these runs may get there.
SERVER_LINE = "Starting temporary server"


def smallcaps(*args: str, home: Path) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "smallcaps.cli", *args, "--home", str(home)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    return done, time.monotonic() - started


CASES = {
    "csv without --path": (["run", "--source", "csv"], 2, "needs a folder: pass --path"),
    "missing folder": (["backfill", "--source", "csv", "--path", "/nonexistent/bars"], 2, "/nonexistent/bars does not exist"),
    "--path for sample": (["run", "--source", "sample", "--path", "."], 2, "--path is read by the csv source only"),
    "not a date": (["run", "--as-of", "2026-13-01"], 2, "--as-of '2026-13-01' is not a date"),
    "start after end": (["backfill", "--start", "2025-06-10", "--end", "2025-06-02"], 2, "--start 2025-06-10 is after --end 2025-06-02"),
    "future night": (["run", "--as-of", "2999-01-04"], 2, "after the latest completed NYSE session"),
    "weekend": (["run", "--as-of", "2025-06-21"], 0, "2025-06-21 is not an NYSE session"),
}


# Each case is a CLI process (1-3 s of imports): the fast loop runs one refusal and the weekend's
# clean exit, the full run every case.
@pytest.mark.parametrize("case", first_of_each_kind((pytest.param(c) for c in sorted(CASES)), kind=lambda c: CASES[c][1]))
def test_bad_arguments_fail_before_any_prefect_server(tmp_path, case):
    args, code, message = CASES[case]
    done, seconds = smallcaps(*args, home=tmp_path / "home")
    text = " ".join((done.stdout + done.stderr).split())  # Rich may wrap a long line on stderr
    assert done.returncode == code, text
    assert message in text and "Traceback" not in text
    assert SERVER_LINE not in text
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()  # nothing was opened, nothing loaded
    # About 1 to 3 s on an idle machine (mostly imports). The proof is structural (no server line,
    # no warehouse); the bound only catches a run that hangs, and is loose because the suite shares
    # two CPUs with whatever else runs (20 s was exceeded at a load average of 15).
    assert seconds < 60, f"{case} took {seconds:.1f} s"


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("smallcaps ") and "DuckDB" in result.output


@pytest.fixture(scope="module")
def failed_home(tmp_path_factory) -> tuple[Path, Path]:
    """A data home whose only load is a csv backfill that failed on a malformed bar file."""
    from flows.backfill import backfill

    base = tmp_path_factory.mktemp("failed-load")
    folder, home = base / "bars", base / "home"
    folder.mkdir()
    # A truncated last line, as a download cut short leaves it.
    (folder / "^RUT.csv").write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2025-06-02,2070.1,2080.5,2050.2,2075.3,2075.3,0\n"
        "2025-06-03,2075.3,2090\n"
    )
    with pytest.raises(ValueError, match=r"line 3: 3 fields"):
        backfill.fn(source="csv", csv_path=str(folder), home=str(home))
    return home, folder


def test_a_backfill_failing_on_a_malformed_file_is_recorded(failed_home):
    home, folder = failed_home
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    rows = con.execute("SELECT flow_name, source, status, message, finished_at FROM meta.loads").fetchall()
    con.close()
    assert len(rows) == 1
    flow, source, status, message, finished_at = rows[0]
    assert (flow, source, status) == ("backfill", "csv", "failed") and finished_at is not None
    assert str(folder / "^RUT.csv") in message and "line 3" in message


def test_status_json_shows_the_failed_load(failed_home):
    home, _ = failed_home
    result = runner.invoke(app, ["status", "--format", "json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["published"] is None and doc["warehouse"] == str(home / "warehouse.duckdb")
    (load,) = doc["loads"]
    assert load["status"] == "failed" and "line 3" in load["message"]
    assert date.fromisoformat(load["finished_at"][:10])
    assert {"table": "raw.index_bars", "rows": 0, "latest": None} in doc["tables"]


def test_dq_json_and_an_unknown_load(failed_home):
    home, _ = failed_home
    result = runner.invoke(app, ["dq", "--format", "json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"load": None, "read_from": "private warehouse", "results": [], "quarantine": []}
    unknown = runner.invoke(app, ["dq", "--load", "20990101T000000-nope", "--home", str(home)])
    assert unknown.exit_code == 1 and "no load '20990101T000000-nope'" in unknown.output


def test_status_table_is_not_cut_in_a_pipe(failed_home):
    home, folder = failed_home
    result = runner.invoke(app, ["status", "--home", str(home)])
    assert result.exit_code == 0
    # The message column (its first 120 characters, as status keeps them) is whole on one line.
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    message = con.execute("SELECT left(message, 120) FROM meta.loads").fetchone()[0]
    con.close()
    assert any(message in line for line in result.output.splitlines()), result.output
