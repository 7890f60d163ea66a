"""Settings: environment first, typos refused by name, lists parsed from plain text."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ground.settings import Settings


def test_defaults(monkeypatch):
    s = Settings()
    assert str(s.home) == "data" and s.source == "sample"
    assert [str(p) for p in s.pairs] == ["^RUT/^GSPC", "^RUT/^SP600", "^SP600/^GSPC", "^RUT/^IXIC"]
    assert s.published_path.as_posix() == "data/published/smallcaps.duckdb"


def test_environment_lists_are_parsed(monkeypatch):
    monkeypatch.setenv("SMALLCAPS_PAIRS", "^RUT/^GSPC, ^SP600/^GSPC")
    monkeypatch.setenv("SMALLCAPS_ANCHORS", "ytd,2025-04-08")
    monkeypatch.setenv("SMALLCAPS_HOME", "/srv/smallcaps")
    s = Settings()
    assert [str(p) for p in s.pairs] == ["^RUT/^GSPC", "^SP600/^GSPC"]
    assert s.anchors == ["ytd", "2025-04-08"] and str(s.home) == "/srv/smallcaps"


def test_a_misspelt_variable_is_an_error_naming_it(monkeypatch):
    monkeypatch.setenv("SMALLCAPS_HOEM", "/tmp/x")
    with pytest.raises(ValidationError, match="SMALLCAPS_HOEM"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SMALLCAPS_PROJECT_DIR", "/src/smallcaps"),  # prefect.yaml's working directory
        ("SMALLCAPS_CRASHPOINT", "no.such.point"),  # the crash-safety tests' kill switch
    ],
)
def test_prefixed_variables_that_are_not_settings_are_allowed(monkeypatch, name, value):
    defaults = Settings().model_dump()
    monkeypatch.setenv(name, value)
    # Accepted and read as no setting: every value is still its default.
    assert Settings().model_dump() == defaults
    # The exemption is by exact name: a near miss is still an unknown setting.
    monkeypatch.setenv(name + "S", value)
    with pytest.raises(ValidationError, match=name + "S"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SMALLCAPS_PAIRS", "^RUT-^GSPC", "must look like LEAD/LAG"),
        ("SMALLCAPS_PAIRS", "^RUT/^DJI", "not among index_symbols"),
        ("SMALLCAPS_ANCHORS", "ytd,April", "must be 'ytd', '1y' or a date"),
        ("SMALLCAPS_SOURCE", "", "source"),
        ("SMALLCAPS_COMPLETENESS_MIN_SHARE", "1.5", "completeness_min_share"),
    ],
)
def test_bad_values_are_refused_with_a_reason(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_an_unknown_severity_override_fails_as_settings_load_not_at_the_gate(monkeypatch, tmp_path):
    """Settings check the severity; the expectation names belong to the suites, a layer above
    settings, so the CLI and the flows check them as they load settings, before any fetch."""
    from typer.testing import CliRunner

    from flows.nightly import settings_for
    from smallcaps.cli import app

    monkeypatch.setenv("SMALLCAPS_DQ_SEVERITY", '{"price_jump_100x": "fatal"}')
    with pytest.raises(ValidationError, match="dq_severity"):
        Settings()
    monkeypatch.setenv("SMALLCAPS_DQ_SEVERITY", '{"price_jmp_100x": "error"}')
    message = r"unknown expectation\(s\) in dq_severity: price_jmp_100x; valid names: .*price_jump_100x"
    with pytest.raises(ValueError, match=message):
        settings_for(None, None, str(tmp_path / "home"))
    refused = CliRunner().invoke(app, ["status", "--home", str(tmp_path / "home")])
    text = " ".join(refused.output.split())  # Rich wraps long lines
    assert refused.exit_code == 2, text
    assert "invalid settings: unknown expectation(s) in dq_severity: price_jmp_100x" in text
    assert not (tmp_path / "home").exists()  # refused before anything was opened
    monkeypatch.setenv("SMALLCAPS_DQ_SEVERITY", '{"price_jump_100x": "error"}')
    assert settings_for(None, None, str(tmp_path / "home")).dq_severity == {"price_jump_100x": "error"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("tcp://scheduler:8786", "tcp://scheduler:8786"), (" tls://10.0.0.5:8786 ", "tls://10.0.0.5:8786"),
     ("tcp://[::1]:8786", "tcp://[::1]:8786"), ("", None)],
)
def test_a_dask_address_is_kept_as_the_scheduler_prints_it(monkeypatch, value, expected):
    monkeypatch.setenv("SMALLCAPS_DASK_ADDRESS", value)
    assert Settings().dask_address == expected


@pytest.mark.parametrize(
    "value",
    ["scheduler:8786", "tcp://scheduler", "tcp://:8786", "http://scheduler:8786", "tcp://scheduler:87x6", "tcp://scheduler:0",
     "tcp://scheduler:70000"],
)
def test_a_malformed_dask_address_is_refused_with_the_expected_form(monkeypatch, value):
    monkeypatch.setenv("SMALLCAPS_DASK_ADDRESS", value)
    with pytest.raises(ValidationError, match=r"is not a Dask scheduler address: write tcp://HOST:PORT or tls://HOST:PORT"):
        Settings()
