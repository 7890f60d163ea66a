"""The nightly report: one static, self-contained HTML page per night, and each chart as a PNG.

It reads the published snapshot only, read-only, never the private warehouse (a load may hold that
file). The marts carry their whole history, so an earlier night is drawn from the same snapshot by
filtering on its date.

Layout under the data home:
    report/YYYY-MM-DD/index.html         the page: headlines, charts (the PNGs, embedded), data quality
    report/YYYY-MM-DD/charts/NAME.png    each chart, the same bytes as embedded in the page
    report/latest -> YYYY-MM-DD          relative symlink to the newest night reported; a report of an
                                         earlier night (--as-of) does not move it back

The page loads nothing: no script, no font, no stylesheet from anywhere; images are `data:` URIs.
Every chart carries its title, axis units, the night it describes and the tables it comes from;
when the data came from the `sample` source it says, on the page and on every image, that it is
synthetic data and not market prices.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import matplotlib.dates as mdates
import polars as pl

# Figures are drawn on matplotlib's Agg canvas directly: no pyplot, no display, no GUI toolkit, and
# no change to the importing process's global backend (the nightly flow runs headless).
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, PercentFormatter
from PIL import Image, PngImagePlugin  # Pillow: matplotlib's own image dependency

from smallcaps.settings import Settings
from transforms.headlines import INDEX_NAMES, UNIVERSE_NAMES, rounded

# Volatility indexes get their own chart: a "record" VIX or its RSI means nothing (docs/marts.md).
VOLATILITY_SYMBOLS = ("^VIX",)

# Charts of history show the 12 months up to the night (cohort returns start at their anchor).
WINDOW_DAYS = 365
# Relative-strength charts shade outperformance streaks that reached at least this many sessions;
# shading every single winning day would cover about half of the chart and say nothing.
MIN_SHADED_STREAK = 5

SYNTHETIC_NOTE = "synthetic sample data, not market prices"
COHORTS = ("profitable", "unprofitable", "no_data", "all")
COHORT_LABELS = {"profitable": "profitable", "unprofitable": "unprofitable", "no_data": "no earnings data", "all": "all members"}
COHORT_COLORS = {"profitable": "#1b7837", "unprofitable": "#c2410c", "no_data": "#8c8c8c", "all": "#1f3b73"}
DPI = 100
FOOTER_IN = 0.42  # height of the two footer lines, inches
LEGEND_IN = 0.3  # height of a one-row figure legend, inches


# The marts whose latest session the data-quality section lists, with their date column.
FRESHNESS = (
    ("marts.index_daily", "session_date"),
    ("marts.index_performance", "session_date"),
    ("marts.relative_performance", "session_date"),
    ("marts.cohort_composition", "session_date"),
    ("marts.cohort_performance", "session_date"),
    ("marts.sector_daily", "session_date"),
    ("marts.headlines", "as_of_date"),
)


class ReportError(RuntimeError):
    """The report cannot be written: nothing published, or no data for the night asked for."""


@dataclass(frozen=True)
class Chart:
    chart_id: str
    section: str
    title: str
    alt: str
    caption: str
    tables: tuple[str, ...]
    png: bytes
    width_px: int
    height_px: int


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote. `markdown` is ready for `prefect.artifacts.create_markdown_artifact`."""

    as_of: date
    html_path: Path
    png_paths: tuple[Path, ...]
    latest_path: Path
    source: str
    is_synthetic: bool
    dq_status: str
    seconds: float
    markdown: str
    # What the page says is absent (a chart not drawn for lack of rows), "section: why", page order.
    absent: tuple[str, ...] = ()


@dataclass
class _Night:
    """Everything the page needs, read from the snapshot in one go."""

    as_of: date
    snapshot_path: Path
    snapshot_as_of: date
    snapshot_load_id: str
    published_at: datetime | None
    first_session: date
    source: str
    is_synthetic: bool
    window_start: date
    headlines: pl.DataFrame
    index_daily: pl.DataFrame
    history_start: dict[str, date]
    relative: pl.DataFrame
    cohort_perf: pl.DataFrame
    composition: pl.DataFrame
    sectors: pl.DataFrame
    loads: pl.DataFrame
    night_load: dict | None
    dq_results: pl.DataFrame
    publishes: pl.DataFrame
    freshness: list[tuple[str, date | None]]
    symbols: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    universes: list[str] = field(default_factory=list)
    anchors: list[str] = field(default_factory=list)

    @property
    def source_label(self) -> str:
        if self.is_synthetic:
            return f"data source: {self.source} ({SYNTHETIC_NOTE})"
        return f"data source: {self.source}"


# Reading the snapshot ---------------------------------------------------------------------------


def _open_snapshot(settings: Settings) -> duckdb.DuckDBPyConnection:
    path = settings.published_path
    if not path.exists():
        raise ReportError(
            f"no published snapshot at {path}: nothing to report on; run `smallcaps run` or `make demo` first"
        )
    # Read-only and without file access: the report only reads the snapshot's own tables.
    return duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})


def _frame(con: duckdb.DuckDBPyConnection, query: str, **params) -> pl.DataFrame:
    return con.sql(query, params=params or None).pl()


def _ordered(found: list, configured: list) -> list:
    """`found` in configured order; values not configured keep their own order, last."""
    pos = {v: i for i, v in enumerate(configured)}
    return sorted(found, key=lambda v: (pos.get(v, len(pos)), str(v)))


def _read_night(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date | None) -> _Night:
    snap = _frame(con, "SELECT as_of_date, load_id, source, published_at FROM meta.snapshot")
    if snap.is_empty():
        raise ReportError(f"the published snapshot {settings.published_path} has no meta.snapshot row; publish again")
    snapshot_as_of, snapshot_load_id, snapshot_source, published_at = snap.row(0)
    span = _frame(con, "SELECT min(session_date) AS first, max(session_date) AS last FROM marts.index_daily")
    first_session, last_session = span.row(0)
    if first_session is None:
        raise ReportError(
            f"the published snapshot {settings.published_path} holds no index data; run `smallcaps run` or `make demo` first"
        )
    as_of = as_of or snapshot_as_of
    present = _frame(con, "SELECT count(*) AS n FROM marts.index_daily WHERE session_date = $d", d=as_of).item()
    if not present:
        hint = "it is not a session" if first_session <= as_of <= last_session else "it is outside that range"
        raise ReportError(
            f"no data for {as_of.isoformat()} in the published snapshot {settings.published_path}: it holds "
            f"sessions {first_session.isoformat()} to {last_session.isoformat()} and {hint}; "
            "pass --as-of with a session in that range"
        )
    window_start = max(first_session, as_of - timedelta(days=WINDOW_DAYS))

    # The data's origin: every load that brought rows up to this night. A single `sample` load marks
    # the whole page synthetic.
    loads = _frame(
        con,
        "SELECT load_id, flow_name, source, start_date, end_date, sessions, rows_loaded, rows_quarantined, "
        "status, message, started_at, finished_at FROM meta.loads ORDER BY started_at DESC",
    )
    contributing = loads.filter(
        pl.col("status").is_in(["succeeded", "merged"]) & (pl.col("start_date").is_null() | (pl.col("start_date") <= as_of))
    )
    sources = sorted(set(contributing["source"].to_list())) or [snapshot_source]
    source = ", ".join(sources)
    night_load = _night_load(loads, as_of, snapshot_as_of, snapshot_load_id)
    dq_results = _frame(
        con,
        "SELECT table_name, expectation, severity, success, element_count, unexpected_count, details "
        "FROM dq.results WHERE load_id = $id ORDER BY success, severity, table_name, expectation",
        id=night_load["load_id"] if night_load else "",
    )
    publishes = _frame(
        con, "SELECT load_id, as_of_date, bytes, published_at FROM meta.publishes ORDER BY published_at DESC LIMIT 5"
    )
    # A snapshot published before a migration added a mart lacks it until the next load publishes.
    present_tables = set(
        _frame(con, "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables")["t"].to_list()
    )
    freshness = [
        (t, _frame(con, f"SELECT max({col}) AS d FROM {t}").item() if t in present_tables else None)
        for t, col in FRESHNESS
    ]

    # Columns added by migration 0005 read as null from a snapshot published before it.
    daily_columns = set(
        _frame(con, "SELECT column_name AS c FROM information_schema.columns "
               "WHERE table_schema = 'marts' AND table_name = 'index_daily'")["c"].to_list()
    )  # fmt: skip
    later = ", ".join(
        c if c in daily_columns else f"CAST(NULL AS {t}) AS {c}"
        for c, t in (("change_5d", "DOUBLE"), ("ret_5d", "DOUBLE"), ("support_level", "DOUBLE"),
                     ("support_date", "DATE"), ("resistance_level", "DOUBLE"), ("resistance_date", "DATE"))
    )  # fmt: skip
    index_daily = _frame(
        con,
        "SELECT symbol, session_date, close, ret_1d, is_record_close, records_ytd, rsi_14, sma_50, sma_200, "
        f"{later} FROM marts.index_daily WHERE session_date BETWEEN $s AND $d ORDER BY symbol, session_date",
        s=window_start,
        d=as_of,
    )
    history_start = dict(
        _frame(con, "SELECT symbol, min(session_date) AS d FROM marts.index_daily GROUP BY symbol").iter_rows()
    )
    relative = _frame(
        con,
        "SELECT lead_symbol, lag_symbol, session_date, lead_ret, lag_ret, outperformed, streak, longest_since "
        "FROM marts.relative_performance WHERE session_date BETWEEN $s AND $d "
        "ORDER BY lead_symbol, lag_symbol, session_date",
        s=window_start,
        d=as_of,
    )
    # A cohort's path since its anchor: the rows that share the anchor session the night resolves to
    # (`ytd` moves once a year, a dated anchor never). `1y` resolves to a different session every
    # night, so its path does not exist in the mart: its rows over the window are the rolling
    # one-year return, and the chart says so.
    cohort_perf = _frame(
        con,
        """
        WITH night AS (
            SELECT DISTINCT universe, anchor, anchor_date FROM marts.cohort_performance WHERE session_date = $d
        )
        SELECT p.universe, p.anchor, p.cohort, p.session_date, p.anchor_date, p.members, p.priced,
               p.return_equal_weight, p.return_cap_weight
        FROM marts.cohort_performance p JOIN night n USING (universe, anchor)
        WHERE p.session_date <= $d
          AND ((p.anchor = '1y' AND p.session_date >= $s) OR (p.anchor <> '1y' AND p.anchor_date = n.anchor_date))
        ORDER BY p.universe, p.anchor, p.cohort, p.session_date
        """,
        d=as_of,
        s=window_start,
    )
    composition = _frame(
        con,
        "SELECT universe, session_date, cohort, members, share_of_members, share_of_weight "
        "FROM marts.cohort_composition WHERE session_date BETWEEN $s AND $d ORDER BY universe, session_date, cohort",
        s=window_start,
        d=as_of,
    )
    sectors = _frame(
        con,
        "SELECT universe, sector, session_date, members, return_equal_weight, return_cap_weight "
        "FROM marts.sector_daily WHERE session_date <= $d ORDER BY universe, sector, session_date",
        d=as_of,
    )
    headlines = _frame(
        con,
        "SELECT rank, fact_key, sentence, value, unit, definition FROM marts.headlines "
        "WHERE as_of_date = $d ORDER BY rank",
        d=as_of,
    )

    configured_symbols = list(settings.index_symbols)
    symbols = _ordered(sorted(set(index_daily["symbol"].to_list()) | set(configured_symbols)), configured_symbols)
    configured_pairs = [(p.lead, p.lag) for p in settings.pairs]
    found_pairs = set(relative.select("lead_symbol", "lag_symbol").unique().iter_rows())
    pairs = _ordered(sorted(found_pairs | set(configured_pairs)), configured_pairs)
    configured_universes = [u.name for u in settings.universes]
    found_universes = set(composition["universe"].to_list()) | set(cohort_perf["universe"].to_list())
    universes = _ordered(sorted(found_universes | set(configured_universes)), configured_universes)
    anchors = _ordered(sorted(set(cohort_perf["anchor"].to_list()) | set(settings.anchors)), list(settings.anchors))

    return _Night(
        as_of=as_of,
        snapshot_path=settings.published_path,
        snapshot_as_of=snapshot_as_of,
        snapshot_load_id=snapshot_load_id,
        published_at=published_at,
        first_session=first_session,
        source=source,
        is_synthetic="sample" in sources,
        window_start=window_start,
        headlines=headlines,
        index_daily=index_daily,
        history_start=history_start,
        relative=relative,
        cohort_perf=cohort_perf,
        composition=composition,
        sectors=sectors,
        loads=loads,
        night_load=night_load,
        dq_results=dq_results,
        publishes=publishes,
        freshness=freshness,
        symbols=symbols,
        pairs=pairs,
        universes=universes,
        anchors=anchors,
    )


def _night_load(loads: pl.DataFrame, as_of: date, snapshot_as_of: date, snapshot_load_id: str) -> dict | None:
    """The load behind the night: the published one for the snapshot's night; for an earlier night,
    the latest successful load whose range covers it."""
    if as_of == snapshot_as_of:
        hit = loads.filter(pl.col("load_id") == snapshot_load_id)
    else:
        hit = loads.filter(
            # A window of a long backfill ('merged') loaded the nights of its range too.
            pl.col("status").is_in(["succeeded", "merged"]) & (pl.col("start_date") <= as_of) & (pl.col("end_date") >= as_of)
        )
    return hit.row(0, named=True) if hit.height else None


# Charts -----------------------------------------------------------------------------------------


def _name(symbol: str) -> str:
    return INDEX_NAMES.get(symbol, symbol)


def _universe_name(universe: str) -> str:
    return UNIVERSE_NAMES.get(universe, universe)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _pct(value: float | None, digits: int = 1) -> str:
    """A signed percentage, rounded like the headlines (half away from zero)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{rounded(value, digits, scale=100):+.{digits}f}%"


def _anchor_title(anchor: str, anchor_date: date | None) -> str:
    if anchor == "ytd":
        return f"year to date (since {anchor_date})" if anchor_date else "year to date"
    if anchor == "1y":
        return "rolling one-year return (each session vs a year earlier)"
    if anchor_date and anchor != anchor_date.isoformat():
        return f"since {anchor} (session {anchor_date})"
    return f"since {anchor}"


class _ChartMaker:
    """Draws each chart with the same frame: title with the night, footer with tables and source."""

    def __init__(self, night: _Night):
        self.night = night

    def footer(self, tables: tuple[str, ...], note: str = "") -> str:
        """Two lines: what and from where; then the definition note and the data's origin."""
        n = self.night
        first = f"As of {n.as_of.isoformat()} | source: {', '.join(tables)} (published snapshot of {n.snapshot_as_of})"
        second = " | ".join(p for p in (note, n.source_label) if p)
        return f"{first}\n{second}"

    def figure(
        self,
        width_in: float,
        height_in: float,
        rows: int = 1,
        cols: int = 1,
        *,
        legend: bool = False,
        left_in: float = 0.9,
        right_in: float = 0.35,
        top_in: float = 0.7,
        hspace_in: float = 0.95,
        wspace_in: float = 1.0,
        **subplots,
    ) -> tuple[Figure, object]:
        """A figure and its grid of axes, laid out in inches.

        Margins are fixed rather than computed by matplotlib's constrained layout, which costs
        about half of the drawing time; the charts are few and known, so fixed margins fit them.
        Below the axes: the x tick labels and label, an optional one-row legend, the footer."""
        fig = Figure(figsize=(width_in, height_in), dpi=DPI)
        FigureCanvasAgg(fig)
        bottom_in = FOOTER_IN + (LEGEND_IN if legend else 0) + 0.62
        axes_h = (height_in - top_in - bottom_in - hspace_in * (rows - 1)) / rows
        axes_w = (width_in - left_in - right_in - wspace_in * (cols - 1)) / cols
        axes = fig.subplots(
            rows, cols, squeeze=False,
            gridspec_kw={
                "left": left_in / width_in, "right": 1 - right_in / width_in,
                "top": 1 - top_in / height_in, "bottom": bottom_in / height_in,
                "hspace": hspace_in / axes_h, "wspace": wspace_in / axes_w,
                **subplots.pop("gridspec_kw", {}),
            },
            **subplots,
        )
        return fig, axes

    @staticmethod
    def legend(fig: Figure, handles: list, ncols: int) -> None:
        fig.legend(
            handles=handles, loc="lower center", bbox_to_anchor=(0.5, FOOTER_IN / fig.get_figheight()),
            bbox_transform=fig.transFigure, ncols=ncols, fontsize=8, frameon=False,
        )

    def finish(
        self,
        fig: Figure,
        *,
        chart_id: str,
        section: str,
        title: str,
        alt: str,
        tables: tuple[str, ...],
        note: str = "",
    ) -> Chart:
        n = self.night
        full_title = f"{title}, as of {n.as_of.isoformat()}"
        fig.suptitle(full_title, fontsize=13, fontweight="bold", y=1 - 0.1 / fig.get_figheight(), va="top")
        footer = self.footer(tables, note)
        color = "#b91c1c" if n.is_synthetic else "#444444"
        fig.text(0.005, 0.06 / fig.get_figheight(), footer, fontsize=8, color=color, ha="left", va="bottom", linespacing=1.4)
        if n.is_synthetic:
            # The image travels without the page: it must not pass for market data on its own.
            fig.text(
                0.5, 0.5, "SYNTHETIC SAMPLE DATA", fontsize=40, color="#b91c1c", alpha=0.08,
                ha="center", va="center", rotation=20, fontweight="bold",
            )
        w, h = fig.canvas.get_width_height()
        png = _png(fig, {
            "Title": full_title,
            "Description": footer,
            "Source": f"{', '.join(tables)}; {n.source_label}",
            "Software": "smallcaps report (matplotlib)",
        })
        return Chart(chart_id, section, full_title, alt, footer, tables, png, w, h)

    # -- one method per chart --------------------------------------------------------------------

    def relative_strength(self, pairs: list[tuple[str, str]], not_drawn: list[tuple[str, str]]) -> Chart:
        """One panel per pair in `pairs` (those with rows); `not_drawn` are named on the chart."""
        n = self.night
        cols = 2 if len(pairs) > 1 else 1
        rows = math.ceil(len(pairs) / cols)
        fig, grid = self.figure(12, 3.0 * rows + 1.7, rows, cols, legend=True, hspace_in=0.45, sharex=True)
        axes = grid.ravel()
        for ax in axes[len(pairs):]:
            ax.set_visible(False)
        for ax, (lead, lag) in zip(axes, pairs):
            d = n.relative.filter((pl.col("lead_symbol") == lead) & (pl.col("lag_symbol") == lag))
            ax.set_title(f"{_name(lead)} vs {_name(lag)}", fontsize=10)
            ax.set_ylabel(f"{lead} / {lag} ratio, 100 = {n.window_start}", fontsize=9)
            if ax in grid[-1]:
                ax.set_xlabel("session date")
            if d.is_empty():
                _no_data(ax, f"no rows for {lead}/{lag} in marts.relative_performance")
                continue
            d = d.with_columns(
                rs=((1 + pl.col("lead_ret").fill_null(0)).cum_prod() / (1 + pl.col("lag_ret").fill_null(0)).cum_prod()) * 100
            )
            days = d["session_date"].to_list()
            ax.plot(days, d["rs"].to_list(), color="#1f3b73", lw=1.4)
            ax.axhline(100, color="#999999", lw=0.8, ls=":")
            streaks = d["streak"].to_list()
            shaded = 0
            for end, length in _streak_runs(streaks):
                if length < MIN_SHADED_STREAK:
                    continue
                start = max(0, end - length + 1)
                current = end == len(days) - 1
                ax.axvspan(
                    days[start] - timedelta(hours=12), days[end] + timedelta(hours=12),
                    color="#c2410c" if current else "#f59e0b", alpha=0.35 if current else 0.2, lw=0,
                )
                shaded += 1
            last = d.row(-1, named=True)
            since = f", longest since {last['longest_since']}" if last["streak"] and last["longest_since"] else ""
            if last["streak"] and last["longest_since"] is None:
                start = max(n.history_start.get(lead, n.first_session), n.history_start.get(lag, n.first_session))
                since = f", longest in the loaded history (from {start})"
            ax.text(
                0.01, 0.97,
                f"streak tonight: {last['streak']} session(s){since}\n"
                f"longest in window: {max(streaks)}; shaded: {shaded} streak(s) of {MIN_SHADED_STREAK}+",
                transform=ax.transAxes, fontsize=8, va="top",
                bbox=dict(boxstyle="round", fc="white", ec="#cccccc", alpha=0.9),
            )
            _date_axis(ax)
        self.legend(
            fig,
            [
                Line2D([], [], color="#1f3b73", lw=1.4, label="relative strength (lead / lag, rebased)"),
                Patch(color="#f59e0b", alpha=0.3, label=f"outperformance streak of {MIN_SHADED_STREAK}+ sessions"),
                Patch(color="#c2410c", alpha=0.45, label="streak still running tonight"),
            ],
            ncols=3,
        )
        return self.finish(
            fig,
            chart_id="relative-strength",
            section="relative-strength",
            title="Relative strength of each pair (lead / lag, 100 at window start)",
            alt="Relative strength line of each index pair with outperformance streaks shaded",
            tables=("marts.relative_performance",),
            note="streak: consecutive sessions with lead return > lag return (strictly)"
            + (f"; no rows, not drawn: {', '.join(f'{a}/{b}' for a, b in not_drawn)}" if not_drawn else ""),
        )

    def index(self, symbol: str) -> Chart:
        n = self.night
        d = n.index_daily.filter(pl.col("symbol") == symbol)
        fig, grid = self.figure(12, 5.8, 2, 1, hspace_in=0.15, sharex=True, gridspec_kw={"height_ratios": (3, 1.2)})
        ax, rsi_ax = grid[:, 0]
        name = _name(symbol)
        ax.set_ylabel("close (index points)")
        rsi_ax.set_ylabel("RSI-14 (0-100)")
        rsi_ax.set_xlabel("session date")
        if d.is_empty():
            _no_data(ax, f"no rows for {symbol} in marts.index_daily")
            _no_data(rsi_ax, "")
        else:
            days = d["session_date"].to_list()
            ax.plot(days, d["close"].to_list(), color="#1f3b73", lw=1.4, label="close")
            for col, color, label in (("sma_50", "#6b7280", "50-session average"), ("sma_200", "#a855f7", "200-session average")):
                if d[col].drop_nulls().len():
                    ax.plot(days, d[col].to_list(), color=color, lw=0.9, ls="--", label=label)
            rec = d.filter(pl.col("is_record_close"))
            ax.scatter(
                rec["session_date"].to_list(), rec["close"].to_list(), marker="^", s=28, color="#d97706",
                edgecolor="#7c2d12", lw=0.5, zorder=3, label=f"record close ({rec.height} in window)",
            )
            last = d.row(-1, named=True)
            ax.annotate(
                f"{last['close']:,.2f}" + (" (record)" if last["is_record_close"] else ""),
                (last["session_date"], last["close"]), xytext=(-8, 12), textcoords="offset points",
                ha="right", fontsize=9, fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85),
            )
            ax.text(
                0.01, 0.97,
                f"{last['records_ytd']} record close(s) in {n.as_of.year} so far\n"
                f"records relative to history from {n.history_start.get(symbol)}",
                transform=ax.transAxes, fontsize=8, va="top",
                bbox=dict(boxstyle="round", fc="white", ec="#cccccc", alpha=0.9),
            )
            for col, color, label in (("support", "#15803d", "support"), ("resistance", "#b91c1c", "resistance")):
                if last[f"{col}_level"] is not None:
                    ax.axhline(
                        last[f"{col}_level"], color=color, lw=0.9, ls=":",
                        label=f"{label} tonight {last[f'{col}_level']:,.2f} (swing close of {last[f'{col}_date']})",
                    )
            # The support and resistance lines make the legend tall: let matplotlib find the emptiest corner.
            ax.legend(loc="best", fontsize=8, ncols=2, framealpha=0.9)
            rsi = d["rsi_14"].to_list()
            rsi_ax.plot(days, rsi, color="#111827", lw=1)
            for level, color in ((70, "#b91c1c"), (30, "#15803d")):
                rsi_ax.axhline(level, color=color, lw=0.8, ls="--")
            r = d["rsi_14"].fill_null(50).to_list()
            rsi_ax.fill_between(days, 70, r, where=[v > 70 for v in r], color="#b91c1c", alpha=0.25, lw=0)
            rsi_ax.fill_between(days, 30, r, where=[v < 30 for v in r], color="#15803d", alpha=0.25, lw=0)
            rsi_ax.set_ylim(0, 100)
            rsi_ax.set_yticks([0, 30, 70, 100])
            if last["rsi_14"] is not None:
                rsi_ax.text(0.01, 0.9, f"RSI-14 tonight: {last['rsi_14']:.1f}", transform=rsi_ax.transAxes, fontsize=8, va="top")
            _date_axis(rsi_ax)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        return self.finish(
            fig,
            chart_id=f"index-{_slug(symbol)}",
            section="indexes",
            title=f"{name} ({symbol}): close with record closes marked, RSI-14 below",
            alt=f"{name} closes over 12 months with record closes marked, and RSI-14",
            tables=("marts.index_daily",),
            note="record: close strictly above every earlier loaded close; RSI-14 with Wilder's smoothing; "
            "support / resistance: nearest confirmed swing close below / above tonight's close, last 126 sessions",
        )

    def vix(self, symbol: str) -> Chart:
        n = self.night
        d = n.index_daily.filter(pl.col("symbol") == symbol)
        fig, grid = self.figure(12, 3.9)
        ax = grid[0, 0]
        ax.set_ylabel("VIX level (implied volatility, % a year)")
        ax.set_xlabel("session date")
        if d.is_empty():
            _no_data(ax, f"no rows for {symbol} in marts.index_daily")
        else:
            days = d["session_date"].to_list()
            ax.plot(days, d["close"].to_list(), color="#7c3aed", lw=1.3)
            last = d.row(-1, named=True)
            ax.annotate(
                f"{last['close']:.2f}", (last["session_date"], last["close"]), xytext=(-6, 8),
                textcoords="offset points", ha="right", fontsize=9, fontweight="bold",
            )
            hi = d.sort("close").row(-1, named=True)
            ax.annotate(f"high {hi['close']:.2f} ({hi['session_date']})", (hi["session_date"], hi["close"]),
                        xytext=(8, -4), textcoords="offset points", fontsize=8, va="top")
            if last["change_5d"] is not None:
                ax.text(
                    0.01, 0.97, f"over 5 sessions: {rounded(last['change_5d'], 2):+,.2f} points ({_pct(last['ret_5d'])})",
                    transform=ax.transAxes, fontsize=8, va="top",
                    bbox=dict(boxstyle="round", fc="white", ec="#cccccc", alpha=0.9),
                )
            _date_axis(ax)
        return self.finish(
            fig,
            chart_id=f"vix-{_slug(symbol)}" if symbol != "^VIX" else "vix",
            section="vix",
            title=f"{_name(symbol)} ({symbol}) close",
            alt=f"{_name(symbol)} closes over 12 months",
            tables=("marts.index_daily",),
        )

    def cohort_performance(self, universe: str) -> Chart:
        n = self.night
        u = n.cohort_perf.filter(pl.col("universe") == universe)
        anchors = n.anchors or ["?"]
        cols = 2 if len(anchors) > 1 else 1
        rows = math.ceil(len(anchors) / cols)
        fig, grid = self.figure(12, 3.2 * rows + 1.7, rows, cols, legend=True, right_in=0.6)
        axes = grid.ravel()
        for ax in axes[len(anchors):]:
            ax.set_visible(False)
        for ax, anchor in zip(axes, anchors):
            d = u.filter(pl.col("anchor") == anchor)
            tonight = d.filter(pl.col("session_date") == n.as_of)
            anchor_date = tonight["anchor_date"][0] if tonight.height else None
            ax.set_title(_anchor_title(anchor, anchor_date), fontsize=10)
            ax.set_ylabel("return (%)" if anchor == "1y" else "return since anchor (%)")
            ax.set_xlabel("session date")
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            if d.is_empty():
                _no_data(ax, f"no rows for anchor {anchor} on {n.as_of} in marts.cohort_performance")
                continue
            ax.axhline(0, color="#999999", lw=0.8, ls=":")
            for cohort in _ordered(sorted(set(d["cohort"].to_list())), list(COHORTS)):
                c = d.filter(pl.col("cohort") == cohort)
                days = c["session_date"].to_list()
                ew, cw = c["return_equal_weight"].to_list(), c["return_cap_weight"].to_list()
                if anchor != "1y" and anchor_date is not None and days[0] > anchor_date:
                    # `ytd` rows start on the year's first session; the path starts at 0 on the anchor.
                    days, ew, cw = [anchor_date, *days], [0.0, *ew], [0.0, *cw]
                color = COHORT_COLORS.get(cohort, "#333333")
                lw = 1.8 if cohort in ("profitable", "unprofitable") else 1.1
                ax.plot(days, ew, color=color, lw=lw)
                ax.plot(days, cw, color=color, lw=lw * 0.7, ls="--")
                last = c.row(-1, named=True)
                if last["return_equal_weight"] is not None:
                    ax.annotate(_pct(last["return_equal_weight"]), (last["session_date"], last["return_equal_weight"]),
                                xytext=(3, 0), textcoords="offset points", fontsize=7, color=color, va="center")
            members = tonight.filter(pl.col("cohort") == "all")
            if members.height:
                m = members.row(0, named=True)
                ax.text(0.01, 0.97, f"{m['members']:,} members at the anchor, {m['priced']:,} priced",
                        transform=ax.transAxes, fontsize=8, va="top")
            ax.margins(x=0.08)
            _date_axis(ax)
        handles = [Line2D([], [], color=COHORT_COLORS[c], lw=1.8, label=COHORT_LABELS[c]) for c in COHORTS]
        handles += [
            Line2D([], [], color="#333333", lw=1.4, label="equal weight"),
            Line2D([], [], color="#333333", lw=1.0, ls="--", label="cap weight (weights at anchor)"),
        ]
        self.legend(fig, handles, ncols=6)
        name = _universe_name(universe)
        return self.finish(
            fig,
            chart_id=f"cohort-performance-{_slug(universe)}",
            section="cohort-performance",
            title=f"{name}: return of each profitability cohort since each anchor, equal and cap weight",
            alt=f"{name} cohort returns since each anchor, equal-weight and cap-weight lines per cohort",
            tables=("marts.cohort_performance",),
            note="cohorts fixed at the anchor session (rule v1), buy and hold",
        )

    def cohort_composition(self, universes: list[str]) -> Chart:
        """One row of panels per universe in `universes` (those with rows)."""
        n = self.night
        fig, axes = self.figure(12, 3.0 * len(universes) + 1.9, len(universes), 2, legend=True,
                                top_in=0.9, hspace_in=0.75, sharex=True)
        for (ax_m, ax_w), universe in zip(axes, universes):
            d = n.composition.filter(pl.col("universe") == universe)
            name = _universe_name(universe)
            for ax, col, what in ((ax_m, "share_of_members", "members"), (ax_w, "share_of_weight", "weight")):
                ax.set_title(f"{name}: share of {what}", fontsize=10)
                ax.set_ylabel(f"share of {what} (%)")
                if ax in axes[-1]:
                    ax.set_xlabel("session date")
                ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
                if d.is_empty():
                    _no_data(ax, f"no rows for {universe} in marts.cohort_composition")
                    continue
                wide = (
                    d.pivot(on="cohort", index="session_date", values=col, aggregate_function="first")
                    .sort("session_date")
                    .fill_null(0)
                )
                cohorts = [c for c in COHORTS if c in wide.columns and c != "all"]
                ax.stackplot(
                    wide["session_date"].to_list(), *[wide[c].to_list() for c in cohorts],
                    colors=[COHORT_COLORS[c] for c in cohorts], alpha=0.85,
                    labels=[COHORT_LABELS[c] for c in cohorts],
                )
                ax.set_ylim(0, 1)
                last = wide.row(-1, named=True)
                tonight = ", ".join(f"{COHORT_LABELS[c]} {last[c] * 100:.0f}%" for c in cohorts)
                ax.set_title(f"{name}: share of {what}\ntonight: {tonight}", fontsize=9)
                _date_axis(ax)
        self.legend(fig, [Patch(color=COHORT_COLORS[c], label=COHORT_LABELS[c]) for c in COHORTS if c != "all"], ncols=3)
        return self.finish(
            fig,
            chart_id="cohort-composition",
            section="cohort-composition",
            title="Cohort composition over time: profitable, unprofitable, no earnings data",
            alt="Stacked shares of members and of weight per profitability cohort, for each universe",
            tables=("marts.cohort_composition",),
            note="cohort rule v1: TTM net income known on the session, no look-ahead",
        )

    def sectors(self, universe: str) -> Chart:
        n = self.night
        s = n.sectors.filter(pl.col("universe") == universe)
        today = s.filter(pl.col("session_date") == n.as_of).sort("return_equal_weight", nulls_last=True)
        order = today["sector"].to_list() or sorted(set(s["sector"].to_list()))
        anchor_dates = {
            a: d for a, d in n.cohort_perf.filter(
                (pl.col("universe") == universe) & (pl.col("session_date") == n.as_of)
            ).select("anchor", "anchor_date").unique().iter_rows()
        }
        panels: list[tuple[str, pl.DataFrame | None, str]] = [(f"session {n.as_of}", today, "")]
        first = s["session_date"].min()
        for anchor in n.anchors:
            anchor_date = anchor_dates.get(anchor)
            if anchor == "1y":
                title = f"one year (since {anchor_date})" if anchor_date else "one year"
            else:
                title = _anchor_title(anchor, anchor_date)
            if anchor_date is None:
                panels.append((title, None, f"anchor {anchor} does not resolve\nin the loaded history"))
            elif first is None or first > anchor_date:
                panels.append((title, None, f"sector history starts {first},\nafter the anchor {anchor_date}"))
            else:
                panels.append((title, _compound(s, anchor_date, n.as_of), ""))
        fig, grid = self.figure(13, 0.28 * max(len(order), 4) + 2.2, 1, len(panels), legend=True,
                                left_in=2.0, wspace_in=0.3, sharey=True)
        axes = grid[0]
        y = list(range(len(order)))
        for i, (ax, (title, d, missing)) in enumerate(zip(axes, panels)):
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("return (%)")
            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0 if i else 1))
            ax.set_yticks(y, order, fontsize=8)
            if d is None or d.is_empty():
                _no_data(ax, missing or f"no rows for {universe}", fontsize=8)
                continue
            by = {r["sector"]: r for r in d.iter_rows(named=True)}
            ew = [by.get(sec, {}).get("return_equal_weight") for sec in order]
            cw = [by.get(sec, {}).get("return_cap_weight") for sec in order]
            ax.barh(y, [v or 0 for v in ew], color=["#15803d" if (v or 0) >= 0 else "#b91c1c" for v in ew], alpha=0.8, height=0.7)
            ax.scatter([v if v is not None else float("nan") for v in cw], y, marker="D", s=14, color="#111827", zorder=3)
            ax.axvline(0, color="#555555", lw=0.8)
            ax.margins(x=0.15)
        axes[0].set_ylabel("sector")
        self.legend(
            fig,
            [
                Patch(color="#15803d", alpha=0.8, label="equal weight (bar)"),
                Line2D([], [], marker="D", ls="", color="#111827", markersize=4, label="cap weight (diamond)"),
            ],
            ncols=2,
        )
        name = _universe_name(universe)
        return self.finish(
            fig,
            chart_id=f"sector-returns-{_slug(universe)}",
            section="sectors",
            title=f"{name}: sector returns on the day and since each anchor",
            alt=f"{name} sector returns for the session and since each anchor, equal and cap weight",
            tables=("marts.sector_daily", "marts.cohort_performance (anchor sessions)"),
            note="since an anchor: daily sector returns compounded (members as of each session)",
        )


def _png(fig: Figure, text: dict[str, str]) -> bytes:
    """The figure as a 256-colour PNG with `text` as tEXt chunks.

    Charts are flat colours and antialiased lines: a palette keeps them visually the same at about a
    third of the bytes, and the page embeds every one of them."""
    fig.canvas.draw()
    rgba = Image.frombuffer("RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    image = rgba.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        if value.isascii():
            info.add_text(key, value)
        else:
            info.add_itxt(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info, dpi=(DPI, DPI))
    return buf.getvalue()


def _compound(sectors: pl.DataFrame, anchor_date: date, as_of: date) -> pl.DataFrame:
    """Sector return since an anchor: the daily returns after the anchor session compounded.

    Unlike the cohort marts this is not buy and hold: each day's return is over that day's members.
    A session without a return (no member priced) counts as 0."""
    return (
        sectors.filter((pl.col("session_date") > anchor_date) & (pl.col("session_date") <= as_of))
        .group_by("sector")
        .agg(
            ((1 + pl.col("return_equal_weight").fill_null(0)).product() - 1).alias("return_equal_weight"),
            ((1 + pl.col("return_cap_weight").fill_null(0)).product() - 1).alias("return_cap_weight"),
        )
    )


def _streak_runs(streaks: list[int]) -> list[tuple[int, int]]:
    """(index of the last session, length) of every outperformance run; the length is the mart's
    streak there, so a run that began before the window keeps its full length."""
    runs = []
    for i, s in enumerate(streaks):
        if s and (i == len(streaks) - 1 or not streaks[i + 1]):
            runs.append((i, s))
    return runs


def _no_data(ax, message: str, fontsize: int = 10) -> None:
    ax.text(0.5, 0.5, message or "no data", transform=ax.transAxes, ha="center", va="center", fontsize=fontsize, color="#6b7280")
    # Hide this panel's x ticks without touching its locator: panels that share an x axis share
    # the locator, and an empty tick list there left the date formatter of the drawn panels with
    # nothing to format (matplotlib's ConciseDateFormatter then fails with an IndexError).
    ax.tick_params(axis="x", which="both", bottom=False, labelbottom=False)


def _date_axis(ax) -> None:
    locator = mdates.AutoDateLocator(minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(True, color="#e5e7eb", lw=0.6)


def _charts(night: _Night) -> tuple[list[Chart], dict[str, list[str]]]:
    """The charts that have something to draw, and per section what is absent and why.

    A chart whose every panel would be empty is not drawn: its section says what is missing
    instead. Within a chart that has data, an empty panel stays and says why (an anchor that does
    not resolve yet, a pair without rows is named on the chart)."""
    n = night
    make = _ChartMaker(n)
    charts: list[Chart] = []
    absent: dict[str, list[str]] = {}
    upto = f"between {n.window_start} and {n.as_of}"
    loaded = sorted(set(n.index_daily["symbol"].to_list()))

    def missing(section: str, text: str) -> None:
        absent.setdefault(section, []).append(text)

    found_pairs = set(n.relative.select("lead_symbol", "lag_symbol").unique().iter_rows())
    drawn = [p for p in n.pairs if p in found_pairs]
    for lead, lag in n.pairs:
        if (lead, lag) not in found_pairs:
            why = [s for s in (lead, lag) if s not in loaded]
            cause = f"no {' or '.join(why)} rows in marts.index_daily" if why else "no session with both daily returns"
            missing("relative-strength", f"{_name(lead)} vs {_name(lag)} ({lead}/{lag}): no rows in "
                    f"marts.relative_performance {upto} ({cause})")
    if drawn:
        charts.append(make.relative_strength(drawn, [p for p in n.pairs if p not in found_pairs]))
    elif not n.pairs:
        missing("relative-strength", "no pairs are configured (SMALLCAPS_PAIRS)")

    for symbol in n.symbols:
        section = "vix" if symbol in VOLATILITY_SYMBOLS else "indexes"
        if symbol not in loaded:
            missing(section, f"{_name(symbol)} ({symbol}): no rows in marts.index_daily {upto}")
        elif symbol not in VOLATILITY_SYMBOLS:
            charts.append(make.index(symbol))

    with_members = set(n.composition["universe"].to_list())
    with_performance = set(n.cohort_perf["universe"].to_list())
    for universe in n.universes:
        name = f"{_universe_name(universe)} ({universe})"
        if universe in with_performance:
            charts.append(make.cohort_performance(universe))
        elif universe in with_members:
            missing("cohort-performance", f"{name}: no rows in marts.cohort_performance on {n.as_of}: none of "
                    f"the anchors ({', '.join(n.anchors)}) resolves to a session with members yet")
        else:
            missing("cohort-performance", f"{name}: no members, so no cohorts: marts.cohort_composition and "
                    f"marts.cohort_performance have no rows for it {upto} (no holdings of it are loaded for these sessions)")
    if with_members:
        charts.append(make.cohort_composition([u for u in n.universes if u in with_members]))
    for universe in n.universes:
        if universe not in with_members:
            missing("cohort-composition", f"{_universe_name(universe)} ({universe}): no rows in "
                    f"marts.cohort_composition {upto}")

    with_sectors = set(n.sectors["universe"].to_list())
    for universe in n.universes:
        if universe in with_sectors:
            charts.append(make.sectors(universe))
        else:
            missing("sectors", f"{_universe_name(universe)} ({universe}): no rows in marts.sector_daily up to {n.as_of}")

    for symbol in n.symbols:
        if symbol in VOLATILITY_SYMBOLS and symbol in loaded:
            charts.append(make.vix(symbol))
    return charts, absent


# Data quality -----------------------------------------------------------------------------------


def _dq_status(night: _Night) -> tuple[str, str]:
    """(ok | warning | failed, one line saying why)."""
    load = night.night_load
    if load is None:
        return "warning", f"no successful load in meta.loads covers {night.as_of}"
    r = night.dq_results
    failed_errors = r.filter(~pl.col("success") & (pl.col("severity") == "error")).height
    failed_warnings = r.filter(~pl.col("success") & (pl.col("severity") == "warning")).height
    passed = r.filter(pl.col("success")).height
    checks = f"{passed:,} of {r.height:,} expectations passed"
    if load["status"] != "succeeded" or failed_errors:
        return "failed", f"load {load['load_id']} {load['status']}; {checks}, {failed_errors:,} error-level failure(s)"
    behind = [t for t, d in night.freshness if d is not None and d < night.snapshot_as_of]
    empty = [t for t, d in night.freshness if d is None]
    if failed_warnings or behind or empty:
        why = [checks, f"{failed_warnings:,} warning(s)"] + ([f"stale: {', '.join(behind)}"] if behind else [])
        why += [f"no rows: {', '.join(empty)}"] if empty else []
        return "warning", f"load {load['load_id']} {load['status']}; " + "; ".join(why)
    if r.is_empty():
        return "warning", f"load {load['load_id']} {load['status']}; no expectation results recorded"
    return "ok", f"load {load['load_id']} {load['status']}; {checks}"


# HTML -------------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0 auto; max-width: 1320px; padding: 0 24px 48px; color: #111827; background: #ffffff; line-height: 1.45; }
header { border-bottom: 2px solid #1f3b73; margin-bottom: 12px; }
h1 { font-size: 1.6rem; margin: 18px 0 4px; } h2 { font-size: 1.25rem; margin-top: 32px; border-bottom: 1px solid #e5e7eb; }
.sub { color: #4b5563; margin: 0 0 10px; font-size: 0.92rem; }
nav a { margin-right: 14px; font-size: 0.9rem; color: #1f3b73; }
.banner { background: #fef2f2; border: 2px solid #b91c1c; color: #7f1d1d; padding: 10px 14px; margin: 12px 0;
          font-weight: 600; border-radius: 6px; }
.status { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 700; color: #fff; }
.status.ok { background: #15803d; } .status.warning { background: #b45309; } .status.failed { background: #b91c1c; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 8px 0 16px; }
th, td { border: 1px solid #e5e7eb; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
ol.headlines li { margin: 3px 0; }
figure.chart { margin: 18px 0 28px; }
figure.chart img { max-width: 100%; height: auto; border: 1px solid #e5e7eb; }
figcaption { font-size: 0.85rem; color: #374151; margin-top: 4px; }
figcaption .meta { display: block; color: #6b7280; }
figcaption .meta.flag { color: #b91c1c; font-weight: 600; }
.absent { border-left: 3px solid #9ca3af; padding: 2px 12px; margin: 12px 0; color: #374151; font-size: 0.9rem; }
.absent p { margin: 4px 0; font-weight: 600; } .absent ul { margin: 4px 0 6px; }
footer { margin-top: 40px; font-size: 0.8rem; color: #6b7280; }
"""

_SECTIONS = (
    ("relative-strength", "Relative strength and outperformance streaks",
     "Each pair's relative strength (the lead's compounded daily returns over the lag's, 100 at the start of "
     "the window). Shaded: outperformance streaks of {min_streak}+ sessions; darker: a streak still running tonight."),
    ("indexes", "Index closes, record closes and RSI-14",
     "Closes with record closes marked (a close above every earlier loaded close) and RSI-14 below "
     "(above 70 overbought, below 30 oversold)."),
    ("cohort-performance", "Cohort performance since each anchor",
     "Members fixed in their profitability cohort at the anchor session, bought and held: equal weight "
     "(solid) and cap weight with weights at the anchor (dashed). The one-year anchor moves every night, "
     "so its panel shows the rolling one-year return."),
    ("cohort-composition", "Cohort composition over time",
     "Share of each universe's members and of its weight in each cohort, cohort rule v1 (TTM net income "
     "as known on the session)."),
    ("sectors", "Sector returns",
     "The session's sector returns and returns since each anchor (daily returns compounded), equal weight "
     "(bars) and cap weight (diamonds), sorted by the session's equal-weight return."),
    ("vix", "Volatility", "The CBOE Volatility Index: the market's implied volatility of the S&P 500, in % a year."),
)


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _fmt_ts(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") + " UTC" if isinstance(value, datetime) else _e(value)


def _table(headers: list[str], rows: list[list], numeric: set[int] = frozenset(), table_id: str = "") -> str:
    out = [f'<table id="{table_id}">' if table_id else "<table>", "<thead><tr>"]
    out += [f"<th>{_e(h)}</th>" for h in headers]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(
            f'<td class="num">{_e(v)}</td>' if i in numeric else f"<td>{_e(v)}</td>" for i, v in enumerate(row)
        ) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _figure_html(chart: Chart, night: _Night) -> str:
    b64 = base64.b64encode(chart.png).decode("ascii")
    meta_class = "meta flag" if night.is_synthetic else "meta"
    return (
        f'<figure class="chart" id="fig-{chart.chart_id}" data-chart="{chart.chart_id}" '
        f'data-as-of="{night.as_of.isoformat()}" data-source="{_e(night.source)}">'
        f'<img id="chart-{chart.chart_id}" alt="{_e(chart.alt)}" width="{chart.width_px}" height="{chart.height_px}" '
        f'src="data:image/png;base64,{b64}">'
        f"<figcaption>{_e(chart.title)}"
        f'<span class="{meta_class}">{_e(chart.caption.replace(chr(10), " | "))}</span>'
        f'<span class="meta">Image file: charts/{chart.chart_id}.png</span></figcaption></figure>'
    )


def _dq_html(night: _Night, status: str, why: str) -> str:
    parts = [f'<p>Status of the night: <span class="status {status}" id="dq-status">{status}</span> {_e(why)}</p>']
    parts.append(_table(
        ["published snapshot", "night", "load", "published at", "data source"],
        [[str(night.snapshot_path), night.snapshot_as_of, night.snapshot_load_id, _fmt_ts(night.published_at), night.source]],
        table_id="dq-snapshot",
    ))
    if night.as_of != night.snapshot_as_of:
        parts.append(
            f"<p>This report is for an earlier night ({night.as_of}); the snapshot holds data up to "
            f"{night.snapshot_as_of}. Marts are rebuilt on every load, so a revised history shows here revised.</p>"
        )
    parts.append("<h3>Freshness</h3>")
    parts.append(_table(
        ["table", "latest session", "status"],
        [[t, d, "up to date" if d == night.snapshot_as_of else ("no rows" if d is None else f"behind the snapshot's night {night.snapshot_as_of}")]
         for t, d in night.freshness],
        table_id="dq-freshness",
    ))
    r = night.dq_results
    load = night.night_load
    parts.append("<h3>Expectations of the night's load</h3>")
    if load is None:
        parts.append("<p>No load in meta.loads covers this night.</p>")
    else:
        parts.append(f"<p>Load {_e(load['load_id'])} ({_e(load['flow_name'])}, source {_e(load['source'])}, "
                     f"{_e(load['status'])}): {r.height:,} expectation results in dq.results.</p>")
        summary = (
            r.group_by("table_name").agg(
                pl.len().alias("n"),
                pl.col("success").sum().alias("passed"),
                (~pl.col("success") & (pl.col("severity") == "warning")).sum().alias("warnings"),
                (~pl.col("success") & (pl.col("severity") == "error")).sum().alias("errors"),
            ).sort("table_name")
        )
        parts.append(_table(["table", "expectations", "passed", "warnings", "errors"],
                            [list(row) for row in summary.iter_rows()], numeric={1, 2, 3, 4}, table_id="dq-results"))
        failed = r.filter(~pl.col("success"))
        if failed.height:
            parts.append(_table(
                ["table", "expectation", "severity", "unexpected", "rows", "details"],
                [[f["table_name"], f["expectation"], f["severity"], f["unexpected_count"], f["element_count"], (f["details"] or "")[:200]]
                 for f in failed.iter_rows(named=True)],
                numeric={3, 4}, table_id="dq-failures",
            ))
    parts.append("<h3>Recent publishes</h3>")
    parts.append(
        _table(
            ["night", "load", "bytes", "published at"],
            [[p["as_of_date"], p["load_id"], f"{p['bytes']:,}", _fmt_ts(p["published_at"])]
             for p in night.publishes.iter_rows(named=True)],
            numeric={2}, table_id="dq-publishes",
        )
        + "<p class=\"sub\">meta.publishes as copied into this snapshot: the publish of the snapshot itself is "
        "recorded after the copy, so it shows in meta.snapshot above and in the next night's list.</p>"
    )
    parts.append("<h3>Recent loads</h3>")
    parts.append(_table(
        ["load", "flow", "source", "sessions", "status", "rows loaded", "quarantined", "finished", "message"],
        [[l["load_id"], l["flow_name"], l["source"], f"{l['start_date']} to {l['end_date']}", l["status"],
          f"{l['rows_loaded']:,}" if l["rows_loaded"] is not None else "", l["rows_quarantined"],
          _fmt_ts(l["finished_at"]), (l["message"] or "")[:160]]
         for l in night.loads.head(8).iter_rows(named=True)],
        numeric={5, 6}, table_id="dq-loads",
    ))
    return "".join(parts)


def _section_heading(section_id: str) -> str:
    return next(heading for sid, heading, _ in _SECTIONS if sid == section_id)


def _absent_html(section_id: str, texts: list[str]) -> str:
    if not texts:
        return ""
    items = "".join(f"<li>{_e(t)}</li>" for t in texts)
    return f'<div class="absent" id="absent-{section_id}"><p>Not drawn, no data:</p><ul>{items}</ul></div>'


def _html(night: _Night, charts: list[Chart], absent: dict[str, list[str]], status: str, why: str, seconds: float) -> str:
    n = night
    title = f"Small caps, the night of {n.as_of.isoformat()}"
    banner = (
        f'<div class="banner" id="synthetic-banner">Synthetic sample data, not market prices. Every figure '
        f"below comes from the embedded sample market (source <code>{_e(n.source)}</code>): fictional "
        "symbols and simulated prices, for trying the pipeline out.</div>"
        if n.is_synthetic else ""
    )
    sections = []
    sentences = n.headlines["sentence"].to_list()
    definitions = n.headlines["definition"].to_list()
    items = "".join(f'<li title="{_e(d)}">{_e(s)}</li>' for s, d in zip(sentences, definitions))
    sections.append(
        '<section id="headlines"><h2>Headlines</h2>'
        + (f'<ol class="headlines">{items}</ol>' if items else f"<p>No headlines in marts.headlines for {n.as_of}.</p>")
        + f'<p class="sub">From marts.headlines, as of {n.as_of}; hover a sentence for its definition. '
        f"{_e(n.source_label)}.</p></section>"
    )
    for section_id, heading, text in _SECTIONS:
        figs = [c for c in charts if c.section == section_id]
        gone = absent.get(section_id, [])
        if not figs and not gone:
            continue
        sections.append(
            f'<section id="{section_id}"><h2>{_e(heading)}</h2><p class="sub">{_e(text.format(min_streak=MIN_SHADED_STREAK))}</p>'
            + "".join(_figure_html(c, n) for c in figs) + _absent_html(section_id, gone) + "</section>"
        )
    sections.append(f'<section id="data-quality"><h2>Data quality and freshness</h2>{_dq_html(n, status, why)}</section>')
    nav = "".join(
        f'<a href="#{sid}">{_e(label)}</a>'
        for sid, label in [("headlines", "Headlines")] + [(s[0], s[1].split(",")[0]) for s in _SECTIONS] + [("data-quality", "Data quality")]
    )
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="smallcaps-as-of" content="{n.as_of.isoformat()}">'
        f'<meta name="smallcaps-source" content="{_e(n.source)}">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="sub">As of {n.as_of.isoformat()} (NYSE session) | read from the published snapshot '
        f"{_e(n.snapshot_path)} (night {n.snapshot_as_of}, load {_e(n.snapshot_load_id)}) | {_e(n.source_label)} | "
        f'data quality: <span class="status {status}">{status}</span></p>'
        f"<nav>{nav}</nav></header>{banner}"
        + "".join(sections)
        + f"<footer>Generated {generated} in {seconds:.1f} s by <code>smallcaps report</code>. "
        "Definitions: docs/definitions.md; columns: docs/marts.md. This page loads nothing from the network.</footer>"
        "</body></html>\n"
    )


def _markdown(
    night: _Night, html_path: Path, charts: list[Chart], absent: dict[str, list[str]], status: str, why: str, seconds: float
) -> str:
    n = night
    lines = [f"# Small caps, the night of {n.as_of.isoformat()}", ""]
    if n.is_synthetic:
        lines += [f"**Synthetic sample data, not market prices** (source `{n.source}`).", ""]
    lines += [
        f"[Open the full report]({html_path.resolve().as_uri()}) ({len(charts)} charts, written in {seconds:.1f} s)",
        "",
        f"Data quality: **{status}** ({why}). Snapshot of {n.snapshot_as_of}, published {_fmt_ts(n.published_at)}.",
        "",
        "| # | headline |",
        "| ---: | --- |",
    ]
    for rank, sentence in n.headlines.select("rank", "sentence").iter_rows():
        lines.append(f"| {rank} | {sentence.replace('|', chr(92) + '|')} |")
    if n.headlines.is_empty():
        lines.append(f"| | no headlines for {n.as_of} |")
    gone = [f"- {_section_heading(sid)}: {text}" for sid, *_ in _SECTIONS for text in absent.get(sid, [])]
    if gone:
        lines += ["", "Not drawn, no data:", "", *gone]
    return "\n".join(lines) + "\n"


# Files ------------------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _point_latest(report_dir: Path, night_dir: Path) -> Path:
    """Swap `latest` to the night's folder in one rename, unless it already shows a later night."""
    latest = report_dir / "latest"
    if latest.exists() and not latest.is_symlink():
        raise ReportError(f"{latest} exists and is not a symlink; remove it so the report can point it at {night_dir.name}")
    if latest.is_symlink():
        try:
            current = date.fromisoformat(os.readlink(latest))
        except ValueError:
            current = None
        if current is not None and current > date.fromisoformat(night_dir.name) and (report_dir / current.isoformat()).is_dir():
            return latest
    tmp = report_dir / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(night_dir.name, tmp)
    os.replace(tmp, latest)
    return latest


def write_report(settings: Settings, as_of: date | None = None) -> Report:
    """Write the report of the night `as_of` (default: the published snapshot's night).

    Raises ReportError when nothing is published or the snapshot has no data for `as_of`.
    """
    started = time.perf_counter()
    con = _open_snapshot(settings)
    try:
        night = _read_night(con, settings, as_of)
    finally:
        con.close()
    charts, absent = _charts(night)
    status, why = _dq_status(night)

    night_dir = settings.report_dir / night.as_of.isoformat()
    chart_dir = night_dir / "charts"
    chart_dir.mkdir(parents=True, exist_ok=True)
    png_paths = []
    for chart in charts:
        path = chart_dir / f"{chart.chart_id}.png"
        _write_atomic(path, chart.png)
        png_paths.append(path)
    for stale in chart_dir.glob("*.png"):
        if stale not in png_paths:
            stale.unlink()
    html_path = night_dir / "index.html"
    seconds = time.perf_counter() - started
    _write_atomic(html_path, _html(night, charts, absent, status, why, seconds).encode("utf-8"))
    latest = _point_latest(settings.report_dir, night_dir)
    seconds = time.perf_counter() - started
    return Report(
        as_of=night.as_of,
        html_path=html_path,
        png_paths=tuple(png_paths),
        latest_path=latest,
        source=night.source,
        is_synthetic=night.is_synthetic,
        dq_status=status,
        seconds=round(seconds, 2),
        markdown=_markdown(night, html_path, charts, absent, status, why, seconds),
        absent=tuple(f"{_section_heading(sid)}: {text}" for sid, *_ in _SECTIONS for text in absent.get(sid, [])),
    )
