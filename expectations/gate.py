"""The one gate every table goes through: run its suite, say what failed, split the rows.

`gate()` checks the frame's contract first in polars (missing, renamed or mistyped columns give a
blocked result naming the column, never a crash inside GX), runs the suite's Great Expectations
expectations on a pandas copy in one validation, runs the polars checks GX has no expectation for,
and returns:

- `results`: one row per expectation that ran, shaped like dq.results;
- `quarantine`: one row per offending fetched row, shaped like dq.quarantine (every error- and
  quarantine-level expectation the row failed is named in `reason`; `expectation` is the first of
  them, error-level ones first);
- `clean`: the rows that passed every error- and quarantine-level expectation (the original columns);
- `blocked` (an error-level expectation failed), `errors`, `quarantined` (the messages of
  quarantine-level findings: their rows are set aside, the rest loads), `warnings`.

`quarantine.height + clean.height == df.height` always. A blocked load writes `clean` to
dq.quarantine too, as `held_by_block` (see `held_rows`), so every fetched row ends in raw or in
dq.quarantine.

Great Expectations is imported on the first gate call only (it costs seconds).
"""

from __future__ import annotations

import logging

import json
import math
import threading
import time
import uuid
import warnings as _warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Iterable, Mapping

import polars as pl

from expectations.suites import Expectation, Params, Suite, check_overrides, suite as get_suite
from ground.schemas import BOOKKEEPING_COLUMNS
from ground.settings import Universe

RESULTS_SCHEMA: dict[str, pl.DataType] = {
    "load_id": pl.String,
    "table_name": pl.String,
    "expectation": pl.String,
    "severity": pl.String,
    "success": pl.Boolean,
    "element_count": pl.Int64,
    "unexpected_count": pl.Int64,
    "details": pl.String,
    "checked_at": pl.Datetime("us"),
}
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "load_id": pl.String,
    "table_name": pl.String,
    "row_key": pl.String,
    "expectation": pl.String,
    "reason": pl.String,
    "row_json": pl.String,
    "quarantined_at": pl.Datetime("us"),
}
EXAMPLES = 3
HELD_BY_BLOCK = "held_by_block"


@dataclass
class GateResult:
    table: str
    results: pl.DataFrame
    quarantine: pl.DataFrame
    clean: pl.DataFrame
    blocked: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: schema, gx, polars, split
    # GX's own validation result (its JSON form) for the expectations GX ran; None when none ran.
    # `smallcaps dq --docs` renders it with GX's data-docs renderer.
    gx_validation: dict | None = None


# GX runtime ----------------------------------------------------------------------------------------


class _GxRuntime:
    """An ephemeral GX context with one pandas dataframe asset, reused by every gate call."""

    def __init__(self, context=None):
        import great_expectations as gx
        import great_expectations.expectations as gxe

        self.gx = gx
        self.gxe = gxe
        if context is None:
            # An ephemeral context logs "Created temporary directory ... for ephemeral docs site" at
            # INFO on creation: noise in every night's log, and the gate never builds that site.
            logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
            context = gx.get_context(mode="ephemeral")
        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        except Exception as exc:  # pragma: no cover - only cosmetics depend on it
            _warnings.warn(f"could not turn GX progress bars off: {exc}")
        self.context = context
        name = f"smallcaps-{uuid.uuid4().hex[:8]}"
        asset = context.data_sources.add_pandas(name).add_dataframe_asset("frame")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole")

    def validate(self, pdf, configs: list[tuple[str, str, dict]], table: str) -> tuple[dict[str, object], dict]:
        """Run the (name, GX class, kwargs) expectations on `pdf` in one validation.

        Returns the results by name and GX's validation result as JSON (suite named after `table`)."""
        expectations = [getattr(self.gxe, cls)(**kwargs, meta={"smallcaps_name": name}) for name, cls, kwargs in configs]
        suite = self.gx.ExpectationSuite(name=f"gate-{uuid.uuid4().hex}", expectations=expectations)
        suite = self.context.suites.add(suite)
        try:
            batch = self.batch_definition.get_batch(batch_parameters={"dataframe": pdf})
            outcome = batch.validate(suite, result_format="BASIC")
        finally:
            self.context.suites.delete(suite.name)
        as_json = outcome.to_json_dict()
        as_json["suite_name"] = table  # the unique name above only keeps concurrent suites apart
        return {r.expectation_config.meta["smallcaps_name"]: r for r in outcome.results}, as_json


_RUNTIME_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _cached_runtime() -> _GxRuntime:
    return _GxRuntime()


def _default_runtime() -> _GxRuntime:
    with _RUNTIME_LOCK:  # a warm-up thread may be building it: wait for that one
        return _cached_runtime()


def warm_up() -> None:
    """Import Great Expectations and build the gate's context now (seconds of imports), e.g. in a
    thread while the Prefect server starts or the fetch runs, so the first gate does not pay it."""
    _default_runtime()


def warm_up_in_background() -> None:
    """`warm_up` in a daemon thread, unless this process built the context already. The gate then
    waits for that thread (the lock) instead of building a second one; should the thread fail, the
    gate builds it again and raises the error where it belongs."""
    if _cached_runtime.cache_info().currsize:
        return
    threading.Thread(target=warm_up, name="gx-warm-up", daemon=True).start()


def _runtime(context) -> _GxRuntime:
    return _default_runtime() if context is None else _GxRuntime(context)


# helpers -------------------------------------------------------------------------------------------


def _dtype_ok(actual: pl.DataType, expected: pl.DataType) -> bool:
    if actual == pl.Null:  # an all-null column: nothing in it can be of the wrong type
        return True
    if expected.is_float():
        return actual.is_numeric()
    if expected.is_integer():
        return actual.is_integer()
    if expected == pl.String:
        return actual in (pl.String, pl.Categorical) or isinstance(actual, pl.Enum)
    return actual == expected


def _fmt(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.10g}"
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    return str(v)


def _to_gx_value(v: object) -> object:
    import pandas as pd

    if isinstance(v, (date, datetime)):
        return pd.Timestamp(v)
    if isinstance(v, (list, tuple)):
        return [_to_gx_value(x) for x in v]
    return v


def _row_key(df: pl.DataFrame, keys: Iterable[str]) -> pl.Expr:
    present = [k for k in keys if k in df.columns]
    if not present:
        return pl.format("row {}", pl.int_range(0, pl.len()))
    return pl.concat_str([pl.col(k).cast(pl.String).fill_null("null") for k in present], separator="|")


def row_key(table: str, df: pl.DataFrame) -> pl.Expr:
    """The row_key the gate writes for `table`: its primary key values joined with '|'."""
    return _row_key(df, get_suite(table).keys)


def _row_json(df: pl.DataFrame) -> pl.Expr:
    if not df.columns:
        return pl.lit("{}")
    # NaN and infinity encode as JSON null; the reason carries the offending value.
    return pl.struct(pl.all()).struct.json_encode()


def held_rows(table: str, clean: pl.DataFrame, *, load_id: str, reason: str, at: datetime) -> pl.DataFrame:
    """dq.quarantine rows for the good rows of a blocked load (expectation `held_by_block`)."""
    return clean.select(
        pl.lit(load_id).alias("load_id"),
        pl.lit(table).alias("table_name"),
        row_key(table, clean).alias("row_key"),
        pl.lit(HELD_BY_BLOCK).alias("expectation"),
        pl.lit(reason).alias("reason"),
        _row_json(clean).alias("row_json"),
        pl.lit(at).cast(pl.Datetime("us")).alias("quarantined_at"),
    )


def _as_universes(universes) -> Mapping[str, Universe] | None:
    if universes is None:
        return None
    if isinstance(universes, Mapping):
        return dict(universes)
    return {u.name: u for u in universes}


# the gate ------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    exp: Expectation
    severity: str
    success: bool
    element_count: int | None
    unexpected_count: int | None
    details: dict
    failed: pl.DataFrame | None = None  # failing rows: _row + detail columns
    message: str = ""
    all_rows: bool = False  # a table-level error: no row can load


def gate(
    table: str,
    df: pl.DataFrame,
    *,
    load_id: str,
    as_of: date,
    severity_overrides: Mapping[str, str] | None = None,
    history: pl.DataFrame | None = None,
    revisions: pl.DataFrame | None = None,
    universes: Mapping[str, Universe] | Iterable[Universe] | None = None,
    checked_at: datetime | None = None,
    context=None,
) -> GateResult:
    """Run `table`'s suite on `df` (a raw frame in the source schema, or a mart frame).

    as_of: the night's session; dates after it are "future". history: recent stored rows of the
    same table (the previous close per symbol; stored versions of re-fetched keys). revisions:
    raw.revisions rows. universes: name -> settings Universe (default: the default universes).
    checked_at: timestamp written to results and quarantine (default: now, UTC, naive).
    context: a GX data context (default: one ephemeral context per process).
    """
    overrides = check_overrides(severity_overrides or {})
    s = get_suite(table)
    at = checked_at or datetime.now(timezone.utc).replace(tzinfo=None)
    uni = _as_universes(universes)
    params = Params(as_of=as_of, history=history, revisions=revisions, **({"universes": uni} if uni is not None else {}))
    timings: dict[str, float] = {}

    def sev(e: Expectation) -> str:
        chosen = overrides.get(e.name, e.severity)
        # A mart row cannot be set aside without making the mart wrong (see Suite.is_raw).
        return "error" if chosen == "quarantine" and not s.is_raw else chosen

    t = time.perf_counter()
    outcomes, broken = _schema(s, df, sev)
    timings["schema"] = time.perf_counter() - t

    runnable = [e for e in s.expectations if e.name not in ("columns_present", "column_types", "no_unexpected_columns")]
    runnable = [e for e in runnable if not (set(e.columns) & broken)]
    gx_exps = [e for e in runnable if e.gx]
    t = time.perf_counter()
    gx_results, gx_validation = _run_gx(s, df, gx_exps, params, context) if gx_exps else ({}, None)
    timings["gx"] = time.perf_counter() - t

    t = time.perf_counter()
    indexed = df.with_row_index("_row") if "_row" not in df.columns else df.rename({"_row": "_row_"}).with_row_index("_row")
    for e in runnable:
        outcomes.append(_evaluate(s, e, sev(e), df, indexed, params, gx_results.get(e.name)))
    timings["polars"] = time.perf_counter() - t

    t = time.perf_counter()
    result = _assemble(s, df, outcomes, load_id=load_id, at=at)
    timings["split"] = time.perf_counter() - t
    result.timings = timings
    if gx_validation is not None:
        gx_validation["meta"]["run_id"] = {"run_name": load_id, "run_time": at.isoformat()}
    result.gx_validation = gx_validation
    return result


def _schema(s: Suite, df: pl.DataFrame, sev) -> tuple[list[_Outcome], set[str]]:
    by_name = {e.name: e for e in s.expectations}
    missing = [c for c in s.schema if c not in df.columns]
    mistyped = {c: df.schema[c] for c in s.schema if c in df.columns and not _dtype_ok(df.schema[c], s.schema[c])}
    extra = [c for c in df.columns if c not in s.schema and c not in BOOKKEEPING_COLUMNS]
    n = df.height
    outcomes = []

    e = by_name["columns_present"]
    msg = ""
    if missing:
        hint = f"; unexpected column(s) {', '.join(extra)} (renamed?)" if extra else ""
        msg = (
            f"{s.table}: columns_present failed: missing column(s) {', '.join(missing)}{hint}; "
            f"none of the {n:,} rows can load"
        )
    outcomes.append(
        _Outcome(e, sev(e), not missing, n, len(missing), {"missing": missing, "found": df.columns}, message=msg, all_rows=bool(missing))
    )

    e = by_name["column_types"]
    msg = ""
    if mistyped:
        parts = []
        for c, actual in mistyped.items():
            sample = df.get_column(c).drop_nulls().head(1).to_list()
            eg = f" (e.g. {sample[0]!r})" if sample else ""
            parts.append(f"{c} is {actual}, expected {s.schema[c]}{eg}")
        msg = f"{s.table}: column_types failed: {'; '.join(parts)}; none of the {n:,} rows can load"
    outcomes.append(
        _Outcome(
            e, sev(e), not mistyped, n, len(mistyped),
            {"mistyped": {c: f"{a} (expected {s.schema[c]})" for c, a in mistyped.items()}},
            message=msg, all_rows=bool(mistyped),
        )
    )

    e = by_name["no_unexpected_columns"]
    msg = f"{s.table}: no_unexpected_columns failed: column(s) {', '.join(extra)} are not in the contract and will not load" if extra else ""
    outcomes.append(_Outcome(e, sev(e), not extra, n, len(extra), {"unexpected": extra}, message=msg))
    return outcomes, set(missing) | set(mistyped)


def _run_gx(s: Suite, df: pl.DataFrame, exps: list[Expectation], params: Params, context) -> tuple[dict[str, object], dict]:
    runtime = _runtime(context)
    needed = sorted({c for e in exps for c in e.columns} & set(df.columns))
    is_date = {c for c in needed if df.schema[c] == pl.Date or isinstance(df.schema[c], pl.Datetime)}
    configs = []
    iso: set[str] = set()
    for e in exps:
        kwargs = e.gx_kwargs(df, params)
        if e.gx == "ExpectColumnValuesToBeInSet" and kwargs.get("column") in is_date:
            # GX serialises a value_set through JSON, so timestamps no longer match datetime64
            # values: dates are compared as ISO strings in a companion column.
            c = str(kwargs["column"])
            iso.add(c)
            kwargs = {**kwargs, "column": f"{c}__iso", "value_set": [d.isoformat() for d in kwargs["value_set"]]}
        configs.append((e.name, e.gx, {k: _to_gx_value(v) for k, v in kwargs.items()}))
    pdf = df.select([*needed, *(pl.col(c).dt.strftime("%Y-%m-%d").alias(f"{c}__iso") for c in sorted(iso))]).to_pandas()
    for c in is_date:
        # GX compares datetime64[ns] vectorised; other date dtypes fall back to a slow per-value path.
        pdf[c] = pdf[c].astype("datetime64[ns]")
    return runtime.validate(pdf, configs, s.table)


def _evaluate(s: Suite, e: Expectation, severity: str, df: pl.DataFrame, indexed: pl.DataFrame, params: Params, gx_result) -> _Outcome:
    n = df.height
    details: dict = {}
    if e.gx:
        details["gx"] = e.gx
        kw = e.gx_kwargs(df, params)
        details["kwargs"] = {k: (f"{len(v)} values" if isinstance(v, (list, tuple)) and len(v) > 10 else v) for k, v in kw.items()}
    if gx_result is not None:
        info = gx_result.exception_info or {}
        raised = info.get("raised_exception") if isinstance(info, dict) else False
        if raised:
            msg = f"{s.table}: {e.name} could not be evaluated by Great Expectations: {info.get('exception_message')}"
            details["exception"] = info.get("exception_message")
            # No row is named: a quarantine-level check blocks like an error one (nothing can load safely).
            return _Outcome(e, "error" if severity == "quarantine" else severity, False, n, None, details, message=msg, all_rows=True)
        res = gx_result.result or {}
        success = bool(gx_result.success)
        element_count = res.get("element_count", n)
        unexpected = res.get("unexpected_count")
        if "observed_value" in res:
            details["observed"] = res["observed_value"]
    else:
        success, element_count, unexpected = True, n, None

    failed = None
    if e.failing is not None and (gx_result is None or not success):
        marked = e.failing(df, params).with_columns(pl.col("failed").cast(pl.Boolean).fill_null(False))
        if marked.height != n:
            raise AssertionError(f"{s.table}: predicate of {e.name} returned {marked.height} rows for {n}")
        failed = pl.concat([indexed.select("_row"), marked], how="horizontal").filter(pl.col("failed")).drop("failed")
        if gx_result is None:
            success = failed.height == 0
            unexpected = failed.height
        elif failed.height == 0 and not success:
            failed = None  # GX failed but the predicate blames no row: a table-level failure
    elif e.failing is not None:
        unexpected = unexpected if unexpected is not None else 0

    if success:
        return _Outcome(e, severity, True, element_count, unexpected if unexpected is not None else 0, details)

    if failed is None:
        what = {"rows_present": "the frame has no rows"}.get(e.name, "")
        observed = details.get("observed")
        msg = f"{s.table}: {e.name} failed" + (f": {what}" if what else "") + (f" (observed {observed})" if observed is not None and not what else "")
        if severity == "quarantine":
            # Rows can be set aside only when the check names them; otherwise nothing can load safely.
            severity = "error"
            msg += " (a quarantine-level check that could not name the offending rows: the load is blocked)"
        return _Outcome(e, severity, False, element_count, unexpected, details, message=msg, all_rows=e.failing is not None)

    examples = _examples(s, e, indexed, failed)
    details["examples"] = examples
    if e.reason:
        details["reason"] = e.reason
    count = unexpected if unexpected is not None else failed.height
    named = f" ({e.reason})" if e.reason else ""
    if e.per_group:
        groups = failed.join(indexed.select("_row", *e.show), on="_row").select(e.show).unique().height
        msg = f"{s.table}: {e.name} failed for {groups:,} group(s) ({count:,} of {n:,} rows){named}, e.g. {'; '.join(examples)}"
    else:
        msg = f"{s.table}: {e.name} failed for {count:,} of {n:,} rows{named}, e.g. {'; '.join(examples)}"
    if severity == "quarantine":
        msg += f"; {'that row is' if count == 1 else 'those rows are'} in dq.quarantine, the rest loads"
    return _Outcome(e, severity, False, element_count, count, details, failed=failed, message=msg)


def _describe(s: Suite, e: Expectation, rows: pl.DataFrame, detail_cols: list[str]) -> list[str]:
    out = []
    for r in rows.iter_rows(named=True):
        ident = [] if e.per_group else [_fmt(r[k]) for k in s.keys if k in r]
        shown = [f"{c}={_fmt(r[c])}" for c in (*e.show, *detail_cols) if c in r]
        if e.per_group:
            shown = [_fmt(r[c]) for c in e.show if c in r] + [f"{c}={_fmt(r[c])}" for c in detail_cols]
        out.append(" ".join(ident + shown))
    return out


def _examples(s: Suite, e: Expectation, indexed: pl.DataFrame, failed: pl.DataFrame) -> list[str]:
    detail_cols = [c for c in failed.columns if c != "_row"]
    cols = [c for c in dict.fromkeys([*s.keys, *e.show]) if c in indexed.columns and c not in detail_cols]
    head = failed.head(2_000).join(indexed.select("_row", *cols), on="_row", how="left").sort("_row")
    seen: list[str] = []
    for text in _describe(s, e, head, detail_cols):
        if text not in seen:
            seen.append(text)
        if len(seen) == EXAMPLES:
            break
    return seen


def _reason_rows(s: Suite, o: _Outcome, indexed: pl.DataFrame) -> pl.DataFrame:
    """(_row, expectation, reason) for the rows an error- or quarantine-level outcome blames."""
    if o.all_rows or o.failed is None:
        why = o.message.split(": ", 1)[-1] if o.message else f"{o.exp.name} failed"
        return indexed.select("_row", pl.lit(o.exp.name).alias("expectation"), pl.lit(f"{o.exp.name}: {why}").alias("reason"))
    detail_cols = [c for c in o.failed.columns if c != "_row"]
    shown = [c for c in o.exp.show if c in indexed.columns and c not in detail_cols]
    rows = o.failed.join(indexed.select("_row", *shown), on="_row", how="left")
    parts: list[pl.Expr] = [pl.lit(f"{o.exp.name}: {o.exp.reason}:" if o.exp.reason else f"{o.exp.name}:")]
    for c in (*shown, *detail_cols):
        value = pl.col(c).cast(pl.String).fill_null("null")
        if rows.schema[c].is_float():
            value = (
                pl.when(pl.col(c).is_nan()).then(pl.lit("NaN")).otherwise(pl.col(c).round_sig_figs(10).cast(pl.String)).fill_null("null")
            )
        parts.append(pl.concat_str([pl.lit(f" {c}="), value]))
    return rows.select("_row", pl.lit(o.exp.name).alias("expectation"), pl.concat_str(parts).alias("reason"))


def _assemble(s: Suite, df: pl.DataFrame, outcomes: list[_Outcome], *, load_id: str, at: datetime) -> GateResult:
    indexed = df.with_row_index("_row") if "_row" not in df.columns else df.rename({"_row": "_row_"}).with_row_index("_row")
    results = pl.DataFrame(
        [
            {
                "load_id": load_id,
                "table_name": s.table,
                "expectation": o.exp.name,
                "severity": o.severity,
                "success": o.success,
                "element_count": o.element_count,
                "unexpected_count": o.unexpected_count,
                "details": json.dumps({"why": o.exp.why, **o.details}, default=_fmt),
                "checked_at": at,
            }
            for o in outcomes
        ],
        schema=RESULTS_SCHEMA,
    )
    errors = [o.message for o in outcomes if not o.success and o.severity == "error"]
    quarantined = [o.message for o in outcomes if not o.success and o.severity == "quarantine"]
    warnings = [o.message for o in outcomes if not o.success and o.severity == "warning"]
    blaming = [o for o in outcomes if not o.success and o.severity in ("error", "quarantine")]
    blamed = [_reason_rows(s, o, indexed) for o in blaming]

    if blamed and df.height:
        # A row's `expectation` is the first error-level check it failed, else the first
        # quarantine-level one, in suite order; its reason names them all in that order.
        order = {o.exp.name: (o.severity != "error") * len(outcomes) + i for i, o in enumerate(outcomes)}
        reasons = (
            pl.concat(blamed)
            .with_columns(pl.col("expectation").replace_strict(order, return_dtype=pl.Int64).alias("_order"))
            .sort("_row", "_order")
            .group_by("_row", maintain_order=True)
            .agg(pl.col("expectation").first(), pl.col("reason").str.join("; "))
        )
        bad = indexed.join(reasons, on="_row", how="semi").sort("_row")
        original = bad.drop("_row")
        if "_row_" in original.columns:
            original = original.rename({"_row_": "_row"})
        quarantine = pl.concat(
            [
                bad.select("_row"),
                original.select(
                    pl.lit(load_id).alias("load_id"),
                    pl.lit(s.table).alias("table_name"),
                    _row_key(original, s.keys).alias("row_key"),
                    _row_json(original).alias("row_json"),
                ),
            ],
            how="horizontal",
        ).join(reasons, on="_row").select(
            "load_id", "table_name", "row_key", "expectation", "reason", "row_json",
            pl.lit(at).cast(pl.Datetime("us")).alias("quarantined_at"),
        )
        clean = indexed.join(reasons, on="_row", how="anti").sort("_row").drop("_row")
        if "_row_" in clean.columns:
            clean = clean.rename({"_row_": "_row"})
    else:
        quarantine = pl.DataFrame(schema=QUARANTINE_SCHEMA)
        clean = df
    return GateResult(
        table=s.table,
        results=results,
        quarantine=quarantine.select(list(QUARANTINE_SCHEMA)).cast(QUARANTINE_SCHEMA),
        clean=clean,
        blocked=bool(errors),
        errors=errors,
        warnings=warnings,
        quarantined=quarantined,
    )
