"""The nightly report: one static, self-contained HTML page per night, and each chart as a PNG.

It reads the published snapshot only, read-only, never the private warehouse (a load may hold that
file). The marts carry their whole history, so an earlier night is drawn from the same snapshot by
filtering on its date.

Layout under the data home:
    report/YYYY-MM-DD/index.html         the page: headlines, charts (the PNGs, embedded), data quality
    report/YYYY-MM-DD/charts/NAME.png    each chart, the same bytes as embedded in the page
    report/latest -> YYYY-MM-DD          relative symlink to the newest night reported; a report of an
                                         earlier night (--as-of) does not move it back
    report/.chart-cache/KEY.json         charts already drawn, by a hash of their inputs (cache.py)

The page loads nothing: no script, no font, no stylesheet from anywhere; images are `data:` URIs.
Every chart carries its title, axis units, the night it describes and the tables it comes from;
when the data came from the `sample` source it says, on the page and on every image, that it is
synthetic data and not market prices.

The package follows the report's seams: `read` (every query of the snapshot), `charts` (matplotlib),
`cache` (charts already drawn, by a hash of their inputs), `page` (HTML and markdown); this module
decides what is drawn and writes the files.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from report.cache import ChartCache, chart_key
from report.charts import VOLATILITY_SYMBOLS, Chart, _ChartMaker, _name, _universe_name
from report.page import _SECTIONS, _dq_status, _html, _markdown, _section_heading
from report.read import SYNTHETIC_NOTE, ReportError, _Night, _open_snapshot, _read_night
from ground.settings import Settings

__all__ = ["Chart", "Report", "ReportError", "SYNTHETIC_NOTE", "write_report"]


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
    # Charts handed back by the cache (inputs unchanged since an earlier report), of len(png_paths).
    charts_reused: int = 0


def _charts(night: _Night, cache: ChartCache, redraw: bool = False) -> tuple[list[Chart], dict[str, list[str]], int]:
    """The charts that have something to draw, and per section what is absent and why.

    A chart whose every panel would be empty is not drawn: its section says what is missing
    instead. Within a chart that has data, an empty panel stays and says why (an anchor that does
    not resolve yet, a pair without rows is named on the chart). With a cache, a chart whose
    inputs are unchanged is taken from it instead of drawn (unless `redraw`); the third value
    counts those."""
    n = night
    make = _ChartMaker(n)
    charts: list[Chart] = []
    reused = 0

    def draw(kind: str, *args) -> Chart:
        nonlocal reused
        key = chart_key(n, kind, *args)
        chart = None if redraw else cache.get(key)
        if chart is not None:
            reused += 1
            return chart
        chart = getattr(make, kind)(*args)
        cache.put(key, chart)
        return chart
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
        charts.append(draw("relative_strength", drawn, [p for p in n.pairs if p not in found_pairs]))
    elif not n.pairs:
        missing("relative-strength", "no pairs are configured (SMALLCAPS_PAIRS)")

    for symbol in n.symbols:
        section = "vix" if symbol in VOLATILITY_SYMBOLS else "indexes"
        if symbol not in loaded:
            missing(section, f"{_name(symbol)} ({symbol}): no rows in marts.index_daily {upto}")
        elif symbol not in VOLATILITY_SYMBOLS:
            charts.append(draw("index", symbol))

    with_members = set(n.composition["universe"].to_list())
    with_performance = set(n.cohort_perf["universe"].to_list())
    for universe in n.universes:
        name = f"{_universe_name(universe)} ({universe})"
        if universe in with_performance:
            charts.append(draw("cohort_performance", universe))
        elif universe in with_members:
            missing("cohort-performance", f"{name}: no rows in marts.cohort_performance on {n.as_of}: none of "
                    f"the anchors ({', '.join(n.anchors)}) resolves to a session with members yet")
        else:
            missing("cohort-performance", f"{name}: no members, so no cohorts: marts.cohort_composition and "
                    f"marts.cohort_performance have no rows for it {upto} (no holdings of it are loaded for these sessions)")
    if with_members:
        charts.append(draw("cohort_composition", [u for u in n.universes if u in with_members]))
    for universe in n.universes:
        if universe not in with_members:
            missing("cohort-composition", f"{_universe_name(universe)} ({universe}): no rows in "
                    f"marts.cohort_composition {upto}")

    with_sectors = set(n.sector_first)
    for universe in n.universes:
        if universe in with_sectors:
            charts.append(draw("sectors", universe))
        else:
            missing("sectors", f"{_universe_name(universe)} ({universe}): no rows in marts.sector_daily up to {n.as_of}")

    for symbol in n.symbols:
        if symbol in VOLATILITY_SYMBOLS and symbol in loaded:
            charts.append(draw("vix", symbol))
    return charts, absent, reused


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


def write_report(settings: Settings, as_of: date | None = None, *, redraw: bool = False) -> Report:
    """Write the report of the night `as_of` (default: the published snapshot's night).

    Charts whose inputs are unchanged since an earlier report are taken from the chart cache
    (`report.cache`); `redraw=True` draws every one (and refreshes the cache).
    Raises ReportError when nothing is published or the snapshot has no data for `as_of`.
    """
    started = time.perf_counter()
    con = _open_snapshot(settings)
    try:
        night = _read_night(con, settings, as_of)
    finally:
        con.close()
    cache = ChartCache(settings.report_dir / ".chart-cache")
    charts, absent, reused = _charts(night, cache, redraw)
    cache.prune()
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
        charts_reused=reused,
    )
