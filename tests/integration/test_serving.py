"""What readers get: `smallcaps sql` on published snapshots only and read-only, `--as-of` nights,
`status` naming the file to open, and the Parquet exports BI tools scan."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from forkserver import ForkServer
from smallcaps.cli import app

# Runs a flow: reads a home the backfill flow built (small_baseline).
pytestmark = pytest.mark.slow

NIGHT = date(2025, 6, 23)
runner = CliRunner()


@pytest.fixture(scope="module")
def home(small_baseline, tmp_path_factory) -> Path:
    """The baseline (published 2025-06-20) plus the night of 2025-06-23."""
    home = tmp_path_factory.mktemp("serving") / "home"
    shutil.copytree(small_baseline, home, symlinks=True)
    with ForkServer() as server:
        assert server.load(home, NIGHT) == 0, f"see {home}-load.log"
    return home


def sql(home: Path, query: str, *args: str):
    return runner.invoke(app, ["sql", query, "--home", str(home), *args])


REFUSED = {
    "insert": "INSERT INTO marts.index_records SELECT * FROM marts.index_records",
    "delete": "DELETE FROM marts.index_daily",
    "update": "UPDATE marts.index_daily SET close = 0",
    "create": "CREATE TABLE marts.mine AS SELECT 1",
    "drop": "DROP TABLE marts.index_daily",
    "attach": "ATTACH '{tmp}/other.duckdb' AS other",
    "copy_to": "COPY (SELECT * FROM marts.index_daily) TO '{tmp}/out.csv'",
    "read_csv": "SELECT * FROM read_csv('{tmp}/secret.csv')",
    "read_text": "SELECT * FROM read_text('/etc/hostname')",
    "reenable": "SET enable_external_access = true",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_sql_refuses_writes_attach_copy_and_file_reads(home, tmp_path, case):
    (tmp_path / "secret.csv").write_text("a\n1\n")
    before = (home / "published" / "smallcaps.duckdb").read_bytes()
    result = sql(home, REFUSED[case].format(tmp=tmp_path))
    assert result.exit_code == 1, result.output
    assert "refused" in result.output and ("read-only" in result.output or "--allow-files" in result.output), result.output
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()
    assert (home / "published" / "smallcaps.duckdb").read_bytes() == before


def test_allow_files_lets_a_query_read_a_file(home, tmp_path):
    (tmp_path / "mine.csv").write_text("symbol\n^RUT\n")
    query = f"SELECT d.close FROM marts.index_daily d JOIN read_csv('{tmp_path}/mine.csv') m USING (symbol) WHERE session_date = '{NIGHT}'"
    assert sql(home, query).exit_code == 1
    result = sql(home, query, "--allow-files", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "close" and len(result.output.splitlines()) == 2


def test_as_of_reads_the_night_as_published(home):
    latest = sql(home, "SELECT as_of_date, max(session_date) AS last FROM meta.snapshot, marts.index_daily GROUP BY 1", "--format", "json")
    assert latest.exit_code == 0 and '"as_of_date": "2025-06-23"' in latest.output and '"last": "2025-06-23"' in latest.output
    before = sql(home, "SELECT max(session_date) AS last FROM marts.index_daily", "--as-of", "2025-06-20", "--format", "csv")
    assert before.exit_code == 0 and before.output.splitlines() == ["last", "2025-06-20"]
    missing = sql(home, "SELECT 1", "--as-of", "2025-01-02")
    assert missing.exit_code == 1 and "no snapshot published for 2025-01-02" in missing.output
    assert "2025-06-20" in missing.output  # names the nights it keeps


def test_status_names_the_published_file_on_a_line_of_its_own(home):
    result = runner.invoke(app, ["status", "--home", str(home)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("published: ")]
    assert len(lines) == 1
    path = Path(lines[0].removeprefix("published: ").strip())
    assert path == home / "published" / "smallcaps.duckdb" and path.exists()


def test_parquet_exports_and_their_views_hold_the_published_marts(home):
    pub = duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)
    current = home / "exports" / "current"
    assert current.is_symlink()
    # Python and DuckDB over the Parquet folder, as a notebook would.
    scanned = duckdb.connect().execute(
        f"SELECT count(*), max(session_date) FROM read_parquet('{current}/index_daily/*/*.parquet', hive_partitioning = true)"
    ).fetchone()
    assert scanned == pub.execute("SELECT count(*), max(session_date) FROM marts.index_daily").fetchone()
    frame = pl.read_parquet(current / "cohort_performance", hive_partitioning=True)
    assert frame.height == pub.execute("SELECT count(*) FROM marts.cohort_performance").fetchone()[0]
    assert sorted(p.name for p in (current / "index_daily").iterdir()) == ["year=2025"]
    # The views file, as the DuckDB CLI, Metabase or Superset open it.
    views = duckdb.connect(str(home / "exports" / "smallcaps_views.duckdb"), read_only=True)
    for mart in ("index_daily", "index_records", "index_performance", "relative_performance", "cohort_composition",
                 "cohort_performance", "sector_daily", "headlines"):
        cols = [d[0] for d in pub.execute(f"SELECT * FROM marts.{mart} LIMIT 0").description]
        a = pub.execute(f"SELECT count(*), sum(hash({', '.join(cols)})) FROM marts.{mart}").fetchone()
        b = views.execute(f"SELECT count(*), sum(hash({', '.join(cols)})) FROM marts.{mart}").fetchone()
        assert a == b, mart


def test_dq_lists_the_latest_gate_results_failures_first(home):
    result = runner.invoke(app, ["dq", "--home", str(home), "--docs"])
    assert result.exit_code == 0, result.output
    assert "expectations per table" in result.output and "raw.equity_bars" in result.output
    listed = runner.invoke(app, ["dq", "--home", str(home), "--all"])
    assert listed.exit_code == 0 and "all expectations (failures first)" in listed.output
    page = next((home / "report" / "dq").glob("*.html"))
    text = page.read_text()
    assert "Data quality of load" in text
    # GX's own data docs: one page per table GX validated, rendered by GX from the saved result.
    gx_pages = sorted((home / "report" / "dq" / page.stem).glob("*.html"))
    assert {"raw.equity_bars", "raw.index_bars", "marts.cohort_composition"} <= {p.stem for p in gx_pages}
    for p in gx_pages:
        assert f"href='{page.stem}/{p.name}'" in text
    bars = (home / "report" / "dq" / page.stem / "raw.equity_bars.html").read_text()
    assert "Data documentation compiled by Great Expectations" in bars and "Evaluated Expectations" in bars
    assert page.stem in bars  # the load id, as GX's run name
