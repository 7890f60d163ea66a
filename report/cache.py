"""Charts already drawn, kept by what they were drawn from, so a report draws only what changed.

A chart's key is a hash of everything its image depends on: the mart rows it reads (`chart_inputs`),
the night's figures printed on every chart (night, snapshot's night, data source), and the drawing
code itself (the source of `charts.py`, the index and universe names and the rounding it borrows
from the headlines, matplotlib's settings, and the versions of matplotlib, Pillow and polars). Writing a
night's report again (the CLI after the nightly flow, a second `--as-of` run, a test) reuses every
chart whose key is unchanged; a new night changes every chart's title, so it draws them all.

Entries live in `<home>/report/.chart-cache/KEY.json` (the Chart's fields, the PNG in base64), each
written by a rename so a reader never sees half of one. The newest `KEEP_ENTRIES` are kept.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import os
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import matplotlib
import polars as pl

from report import charts
from report.charts import Chart
from report.read import _Night
from transforms.headlines import INDEX_NAMES, UNIVERSE_NAMES, rounded

# About six nights of charts (eleven a night on the demo market).
KEEP_ENTRIES = 64

# The drawing code, and what it borrows from the headlines: the names and the rounding it prints.
_CODE = hashlib.sha256(
    Path(charts.__file__).read_bytes()
    + "|".join(f"{p}={version(p)}" for p in ("matplotlib", "pillow", "polars")).encode()
    + repr((INDEX_NAMES, UNIVERSE_NAMES)).encode()
    + inspect.getsource(rounded).encode()
).hexdigest()


def chart_inputs(night: _Night, kind: str, *args) -> list:
    """What the chart `kind` of `_ChartMaker` draws from, besides the figures every chart prints.

    Keep it in step with the chart methods: a value a chart reads that is missing here would leave
    that chart stale when only that value changes (tests/report/test_cache.py changes each)."""
    n = night
    if kind == "relative_strength":
        pairs = args[0]
        symbols = sorted({s for pair in pairs for s in pair})
        rows = n.relative.filter(
            pl.concat_str("lead_symbol", pl.lit("/"), "lag_symbol").is_in([f"{a}/{b}" for a, b in pairs])
        )
        return [rows, [(s, n.history_start.get(s)) for s in symbols], n.first_session]
    if kind in ("index", "vix"):
        symbol = args[0]
        return [n.index_daily.filter(pl.col("symbol") == symbol), n.history_start.get(symbol)]
    if kind == "cohort_performance":
        return [n.cohort_perf.filter(pl.col("universe") == args[0]), n.anchors]
    if kind == "cohort_composition":
        return [n.composition.filter(pl.col("universe").is_in(args[0]))]
    if kind == "sectors":
        universe = args[0]
        anchors = n.cohort_perf.filter((pl.col("universe") == universe) & (pl.col("session_date") == n.as_of))
        return [
            n.sectors.filter(pl.col("universe") == universe),
            n.sector_perf.filter(pl.col("universe") == universe),
            n.sector_first.get(universe),
            anchors.select("anchor", "anchor_date"),
            n.anchors,
        ]
    raise ValueError(f"chart_inputs: no inputs declared for chart kind {kind!r}; add them beside the others")


def chart_key(night: _Night, kind: str, *args) -> str:
    n = night
    digest = hashlib.sha256(_CODE.encode())
    # matplotlib's settings of this process (a caller may have changed a default) shape every image.
    # Not `backend`: reading it makes matplotlib pick one, importing pyplot; the report draws on Agg.
    style = [(k, repr(matplotlib.rcParams[k])) for k in matplotlib.rcParams if k != "backend"]
    parts = [kind, repr(args), n.as_of, n.snapshot_as_of, n.source_label, n.is_synthetic, n.window_start, style]
    for value in parts + chart_inputs(n, kind, *args):
        if isinstance(value, pl.DataFrame):
            # CSV prints floats in their shortest exact form: equal text is equal values.
            digest.update(repr(value.schema).encode() + value.write_csv().encode())
        else:
            digest.update(repr(value).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


class ChartCache:
    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> Chart | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_text("utf-8"))
            chart = Chart(**{**doc, "tables": tuple(doc["tables"]), "png": base64.b64decode(doc["png"], validate=True)})
        except (ValueError, KeyError, TypeError):
            # Entries are written whole (by rename), so only an outside edit or a format change breaks
            # one; the chart is then drawn again and the entry replaced.
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used: kept by `prune`
        return chart

    def put(self, key: str, chart: Chart) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        doc = {**asdict(chart), "tables": list(chart.tables), "png": base64.b64encode(chart.png).decode("ascii")}
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(doc), "utf-8")
        os.replace(tmp, path)

    def prune(self, keep: int = KEEP_ENTRIES) -> None:
        if not self.folder.is_dir():
            return
        entries = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[keep:]:
            old.unlink(missing_ok=True)
