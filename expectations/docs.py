"""`smallcaps dq --docs`: an HTML page of one load's data-quality results.

Written from dq.results and dq.quarantine (via `smallcaps.dq.collect`), not by GX's data-docs
renderer: the gate runs on an ephemeral GX context that keeps no validation store, and the
warehouse tables are the record. One self-contained file per load under <home>/report/dq/.
"""

from __future__ import annotations

import html
from pathlib import Path

from expectations.suites import SUITES
from smallcaps.settings import Settings


def write_data_docs(settings: Settings, load_id: str | None = None) -> Path:
    from smallcaps.dq import collect

    report = collect(settings, load_id, examples=10)
    if report.load is None:
        raise FileNotFoundError("no gated load yet: nothing to document")
    lid, flow, source, status, started, message = report.load
    why = {(s.table, e.name): e.why for s in SUITES.values() for e in s.expectations}
    esc = html.escape
    rows = []
    for table, exp, sev, ok, bad, n, details in report.results:
        state = "pass" if ok else ("FAIL" if sev == "error" else "warn")
        rows.append(
            f"<tr class='{state}'><td>{esc(table)}</td><td>{esc(exp)}</td><td>{sev}</td><td>{state}</td>"
            f"<td>{'' if bad is None else f'{bad:,}'}</td><td>{'' if n is None else f'{n:,}'}</td>"
            f"<td>{esc(why.get((table, exp), ''))}</td><td>{esc(details or '')}</td></tr>"
        )
    quarantined = [
        f"<tr><td>{esc(t)}</td><td>{esc(e)}</td><td>{n:,}</td><td>{esc(r)}</td><td>{esc(', '.join(k))}</td></tr>"
        for t, e, n, r, k in report.quarantine
    ]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>smallcaps dq {esc(lid)}</title>
<style>body{{font-family:sans-serif}}td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}}
table{{border-collapse:collapse}}.FAIL{{background:#fdd}}.warn{{background:#ffd}}</style></head><body>
<h1>Data quality of load {esc(lid)}</h1>
<p>{esc(flow)} from {esc(source)}, {esc(status)}, started {started:%Y-%m-%d %H:%M:%S}. {esc(message or '')}</p>
<p>Read from the {esc(report.read_from)}. Definitions: docs/data-quality.md.</p>
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
