"""The report's charts: one matplotlib figure per chart, drawn on the Agg canvas, stored as PNG.

`_charts` decides what is drawn and what is said to be absent; `_ChartMaker` draws each chart from
the night's mart rows with the same frame (title with the night, footer with tables and source, the
synthetic-data watermark). A chart whose inputs are the same as in an earlier report is not drawn
again: `ChartCache` hands back the earlier PNG (see `_ChartMaker.inputs`).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from datetime import date, timedelta

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

from report.read import _Night, _ordered
from transforms.headlines import INDEX_NAMES, UNIVERSE_NAMES, rounded

# Volatility indexes get their own chart: a "record" VIX or its RSI means nothing (docs/marts.md).
VOLATILITY_SYMBOLS = ("^VIX",)

# Relative-strength charts shade outperformance streaks that reached at least this many sessions;
# shading every single winning day would cover about half of the chart and say nothing.
MIN_SHADED_STREAK = 5

COHORTS = ("profitable", "unprofitable", "no_data", "all")
COHORT_LABELS = {"profitable": "profitable", "unprofitable": "unprofitable", "no_data": "no earnings data", "all": "all members"}
COHORT_COLORS = {"profitable": "#1b7837", "unprofitable": "#c2410c", "no_data": "#8c8c8c", "all": "#1f3b73"}
DPI = 100
FOOTER_IN = 0.42  # height of the two footer lines, inches
LEGEND_IN = 0.3  # height of a one-row figure legend, inches
# Panel titles sit just above their axes. Given explicitly, matplotlib skips searching every panel's
# tick labels for a place above them (nothing of ours is drawn above an axes), about a tenth of
# the drawing time; the image is the same.
TITLE_Y = 1.0


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
            ax.set_title(f"{_name(lead)} vs {_name(lag)}", fontsize=10, y=TITLE_Y)
            ax.set_ylabel(f"{lead} / {lag} ratio, 100 = {n.window_start}", fontsize=9)
            if ax in grid[-1]:
                ax.set_xlabel("session date")
            if d.is_empty():
                _no_data(ax, f"no rows for {lead}/{lag} in marts.relative_performance")
                continue
            d = d.with_columns(rs=_rebased(pl.col("relative_level"), pl.col("base_level")))
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
            tables=("marts.relative_performance", "marts.index_records"),
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
            tables=("marts.index_daily", "marts.index_records"),
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
            ax.set_title(_anchor_title(anchor, anchor_date), fontsize=10, y=TITLE_Y)
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
                ax.set_title(f"{name}: share of {what}", fontsize=10, y=TITLE_Y)
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
                ax.set_title(f"{name}: share of {what}\ntonight: {tonight}", fontsize=9, y=TITLE_Y)
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
        today = n.sectors.filter(pl.col("universe") == universe).sort("return_equal_weight", nulls_last=True)
        since = n.sector_perf.filter(pl.col("universe") == universe)
        order = today["sector"].to_list() or sorted(set(since["sector"].to_list()))
        anchor_dates = {
            a: d for a, d in n.cohort_perf.filter(
                (pl.col("universe") == universe) & (pl.col("session_date") == n.as_of)
            ).select("anchor", "anchor_date").unique().iter_rows()
        }
        panels: list[tuple[str, pl.DataFrame | None, str]] = [(f"session {n.as_of}", today, "")]
        first = n.sector_first.get(universe)
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
                panels.append((title, since.filter(pl.col("anchor") == anchor), ""))
        fig, grid = self.figure(13, 0.28 * max(len(order), 4) + 2.2, 1, len(panels), legend=True,
                                left_in=2.0, wspace_in=0.3, sharey=True)
        axes = grid[0]
        y = list(range(len(order)))
        for i, (ax, (title, d, missing)) in enumerate(zip(axes, panels)):
            ax.set_title(title, fontsize=9, y=TITLE_Y)
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
            tables=("marts.sector_daily", "marts.sector_performance", "marts.cohort_performance (anchor sessions)"),
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


def _rebased(level: pl.Expr, base: pl.Expr) -> pl.Expr:
    """The relative-strength line: marts.relative_performance.relative_level over its level on the
    pair's last session before the window (read.py's base_level), times 100."""
    return level / base * 100


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
