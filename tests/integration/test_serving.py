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

from forkserver import run_worker
from smallcaps.cli import app

# Runs a flow: reads a home the backfill flow built (small_baseline).
pytestmark = pytest.mark.slow

NIGHT = date(2025, 6, 23)
runner = CliRunner()


@pytest.fixture(scope="module")
def home(small_baseline, tmp_path_factory) -> Path:
    """The baseline (published 2025-06-20) plus the night of 2025-06-23, loaded, gated, published
    and exported in a home whose path has a space and a quote: no path is pasted into SQL."""
    home = tmp_path_factory.mktemp("serving") / "o'brien data" / "home"
    home.parent.mkdir()
    shutil.copytree(small_baseline, home, symlinks=True)
    done = run_worker(home, "nightly", NIGHT)
    assert done.returncode == 0, done.stderr[-3000:]
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
        "SELECT count(*), max(session_date) FROM read_parquet(?, hive_partitioning = true)",
        [f"{current}/index_daily/*/*.parquet"],
    ).fetchone()
    assert scanned == pub.execute("SELECT count(*), max(session_date) FROM marts.index_daily").fetchone()
    frame = pl.read_parquet(current / "cohort_performance", hive_partitioning=True)
    assert frame.height == pub.execute("SELECT count(*) FROM marts.cohort_performance").fetchone()[0]
    assert sorted(p.name for p in (current / "index_daily").iterdir()) == ["year=2025"]
    # The views file, as the DuckDB CLI, Metabase or Superset open it: its paths are absolute,
    # nothing to configure.
    views = duckdb.connect(str(home / "exports" / "smallcaps_views.duckdb"), read_only=True)
    for mart in ("index_daily", "index_records", "index_performance", "relative_performance", "cohort_composition",
                 "cohort_performance", "sector_daily", "sector_performance", "headlines"):
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


def _published_tables(con) -> list[str]:
    return [f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal ORDER BY 1, 2").fetchall()]


def test_every_published_table_and_column_explains_itself_and_keeps_its_key(home):
    from ground.registry import described

    pub = duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)
    tables = _published_tables(pub)
    assert {"marts.index_daily", "core.cohorts", "meta.loads", "meta.snapshot", "dq.results"} <= set(tables)
    bare = pub.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE NOT internal AND coalesce(comment, '') = ''"
    ).fetchall()
    assert bare == []
    uncommented = pub.execute(
        "SELECT schema_name || '.' || table_name || '.' || column_name FROM duckdb_columns() "
        "WHERE NOT internal AND coalesce(comment, '') = ''").fetchall()
    assert uncommented == []
    # Comments are the registry's, units included.
    assert pub.execute(
        "SELECT comment FROM duckdb_columns() WHERE table_name = 'cohort_performance' AND column_name = 'return_median'"
    ).fetchone()[0] == described("marts.cohort_performance").comment("return_median") == "median member return [fraction]"
    keys = dict(((s, t), list(cols)) for s, t, cols in pub.execute(
        "SELECT schema_name, table_name, constraint_column_names FROM duckdb_constraints() "
        "WHERE constraint_type = 'PRIMARY KEY'").fetchall())
    for table in tables:
        schema, name = table.split(".")
        assert keys.get((schema, name)) == list(described(table).key), table
    assert pub.execute("SELECT storage_version FROM meta.snapshot").fetchone()[0] == "v1.4.0"


def test_parquet_files_carry_the_registry_descriptions(home):
    from ground.registry import described

    current = home / "exports" / "current"
    files = sorted(current.rglob("*.parquet"))
    assert files
    con = duckdb.connect()
    for f in files:
        kv = dict(con.execute(
            "SELECT decode(key), decode(value) FROM parquet_kv_metadata(?)", [str(f)]).fetchall())
        mart = kv["table"]
        d = described(mart)
        assert kv["grain"] == d.grain, f
        names = [r[0] for r in con.execute("SELECT name FROM parquet_schema(?) WHERE num_children IS NULL", [str(f)]).fetchall()]
        assert names and all(kv[f"column:{n}"] == d.comment(n) for n in names), f


def test_the_views_file_reads_the_data_home_after_it_moved(home, tmp_path, monkeypatch):
    """A copied or moved home reads its own files once `smallcaps status --fix-views` wrote its
    views again (the original is renamed away while the copy is read, so it cannot be what answers),
    from any working directory, without file_search_path."""
    moved = tmp_path / "elsewhere" / "home"
    shutil.copytree(home, moved, symlinks=True)
    away = home.parent / "away"
    pub = duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)
    expected = pub.execute("SELECT count(*), sum(hash(session_date, close)) FROM marts.index_daily").fetchone()
    pub.close()
    home.rename(away)
    try:
        fixed = runner.invoke(app, ["status", "--home", str(moved), "--fix-views"])
        assert fixed.exit_code == 0, fixed.output
        monkeypatch.chdir(tmp_path)
        views = duckdb.connect(str(moved / "exports" / "smallcaps_views.duckdb"), read_only=True)
        assert views.execute("SELECT count(*), sum(hash(session_date, close)) FROM marts.index_daily").fetchone() == expected
        assert views.execute("SELECT count(*) FROM marts.index_records").fetchone()[0] > 0
        views.close()
    finally:
        away.rename(home)


def test_a_duckdb_1x_client_opens_the_snapshot_and_the_views_and_gets_the_same_rows(home):
    import json

    from old_duckdb import OLD_DUCKDB, old_duckdb_python, query_with

    python = old_duckdb_python()
    query = ("SELECT universe, anchor, cohort, session_date, members, return_equal_weight FROM marts.cohort_performance "
             "ORDER BY universe, anchor, cohort, session_date")
    pub_path = home / "published" / "smallcaps.duckdb"
    pub = duckdb.connect(str(pub_path), read_only=True)
    expected = json.loads(json.dumps(pub.execute(query).fetchall(), default=str))
    assert len(expected) > 100
    old = query_with(python, pub_path, query)
    assert old["version"] == OLD_DUCKDB and old["rows"] == expected
    # The comments and keys reach the old client too.
    described = query_with(python, pub_path, "SELECT comment FROM duckdb_tables() WHERE table_name = 'cohort_performance'")
    assert described["rows"][0][0].startswith("one row per universe")
    exports = home / "exports"
    viewed = query_with(python, exports / "smallcaps_views.duckdb", query)
    assert viewed["rows"] == expected


def test_sqlalchemy_reflects_the_snapshot_as_superset_does(home):
    """docs/bi.md's Superset recipe: duckdb-engine and SQLAlchemy list the tables, reflect typed and
    commented columns, and run a query over a reflected table."""
    import json

    from old_duckdb import SQLALCHEMY_STACK, old_duckdb_python, reflect_with

    pub_path = home / "published" / "smallcaps.duckdb"
    seen = reflect_with(old_duckdb_python(extra=SQLALCHEMY_STACK), pub_path)
    pub = duckdb.connect(str(pub_path), read_only=True)
    marts = [r[0] for r in pub.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts' ORDER BY 1").fetchall()]
    assert "smallcaps.marts" in seen["schemas"] and sorted(seen["tables"]) == marts  # catalog.schema
    expected = [[c, t, comment] for c, t, comment in pub.execute(
        "SELECT column_name, data_type, comment FROM duckdb_columns() WHERE schema_name = 'marts' "
        "AND table_name = 'index_daily' ORDER BY column_index").fetchall()]
    # Names and comments as published; every type reflected (SQLAlchemy names DuckDB's DOUBLE Float).
    assert [[c, comment] for c, _, comment in seen["columns"]["index_daily"]] == [[c, m] for c, _, m in expected]
    sqlalchemy_type = {"VARCHAR": "VARCHAR", "DATE": "DATE", "DOUBLE": "FLOAT", "INTEGER": "INTEGER", "BOOLEAN": "BOOLEAN"}
    assert [t for _, t, _ in seen["columns"]["index_daily"]] == [sqlalchemy_type[t] for _, t, _ in expected]
    assert seen["table_comment"] == pub.execute(
        "SELECT comment FROM duckdb_tables() WHERE table_name = 'index_records'").fetchone()[0]
    rows = pub.execute("SELECT * FROM marts.index_records ORDER BY symbol, year").fetchall()
    assert rows and seen["rows"] == json.loads(json.dumps(rows, default=str))
