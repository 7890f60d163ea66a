"""The terminal headlines a load prints say when the night comes from the synthetic sample market."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from smallcaps import cli
from ground.settings import Settings

NIGHT = date(2026, 1, 22)


def published_home(tmp_path: Path, source: str) -> Settings:
    (tmp_path / "published").mkdir()
    con = duckdb.connect(str(tmp_path / "published" / "smallcaps.duckdb"))
    con.execute("CREATE SCHEMA marts; CREATE SCHEMA meta")
    con.execute("CREATE TABLE marts.headlines (as_of_date DATE, rank INTEGER, sentence VARCHAR)")
    con.execute("INSERT INTO marts.headlines VALUES (?, 1, 'ZZRA closed at a record [1,234.5]')", [NIGHT])
    con.execute("CREATE TABLE meta.loads (load_id VARCHAR, source VARCHAR, status VARCHAR, start_date DATE)")
    con.execute("INSERT INTO meta.loads VALUES ('L1', ?, 'succeeded', DATE '2024-01-02')", [source])
    con.close()
    return Settings(home=tmp_path)


@pytest.mark.parametrize("source, is_synthetic", [("sample", True), ("csv", False)])
def test_headlines_say_when_they_are_synthetic(tmp_path, capsys, source, is_synthetic):
    cli._print_headlines(published_home(tmp_path, source), NIGHT)
    out = capsys.readouterr().out
    assert "ZZRA closed at a record [1,234.5]" in out  # printed literally
    assert ("synthetic sample data, not market prices" in out) is is_synthetic
