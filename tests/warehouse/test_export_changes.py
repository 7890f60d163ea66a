"""A night's Parquet export writes what the night changed and links the rest of the previous
export (warehouse.export.export with `previous` and `changed`): the same files a whole export
writes, at the cost of the changed years.

The warehouse is built without a flow, as tests/cli/test_status_views.py builds it: the registry's
tables, ^RUT's real 2021-2022 closes in marts.index_daily, the other marts empty."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from ground.registry import DATASETS
from pipeline.loading import export_changes
from tests.cli.test_status_views import CHECK, build_home
from warehouse.db import connect
from warehouse.export import export
from warehouse.publish import Patch

PARTITIONS = {d.name: d.date_column for d in DATASETS if d.export}


def inodes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_ino for p in sorted(folder.rglob("*.parquet"))}


def viewed(home: Path) -> list:
    views = duckdb.connect(str(home / "exports" / "smallcaps_views.duckdb"), read_only=True)
    try:
        return list(views.execute(f"{CHECK} FROM marts.index_daily").fetchone())
    finally:
        views.close()


@pytest.fixture()
def home(tmp_path) -> Path:
    build_home(tmp_path)  # exports load L1 whole
    return tmp_path


def test_only_the_changed_year_is_written_and_the_rest_links_the_previous_export(home):
    con = connect(home / "warehouse.duckdb")
    try:
        con.execute("UPDATE marts.index_daily SET close = close + 1 WHERE session_date = DATE '2022-12-30'")
        changed = {"marts.index_daily": {2022}}
        export(con, home / "exports", load_id="L2", partitions=PARTITIONS, previous="L1", changed=changed)
        want = list(con.execute(f"{CHECK} FROM marts.index_daily").fetchone())
    finally:
        con.close()
    one, two = inodes(home / "exports" / "v-L1"), inodes(home / "exports" / "v-L2")
    assert one.keys() == two.keys()  # the same files
    same = {f for f in one if one[f] == two[f]}
    assert same == {f for f in one if not f.startswith("index_daily/year=2022/")}  # all but the changed year are links
    assert any(f.startswith("index_daily/year=2021/") for f in same)
    assert viewed(home) == want  # and the views read tonight's rows


def test_a_whole_export_when_current_is_not_the_previous_loads_or_its_columns_differ(home):
    con = connect(home / "warehouse.duckdb")
    try:
        # `current` is L1's export, not L0's: nothing is kept.
        export(con, home / "exports", load_id="L2", partitions=PARTITIONS, previous="L0", changed={})
        assert not set(inodes(home / "exports" / "v-L1").values()) & set(inodes(home / "exports" / "v-L2").values())
        # A previous file with other columns (written before a migration) is not kept either.
        (old,) = (home / "exports" / "v-L2" / "index_daily" / "year=2021").glob("*.parquet")
        con.execute(f"COPY (SELECT * EXCLUDE (records_ytd) FROM marts.index_daily WHERE year(session_date) = 2021) TO '{old}' (FORMAT parquet)")
        export(con, home / "exports", load_id="L3", partitions=PARTITIONS, previous="L2", changed={})
        want = list(con.execute(f"{CHECK} FROM marts.index_daily").fetchone())
    finally:
        con.close()
    two, three = inodes(home / "exports" / "v-L2"), inodes(home / "exports" / "v-L3")
    assert {f for f in two if two[f] == three[f]} == {f for f in two if not f.startswith("index_daily/")}
    assert viewed(home) == want
    # Nor one whose column has another type. (One file of a mart is checked: every export writes
    # all of a mart's files with its columns of the time, or keeps files that match them.)
    con = connect(home / "warehouse.duckdb")
    try:
        (old,) = (home / "exports" / "v-L3" / "index_daily" / "year=2021").glob("*.parquet")
        con.execute(
            f"COPY (SELECT * REPLACE (records_ytd::DOUBLE AS records_ytd) FROM marts.index_daily WHERE year(session_date) = 2021) "
            f"TO '{old}' (FORMAT parquet)"
        )
        export(con, home / "exports", load_id="L4", partitions=PARTITIONS, previous="L3", changed={})
    finally:
        con.close()
    three, four = inodes(home / "exports" / "v-L3"), inodes(home / "exports" / "v-L4")
    assert not any(three[f] == four[f] for f in three if f.startswith("index_daily/"))
    assert viewed(home) == want


def test_the_changed_years_come_from_the_patches_keys_and_rows():
    keys = ("symbol", "session_date")
    patch = Patch(
        keys,
        pl.DataFrame({"symbol": ["^RUT"], "session_date": [date(2019, 5, 1)]}),
        pl.DataFrame({"symbol": ["^RUT", "^RUT"], "session_date": [date(2026, 11, 30), date(2026, 11, 27)]}),
    )
    empty = Patch(keys, patch.remove.clear(), patch.write.clear())
    got = export_changes({"marts.index_daily": patch, "marts.index_records": empty}, PARTITIONS)
    assert got == {"marts.index_daily": {2019, 2026}}
    assert export_changes(None, PARTITIONS) is None  # a snapshot written whole: so is the export
    # A mart whose key has no date (the year of a removed row is unknown) is written whole.
    headless = Patch(("symbol",), pl.DataFrame({"symbol": ["^RUT"]}), patch.write)
    assert export_changes({"marts.index_daily": headless}, PARTITIONS) == {"marts.index_daily": None}
