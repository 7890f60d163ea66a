"""One registry of sources (sources.SOURCES), each declaring what it can do; outside sources/ nobody
compares a source's name."""

from __future__ import annotations

import inspect
import re
from datetime import date
from pathlib import Path
import pytest

from ground.settings import Settings
from sources import SOURCES, Registered, check_source_name, make_source
from sources.base import Capabilities, Source

ROOT = Path(__file__).resolve().parents[2]


def test_each_registered_source_is_built_with_what_it_declares(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    built = {
        "sample": make_source(Settings(home=tmp_path, sample_start=date(2025, 3, 3))),
        "csv": make_source(Settings(home=tmp_path, source="csv", csv_path=folder)),
        "yahoo": make_source(Settings(home=tmp_path, source="yahoo")),
    }
    assert set(built) == set(SOURCES)
    for name, source in built.items():
        assert isinstance(source, Source) and source.name == name
        assert isinstance(source.capabilities, Capabilities)
    # The sample market starts where the settings say; nothing else knows its first session. It
    # never restates a quarter, so a load asks it only for those reported lately.
    assert built["sample"].capabilities == Capabilities(first_date=date(2025, 3, 3), takes_since=True)
    # A folder says which sessions it holds and holds what its user brought.
    assert built["csv"].capabilities == Capabilities(has_date_range=True, is_complete=False)
    assert built["csv"].date_range() is None  # an empty folder: the backfill says so
    # Every Yahoo request counts against the rate limit and the run's budget.
    assert built["yahoo"].capabilities == Capabilities(is_metered=True)
    # A source that says it takes `since` takes it (the flow passes it by keyword).
    for name, source in built.items():
        if source.capabilities.takes_since:
            assert "since" in inspect.signature(source.fundamentals).parameters, name


def test_what_is_known_of_a_source_by_its_name_alone():
    # Before a source is built (the CLI's --path check) or where only a loads table names it (the
    # report's banner), the registry answers; the names live there only (settings hold a string).
    assert all(isinstance(r, Registered) for r in SOURCES.values())
    assert {n for n, r in SOURCES.items() if r.reads_path} == {"csv"}
    assert {n for n, r in SOURCES.items() if r.is_synthetic} == {"sample"}
    assert check_source_name("yahoo") is SOURCES["yahoo"]


def test_an_unknown_source_is_refused_naming_the_known_ones(tmp_path):
    settings = Settings(home=tmp_path, source="bloomberg")  # settings hold any name; the registry decides
    with pytest.raises(ValueError, match=r"unknown source 'bloomberg': known sources are csv, sample, yahoo"):
        make_source(settings)


def test_an_unknown_source_fails_as_settings_load_for_work_before_any_flow(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from flows.nightly import settings_for
    from smallcaps.cli import app

    monkeypatch.setenv("SMALLCAPS_SOURCE", "bloomberg")
    with pytest.raises(ValueError, match="unknown source 'bloomberg': known sources are csv, sample, yahoo"):
        settings_for(None, None, str(tmp_path))
    done = CliRunner().invoke(app, ["run", "--home", str(tmp_path / "home")])
    assert done.exit_code == 2
    assert "invalid settings: unknown source 'bloomberg'" in " ".join(done.output.split())
    assert not (tmp_path / "home").exists()


def test_the_yahoo_source_gets_only_the_settings_it_uses(tmp_path):
    from sources.yahoo import YahooConfig, YahooSource

    settings = Settings(home=tmp_path, source="yahoo", requests_per_second=2.5, fetch_concurrency=3, user_agent="ua/1")
    source = make_source(settings)
    assert isinstance(source, YahooSource)
    config = source.config
    assert config == YahooConfig.from_settings(settings)
    assert (config.client.requests_per_second, config.client.fetch_concurrency, config.client.user_agent) == (2.5, 3, "ua/1")
    assert config.cache_dir == tmp_path / "cache" and config.overrides_path == tmp_path / "symbol_overrides.csv"
    assert [u.name for u in config.universes] == [u.name for u in settings.universes]
    assert not hasattr(source, "settings")


# A comparison with a registered source's name, in either order: `source == "csv"`, `"yahoo" != x`.
_NAMES = "|".join(map(re.escape, SOURCES))
# Membership too: `"sample" in sources`.
NAME_BRANCH = re.compile(rf"""(==|!=)\s*["']({_NAMES})["']|["']({_NAMES})["']\s*(==|!=|(not\s+)?in\s)""")
ALLOWED: set[tuple[str, str]] = set()


def test_no_code_outside_sources_branches_on_a_source_name():
    found = []
    for folder in ("ground", "transforms", "expectations", "warehouse", "pipeline", "flows", "report", "smallcaps"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if NAME_BRANCH.search(line) and (rel, line.strip()) not in ALLOWED:
                    found.append(f"{rel}:{number}: {line.strip()}")
    assert found == [], "ask the source's capabilities (sources.base.Capabilities) instead:\n" + "\n".join(found)


def test_the_name_scan_finds_the_branches_it_is_for():
    # The scan above passes on today's code; here it is shown to catch what it looks for.
    for line in ('if settings.source == "sample"', "x if source != 'csv' else y", 'if "yahoo" == s.source:', 'synthetic = "sample" in sources'):
        assert NAME_BRANCH.search(line), line
    for line in ('help="sample | yahoo | csv"', 'overrides["source"] = source', "Fmt.csv"):
        assert not NAME_BRANCH.search(line), line
