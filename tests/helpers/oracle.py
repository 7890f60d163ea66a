"""The whole-history derivation: every core table and mart computed from all of raw at once by the
transforms, with no window and no carried state. It is what incremental derivation must equal
(tests/test_incremental.py); it is never used by the pipeline."""

from __future__ import annotations

import math
from datetime import date

import duckdb
import polars as pl

from ground import calendar
from ground.registry import DATASETS
from warehouse.load import read


def _raw(con: duckdb.DuckDBPyConnection, table: str, as_of: date, col: str = "session_date") -> pl.LazyFrame:
    return read(con, f"SELECT * EXCLUDE (source, fetched_at, load_id) FROM {table} WHERE {col} <= ?", [as_of]).lazy()


def derive_all(con: duckdb.DuckDBPyConnection, *, as_of: date, pairs, anchors, names) -> dict[str, pl.DataFrame]:
    from transforms.cohort_performance import cohort_performance
    from transforms.cohorts import cohort_composition, cohorts
    from transforms.headlines import headlines
    from transforms.index_daily import index_daily, index_records
    from transforms.membership import membership
    from transforms.relative_performance import relative_performance
    from transforms.returns import equity_returns
    from transforms.cohort_performance import resolve_anchors
    from transforms.sectors import sector_daily, sector_performance

    index_bars = _raw(con, "raw.index_bars", as_of)
    equity_bars = _raw(con, "raw.equity_bars", as_of)
    holdings = _raw(con, "raw.holdings", as_of, "as_of_date")
    fundamentals = read(con, "SELECT * EXCLUDE (source, fetched_at, load_id, first_seen_at) FROM raw.fundamentals").lazy()
    first = con.execute(
        "SELECT least((SELECT min(session_date) FROM raw.index_bars), (SELECT min(session_date) FROM raw.equity_bars), "
        "(SELECT min(as_of_date) FROM raw.holdings))"
    ).fetchone()[0]
    days = calendar.sessions(first, as_of) if first else []
    sessions = pl.DataFrame(
        {"session_date": days, "year": [d.year for d in days], "is_early_close": [calendar.is_early_close(d) for d in days]},
        schema={"session_date": pl.Date, "year": pl.Int32, "is_early_close": pl.Boolean},
    )
    out = {"core.sessions": sessions}
    s = sessions.lazy().select("session_date")
    out["marts.index_daily"] = daily = index_daily(index_bars).collect()
    out["marts.index_records"] = index_records(daily.lazy()).collect()
    from transforms.index_performance import index_performance

    out["marts.index_performance"] = index_performance(daily.lazy(), s, anchors=anchors, as_of=as_of).collect()
    out["marts.relative_performance"] = relative_performance(daily.lazy(), pairs).collect()
    out["core.membership"] = members = membership(holdings, s).collect()
    out["core.cohorts"] = coh = cohorts(members.lazy(), holdings, fundamentals, s).collect()
    out["core.equity_returns"] = rets = equity_returns(equity_bars).collect()
    out["marts.cohort_composition"] = cohort_composition(coh.lazy()).collect()
    out["marts.cohort_performance"] = cohort_performance(coh.lazy(), rets.lazy(), s, anchors=anchors, as_of=as_of).collect()
    out["marts.sector_daily"] = sectors = sector_daily(coh.lazy(), rets.lazy()).collect()
    out["marts.sector_performance"] = sector_performance(sectors.lazy(), resolve_anchors(s, anchors, as_of=as_of)).collect()
    nights = sorted(set(daily.get_column("session_date").to_list()))
    out["marts.headlines"] = headlines(
        nights, daily.lazy(), out["marts.index_records"].lazy(), out["marts.relative_performance"].lazy(),
        out["marts.cohort_composition"].lazy(), out["marts.cohort_performance"].lazy(), out["marts.sector_daily"].lazy(),
        index_performance=out["marts.index_performance"].lazy(), pairs=pairs, anchors=anchors, names=names,
    ).collect()
    return out


def differences(con: duckdb.DuckDBPyConnection, expected: dict[str, pl.DataFrame], *, rel: float = 1e-9, limit: int = 5) -> dict[str, list]:
    """Per table, up to `limit` examples of rows that differ between the warehouse and `expected`
    (missing, extra, or a value outside `rel` for floats). Empty when they agree."""
    out = {}
    for d in DATASETS:
        if d.name not in expected:
            continue
        stored = read(con, f"SELECT * FROM {d.name}").cast(d.schema)
        want = expected[d.name].select(d.column_names).cast(d.schema)
        keys = list(d.key)
        problems = []
        have_w = want.select(keys).with_columns(pl.lit(True).alias("_w"))
        have_g = stored.select(keys).with_columns(pl.lit(True).alias("_g"))
        presence = have_w.join(have_g, on=keys, how="full", coalesce=True)
        for row in presence.filter(pl.col("_w").is_null() | pl.col("_g").is_null()).head(limit).iter_rows(named=True):
            problems.append(("extra" if row["_w"] is None else "missing", {k: row[k] for k in keys}))
        both = want.join(stored, on=keys, how="inner", suffix="__got")
        for c in d.columns:
            if c.name in keys:
                continue
            a, b = pl.col(c.name), pl.col(f"{c.name}__got")
            if c.sql_type == "DOUBLE":
                bad = ~((a.is_null() & b.is_null()) | (a.is_nan() & b.is_nan()) | ((a - b).abs() <= rel * pl.max_horizontal(a.abs(), b.abs(), pl.lit(1e-300))))
            else:
                bad = ~((a.is_null() & b.is_null()) | (a == b).fill_null(False))
            suspects = both.filter(bad.fill_null(True))
            if c.name == "inputs" and suspects.height:
                # JSON with figures in it: numbers are compared like float columns.
                suspects = suspects.filter(
                    pl.struct(c.name, f"{c.name}__got").map_elements(
                        lambda r: not _json_close(r[c.name], r[f"{c.name}__got"], rel), return_dtype=pl.Boolean
                    )
                )
            for row in suspects.head(limit).iter_rows(named=True):
                problems.append(("value", c.name, {k: row[k] for k in keys}, row[c.name], row[f"{c.name}__got"]))
        if problems:
            out[d.name] = problems[: limit * 3]
    return out


def _json_close(a: str | None, b: str | None, rel: float) -> bool:
    import json

    if a is None or b is None:
        return a is b

    def close(x, y) -> bool:
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
        if isinstance(x, list) and isinstance(y, list):
            return len(x) == len(y) and all(close(p, q) for p, q in zip(x, y))
        if isinstance(x, float) or isinstance(y, float):
            if not isinstance(x, (int, float)) or not isinstance(y, (int, float)):
                return False
            return x == y or math.isclose(x, y, rel_tol=rel, abs_tol=1e-300)
        return x == y

    return close(json.loads(a), json.loads(b))
