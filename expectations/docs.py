"""`smallcaps dq --docs`: HTML data docs of one load's gate.

Two kinds of page, under <home>/report/dq/:

- `<load id>.html`: the whole load (every expectation, ours and GX's, and dq.quarantine), written
  from the warehouse record the caller passes in (`smallcaps.dq.collect`); self-contained, opens
  offline.
- `<load id>/<table>.html`: GX's own data docs page of the expectations GX ran on that table,
  rendered by GX's renderer from the validation result the gate saved as JSON under
  <home>/dq/validations/<load id>/ (the gate's GX context is ephemeral and keeps no store).
  GX's pages load their stylesheets and scripts from CDNs, so they need a browser with network.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Mapping

from expectations.suites import SUITES
from ground.settings import Settings

KEEP_LOADS = 60  # validation folders kept; the oldest go first


def validations_dir(settings: Settings) -> Path:
    return settings.home / "dq" / "validations"


def save_validations(settings: Settings, load_id: str, gated: Mapping[str, object]) -> None:
    """Keep each table's GX validation result (GateResult.gx_validation) as JSON for the data docs."""
    folder = validations_dir(settings) / load_id
    for table, g in gated.items():
        validation = getattr(g, "gx_validation", None)
        if validation is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{table}.json"
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(validation), encoding="utf-8")
        tmp.replace(out)
    # Load ids start with their UTC timestamp, so names sort by age.
    old = sorted(p for p in validations_dir(settings).glob("*") if p.is_dir())[:-KEEP_LOADS]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)


def write_gx_pages(settings: Settings, load_id: str) -> list[Path]:
    """Render the saved GX validation results of `load_id` with GX's data-docs renderer."""
    folder = validations_dir(settings) / load_id
    saved = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not saved:
        return []
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    renderer, view, schema = ValidationResultsPageRenderer(), DefaultJinjaPageView(), ExpectationSuiteValidationResultSchema()
    out_dir = settings.report_dir / "dq" / load_id
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = []
    for path in saved:
        try:
            validation = schema.load(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a GX validation result ({exc})") from exc
        out = out_dir / f"{path.stem}.html"
        tmp = out.with_suffix(".tmp")
        tmp.write_text(view.render(renderer.render(validation)), encoding="utf-8")
        tmp.replace(out)
        pages.append(out)
    return pages


def write_data_docs(settings: Settings, report) -> Path:
    """Write the load's summary page and GX's pages; returns the summary page's path.

    `report` is the load's record as `smallcaps dq` reads it from the warehouse (smallcaps.dq.collect:
    `load`, `results`, `quarantine`). The caller reads it: that reader belongs to the CLI, above
    this package."""
    if report.load is None:
        raise FileNotFoundError("no gated load yet: nothing to document")
    lid, flow, source, status, started, message = report.load
    gx_pages = write_gx_pages(settings, lid)
    why = {(s.table, e.name): e.why for s in SUITES.values() for e in s.expectations}
    esc = html.escape
    rows = []
    for table, exp, sev, ok, bad, n, details in report.results:
        state = "pass" if ok else {"error": "FAIL", "quarantine": "quarantined"}.get(sev, "warn")
        rows.append(
            f"<tr class='{state}'><td>{esc(table)}</td><td>{esc(exp)}</td><td>{sev}</td><td>{state}</td>"
            f"<td>{'' if bad is None else f'{bad:,}'}</td><td>{'' if n is None else f'{n:,}'}</td>"
            f"<td>{esc(why.get((table, exp), ''))}</td><td>{esc(details or '')}</td></tr>"
        )
    quarantined = [
        f"<tr><td>{esc(t)}</td><td>{esc(e)}</td><td>{n:,}</td><td>{esc(r)}</td><td>{esc(', '.join(k))}</td></tr>"
        for t, e, n, r, k in report.quarantine
    ]
    gx_links = ", ".join(f"<a href='{esc(lid)}/{esc(p.name)}'>{esc(p.stem)}</a>" for p in gx_pages) or "none saved for this load"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>smallcaps dq {esc(lid)}</title>
<style>body{{font-family:sans-serif}}td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}}
table{{border-collapse:collapse}}.FAIL{{background:#fdd}}.warn{{background:#ffd}}.quarantined{{background:#fec}}</style></head><body>
<h1>Data quality of load {esc(lid)}</h1>
<p>{esc(flow)} from {esc(source)}, {esc(status)}, started {started:%Y-%m-%d %H:%M:%S}. {esc(message or '')}</p>
<p>Read from the {esc(report.read_from)}. Definitions: docs/data-quality.md.</p>
<p>GX's own data docs of this load (need network for their styles): {gx_links}</p>
<h2>Expectations</h2><table><tr><th>table</th><th>expectation</th><th>severity</th><th>result</th>
<th>unexpected</th><th>rows</th><th>why</th><th>details</th></tr>{''.join(rows)}</table>
<h2>dq.quarantine</h2><table><tr><th>table</th><th>expectation</th><th>rows</th><th>reason</th><th>examples</th></tr>
{''.join(quarantined) or '<tr><td colspan=5>nothing quarantined</td></tr>'}</table></body></html>"""
    out = settings.report_dir / "dq" / f"{lid}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def suite_markdown(table: str) -> str:
    """The expectations table of `table` as docs/data-quality.md prints it (a test keeps them equal)."""
    from expectations.suites import suite

    s = suite(table)
    gate_level = {"columns_present", "column_types", "no_unexpected_columns"}
    lines = ["| expectation | severity | runs as | why |", "| --- | --- | --- | --- |"]
    for e in s.expectations:
        runs_as = "gate" if e.name in gate_level else (e.gx or "polars")
        why = e.why + (f" (quarantine reason: `{e.reason}`)" if e.reason else "")
        lines.append(f"| `{e.name}` | {e.severity} | {runs_as} | {why} |")
    return "\n".join(lines)
