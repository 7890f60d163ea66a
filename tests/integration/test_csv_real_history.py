"""Real index history (Yahoo daily CSVs, 2000-2022) loaded through the csv source by the backfill
flow, read back from the marts: the figures a market note would quote."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.backfill import backfill
from warehouse.db import checksums, table_names

# Runs a flow: the module's home is loaded by the backfill flow.
pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "yahoo-daily-csv"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("csv")
    for name in ("^RUT.csv", "^GSPC.csv", "^VIX.csv"):
        shutil.copy(FIXTURES / name, folder / name)
    home = tmp_path_factory.mktemp("csv-home")
    result = backfill(source="csv", csv_path=str(folder), home=str(home))
    assert result["status"] == "succeeded", result
    assert result["as_of"] == "2022-11-18"  # the folder's last session, not today's
    home.joinpath("folder").write_text(str(folder))
    return home


def marts(home: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)


def test_russell_2000_record_close_of_november_2021(home):
    con = marts(home)
    # The last record close in the loaded history (to 2022-11-18) is that of 2021-11-08.
    last = con.execute(
        "SELECT max(last_record_date) FROM marts.index_records WHERE symbol = '^RUT'"
    ).fetchone()[0]
    assert last == date(2021, 11, 8)
    close, record = con.execute(
        "SELECT close, max(close) OVER () FROM marts.index_daily WHERE symbol = '^RUT' QUALIFY session_date = '2021-11-08'"
    ).fetchone()
    assert round(close, 2) == round(record, 2) == 2442.74
    assert con.execute(
        "SELECT record_closes FROM marts.index_records WHERE symbol = '^RUT' AND year = 2021"
    ).fetchone()[0] >= 1
    flagged = con.execute(
        "SELECT is_record_close, records_ytd FROM marts.index_daily WHERE symbol = '^RUT' AND session_date = '2021-11-08'"
    ).fetchone()
    assert flagged[0] is True and flagged[1] >= 1


def test_sp500_2007_record_first_beaten_in_march_2013(home):
    con = marts(home)
    before = con.execute(
        "SELECT max(close) FROM marts.index_daily WHERE symbol = '^GSPC' AND session_date < '2013-01-01'"
    ).fetchone()[0]
    assert round(before, 2) == 1565.15
    at = con.execute(
        "SELECT session_date FROM marts.index_daily WHERE symbol = '^GSPC' AND round(close, 2) = 1565.15"
    ).fetchone()[0]
    assert at == date(2007, 10, 9)
    first = con.execute(
        "SELECT session_date, close FROM marts.index_daily WHERE symbol = '^GSPC' AND is_record_close "
        "AND session_date > '2007-10-09' ORDER BY session_date LIMIT 1"
    ).fetchone()
    assert first[0] == date(2013, 3, 28) and round(first[1], 2) == 1569.19


# Calendar-year price returns as published by the index providers (S&P Dow Jones Indices, FTSE
# Russell), in per cent, two decimals.
PUBLISHED = {
    ("^GSPC", 2008): -38.49,
    ("^GSPC", 2013): 29.60,
    ("^GSPC", 2019): 28.88,
    ("^GSPC", 2020): 16.26,
    ("^GSPC", 2021): 26.89,
    ("^RUT", 2013): 37.00,
    ("^RUT", 2019): 23.72,
    ("^RUT", 2020): 18.36,
    ("^RUT", 2021): 13.70,
}


@pytest.mark.parametrize(("symbol", "year"), sorted(PUBLISHED))
def test_ytd_return_on_the_last_session_matches_the_published_calendar_year_return(home, symbol, year):
    got = marts(home).execute(
        "SELECT ytd_return FROM marts.index_daily WHERE symbol = ? AND year(session_date) = ? "
        "ORDER BY session_date DESC LIMIT 1",
        [symbol, year],
    ).fetchone()[0]
    assert round(got * 100, 2) == pytest.approx(PUBLISHED[(symbol, year)], abs=0.011)


def test_only_what_the_folder_holds(home):
    con = marts(home)
    assert [r[0] for r in con.execute("SELECT DISTINCT symbol FROM marts.index_daily ORDER BY 1").fetchall()] == [
        "^GSPC", "^RUT", "^VIX",
    ]
    # Pairs need both symbols: ^RUT/^GSPC is there, pairs with ^SP600 or ^IXIC are not.
    pairs = con.execute("SELECT DISTINCT lead_symbol || '/' || lag_symbol FROM marts.relative_performance").fetchall()
    assert pairs == [("^RUT/^GSPC",)]
    # No holdings in the folder: no universe, no cohorts.
    assert con.execute("SELECT count(*) FROM marts.cohort_composition").fetchone()[0] == 0


def test_a_malformed_file_names_file_and_line_and_keeps_nothing(home, tmp_path):
    folder = Path(home.joinpath("folder").read_text())
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    lines = (bad / "^VIX.csv").read_text().splitlines()
    lines[1200] = lines[1200].replace(",", ",abc,", 1)  # a 8th field and a word where a number belongs
    (bad / "^VIX.csv").write_text("\n".join(lines) + "\n")
    wh = home / "warehouse.duckdb"
    con = duckdb.connect(str(wh), read_only=True)
    tables = table_names(con, ("raw", "core", "marts"))
    before = checksums(con, tables)
    con.close()
    with pytest.raises(ValueError) as exc:
        backfill(source="csv", csv_path=str(bad), home=str(home))
    message = str(exc.value)
    assert "^VIX.csv" in message and "line 1201" in message
    con = duckdb.connect(str(wh), read_only=True)
    assert checksums(con, tables) == before
