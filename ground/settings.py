"""One validated settings object for the whole project.

Values come from keyword arguments, then `SMALLCAPS_*` environment variables, then defaults.
An environment variable with the `SMALLCAPS_` prefix that names no setting is an error: a typo
must not silently do nothing.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing import Annotated

from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "SMALLCAPS_"

# Variables with the prefix that are not settings: the crash-test hook (ground.crashpoints) and
# the repository folder prefect.yaml's pull step changes into.
NOT_SETTINGS = {"SMALLCAPS_CRASHPOINT", "SMALLCAPS_PROJECT_DIR"}


class Universe(BaseModel):
    """A constituent universe: the index it mirrors and the ETF whose holdings define it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    index_symbol: str
    etf: str
    holdings_url: str
    min_members: int
    max_members: int


DEFAULT_UNIVERSES = (
    Universe(
        name="russell2000",
        index_symbol="^RUT",
        etf="IWM",
        holdings_url=(
            "https://www.ishares.com/us/products/239710/ishares-russell-2000-etf/"
            "1467271812596.ajax?fileType=csv&fileName=IWM_holdings&dataType=fund"
        ),
        min_members=1_800,
        max_members=2_100,
    ),
    Universe(
        name="sp600",
        index_symbol="^SP600",
        etf="IJR",
        holdings_url=(
            "https://www.ishares.com/us/products/239774/ishares-core-sp-smallcap-etf/"
            "1467271812596.ajax?fileType=csv&fileName=IJR_holdings&dataType=fund"
        ),
        min_members=580,
        max_members=620,
    ),
)


class Pair(BaseModel):
    """A relative-performance pair: does `lead` beat `lag`?"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lead: str
    lag: str

    @classmethod
    def parse(cls, text: str) -> "Pair":
        lead, sep, lag = text.partition("/")
        if not sep or not lead or not lag:
            raise ValueError(f"pair {text!r} must look like LEAD/LAG, e.g. ^RUT/^GSPC")
        return cls(lead=lead.strip(), lag=lag.strip())

    def __str__(self) -> str:
        return f"{self.lead}/{self.lag}"


def parse_anchor(text: str) -> str:
    """Anchors are `ytd`, `1y`, or an ISO date (the session on or before it is used)."""
    if text in ("ytd", "1y"):
        return text
    try:
        date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"anchor {text!r} must be 'ytd', '1y' or a date like 2025-04-08") from exc
    return text


DASK_SCHEMES = ("tcp", "tls")


def parse_dask_address(text: str) -> str | None:
    """A Dask scheduler address as `dask scheduler` prints it: tcp://HOST:PORT (or tls://). An empty
    value means none (an exported but blank variable)."""
    text = text.strip()
    if not text:
        return None
    scheme, sep, rest = text.partition("://")
    host, colon, port = rest.rpartition(":")
    if not sep or scheme not in DASK_SCHEMES or not colon or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"dask_address {text!r} is not a Dask scheduler address: write {' or '.join(s + '://HOST:PORT' for s in DASK_SCHEMES)}, "
            "e.g. tcp://scheduler:8786 (the address `dask scheduler` prints), or unset SMALLCAPS_DASK_ADDRESS "
            "to fetch on the local thread pool"
        )
    return text


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(Path("data"), description="data home: warehouse, snapshots, exports, report, caches")
    # Checked against the registry (sources.check_source_name) where settings are loaded for work:
    # the registry sits above the ground, and a new source is one line there, not here too.
    source: str = Field("sample", min_length=1, description="where market data comes from: a name in sources.SOURCES (sample, csv, yahoo)")
    csv_path: Path | None = Field(None, description="folder read by the csv source")
    universes: list[Universe] = Field(default_factory=lambda: list(DEFAULT_UNIVERSES))
    index_symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["^RUT", "^GSPC", "^SP600", "^IXIC", "^VIX"])
    pairs: Annotated[list[Pair], NoDecode] = Field(
        default_factory=lambda: [Pair.parse(p) for p in ("^RUT/^GSPC", "^RUT/^SP600", "^SP600/^GSPC", "^RUT/^IXIC")]
    )
    anchors: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["ytd", "1y", "2025-04-02", "2025-04-08"])
    sample_seed: int = Field(2025, description="seed of the embedded sample market")
    sample_start: date = Field(date(2024, 1, 2), description="first session of the sample market")
    # Bounds are sources.sample.MIN_COMPANIES and MAX_COMPANIES (not imported here: the CLI loads
    # settings before numpy); tests/sources/test_sample.py checks they agree.
    sample_companies: int = Field(
        2_750, ge=2_500, le=50_000,
        description="companies in the sample market: 2,000 founding russell2000 members, the rest non-members and later listings",
    )
    sample_memory_mb: int = Field(
        512, ge=0, description="MiB of the sample-market bars a run simulates that it also holds in memory; all of them are kept in home/cache/sample between runs"
    )
    chunk_size: int = Field(250, ge=1, description="symbols per fetch task")
    backfill_window_years: int = Field(
        3, ge=0, description="a longer backfill from a source whose requests cost nothing (sample, csv) is fetched, "
        "gated and merged this many years at a time, so its memory does not grow with its range; 0: in one go",
    )
    write_report: bool = Field(True, description="write the HTML report (home/report) after each published night")
    keep_snapshots: int = Field(30, ge=1, description="nightly published snapshots kept for --as-of")
    publish_storage_version: str = Field(
        "v1.4.0", pattern=r"^(v\d+\.\d+\.\d+|latest)$",
        description="DuckDB storage version of the published snapshot and the views file, e.g. `v1.4.0` "
        "(DuckDB 1.4 and later open it) or `latest` (only this DuckDB and later); see docs/bi.md",
    )
    completeness_min_share: float = Field(0.98, gt=0, le=1, description="share of members that must have a bar")
    # Only the severities are checked here. The names belong to the suites (expectations/, a layer
    # above settings): the CLI and the flows check them with expectations.suites.check_overrides
    # right after loading settings, before any fetch, and the gate checks them again.
    dq_severity: dict[str, Literal["error", "quarantine", "warning"]] = Field(
        default_factory=dict, description="expectation name -> severity override (error | quarantine | warning)"
    )
    # Live-source politeness and bounds.
    user_agent: str = "smallcaps/0.1 (+nightly small-cap pipeline)"
    http_timeout_s: float = Field(20.0, gt=0)
    chunk_timeout_s: float = Field(120.0, gt=0, description="a fetch chunk that takes longer is abandoned")
    max_requests_per_run: int = Field(20_000, ge=1)
    requests_per_second: float = Field(4.0, gt=0)
    fetch_concurrency: int = Field(2, ge=1)
    rate_limit_retries: int = Field(4, ge=0, description="retries of a symbol Yahoo answered with HTTP 429")
    rate_limit_backoff_s: float = Field(
        5.0, gt=0, description="first pause after HTTP 429; doubles with each retry, plus jitter"
    )
    overlap_sessions: int = Field(5, ge=0, description="stored sessions re-fetched to catch revisions")
    retire_after_failures: int = Field(
        3, ge=1, description="a former member whose bars failed this many loads in a row is no longer asked for"
    )
    fundamentals_max_age_days: int = Field(100, ge=1, description="re-fetch fundamentals older than this")
    dask_address: str | None = Field(
        None, description="address of a Dask scheduler (tcp://HOST:PORT): the fetch fan-out runs on its workers; "
        "unset, on a pool of 4 threads in the flow's process"
    )
    memory_limit_gb: float = Field(
        4.0, ge=0.5, description="memory a load may use: DuckDB gets half (it spills to home/tmp beyond), "
        "derivation of a large load is replayed in periods sized to the rest"
    )

    @field_validator("dask_address")
    @classmethod
    def _dask_address(cls, value: str | None) -> str | None:
        return parse_dask_address(value) if value is not None else None

    @field_validator("pairs", mode="before")
    @classmethod
    def _pairs(cls, value):
        if isinstance(value, str):
            value = [p for p in value.split(",") if p.strip()]
        return [Pair.parse(v) if isinstance(v, str) else v for v in value]

    @field_validator("anchors", "index_symbols", mode="before")
    @classmethod
    def _csv_list(cls, value):
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("anchors")
    @classmethod
    def _anchors(cls, value: list[str]) -> list[str]:
        return [parse_anchor(a) for a in value]

    @model_validator(mode="after")
    def _no_unknown_env(self) -> "Settings":
        known = {ENV_PREFIX + name.upper() for name in type(self).model_fields} | NOT_SETTINGS
        unknown = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        symbols = set(self.index_symbols)
        for pair in self.pairs:
            missing = {pair.lead, pair.lag} - symbols
            if missing:
                raise ValueError(f"pair {pair} uses {', '.join(sorted(missing))}, not among index_symbols")
        return self

    # Paths inside the data home.
    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def published_dir(self) -> Path:
        return self.home / "published"

    @property
    def published_path(self) -> Path:
        return self.published_dir / "smallcaps.duckdb"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"

    @property
    def report_dir(self) -> Path:
        return self.home / "report"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def universe(self, name: str) -> Universe:
        for u in self.universes:
            if u.name == name:
                return u
        raise KeyError(f"unknown universe {name!r}; configured: {', '.join(u.name for u in self.universes)}")
