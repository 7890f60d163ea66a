"""docs/marts.md, written from the registry of datasets (`python -m smallcaps.docs_marts > docs/marts.md`).

A test compares the file with `render()`, so the page and the tables cannot drift apart.
"""

from __future__ import annotations

import sys

from ground.registry import DATASETS, Dataset

INTRO = """# Marts: the BI contract

<!-- Generated from ground/registry.py by `python -m smallcaps.docs_marts > docs/marts.md`: edit the registry, not this page. -->

The `marts` schema is what BI tools and ad-hoc SQL should read; `core` holds the cleaned and derived
tables the marts are made from. Every table below is declared once in `ground/registry.py`
(grain, key, columns with meaning and unit, inputs, checks, export); the warehouse's tables, their
comments, the Parquet exports and this page all come from there. A night recomputes only the rows
its new or revised data reach and writes only those that differ (see docs/operations.md); a row
of a night already published that changes is recorded in `meta.restatements`. Marts are gated by
data-quality checks, and published as a read-only snapshot. Definitions of every figure:
[definitions.md](definitions.md).

Types are DuckDB types. Units: *fraction* means 0.015 = +1.5%; *bp* = basis points (0.0001);
*index points* is the index level; *ratio* is a plain multiple (1.05 = 5% above the level it is
divided by); dates are NYSE session dates.

Index symbols are Yahoo symbols: `^RUT` Russell 2000, `^GSPC` S&P 500, `^SP600` S&P SmallCap 600,
`^IXIC` Nasdaq Composite, `^VIX` CBOE Volatility Index. Universes: `russell2000` (members from the
iShares IWM holdings) and `sp600` (iShares IJR).
"""


def _section(d: Dataset) -> str:
    out = [f"## {d.name}", ""]
    out.append(f"Grain: {d.grain}. Primary key ({', '.join(d.key)}).")
    if d.description:
        out += ["", d.description]
    out += ["", "| column | type | unit | meaning |", "| --- | --- | --- | --- |"]
    for c in d.columns:
        null = "" if c.nullable else " (never null)"
        out.append(f"| {c.name} | {c.sql_type} | {c.unit} | {c.meaning}{null} |")
    inputs = ", ".join(f"`{i}`" for i in d.inputs)
    extra = []
    if d.suite:
        extra.append("gated by its expectation suite (`smallcaps dq`)")
    if d.export:
        extra.append(
            f"exported as Parquet, partitioned by the year of `{d.date_column}`" if d.date_column else "exported as one Parquet file"
        )
    out += ["", f"Made from {inputs}" + (f"; {'; '.join(extra)}." if extra else ".")]
    for sql in d.examples:
        out += ["", "```sql", sql, "```"]
    return "\n".join(out)


def render() -> str:
    marts = [d for d in DATASETS if d.name.startswith("marts.")]
    core = [d for d in DATASETS if d.name.startswith("core.")]
    parts = [INTRO, "| mart | grain |", "| --- | --- |"]
    parts += [f"| `{d.name}` | {d.grain} |" for d in marts]
    parts += ["", "| core table | grain |", "| --- | --- |"]
    parts += [f"| `{d.name}` | {d.grain} |" for d in core]
    parts.append("")
    for d in marts + core:
        parts += [_section(d), ""]
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render())
