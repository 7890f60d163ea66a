"""The report's page: the night's status, the self-contained HTML and the Prefect artifact's markdown.

The page loads nothing: no script, no font, no stylesheet from anywhere; images are `data:` URIs.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from report.charts import MIN_SHADED_STREAK, Chart
from report.read import _Night

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

