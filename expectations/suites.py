"""One expectation suite per gated table, as data.

An `Expectation` names a check (`high_ge_low`), its default severity (error: blocks the load;
quarantine: its rows go to dq.quarantine with the named `reason` and the rest loads; warning:
recorded), why it exists, and how it runs: either as a Great Expectations expectation (`gx` class name and kwargs) or as a polars check
for multi-row rules GX has no expectation for (sums per snapshot, day-over-day jumps). Every
row-level expectation also carries `failing`: a polars predicate that marks the offending rows, so
the gate can quarantine exactly those rows with their values. For GX-backed expectations the
predicate mirrors GX's semantics (tests assert both count the same rows).

Nothing here imports Great Expectations: the CLI imports this module and must stay fast.
`expectations.gate` converts the suites into GX objects when it runs.

Kwargs and predicates that depend on the night (`as_of`, the stored `history`, the configured
universes) are functions of `Params`; there is no clock in this module.

Why one module of about 1,000 lines: it is the catalogue of every check the gate runs (11 suites,
218 expectations), read as one list by the gate, the data docs (`smallcaps dq --docs`), the
severity overrides in settings and the bad-input test matrix. Most of its length is the `why` of
each check; the shared constructors (`_range`, `_finite`, `_not_after_as_of_check`, ...) sit above
the suites that use them, so a check and its predicate read together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Callable, Literal, Mapping

import polars as pl

from ground.schemas import ACTIONS_SCHEMA, BARS_SCHEMA, BOOKKEEPING_COLUMNS, FUNDAMENTALS_SCHEMA, HOLDINGS_SCHEMA
from ground.settings import DEFAULT_UNIVERSES, Universe

Severity = Literal["error", "quarantine", "warning"]
# What each severity does to a load (docs/data-quality.md, "Severity"):
# error: the load is blocked; quarantine: the offending rows go to dq.quarantine with the
# expectation's named reason and the rest loads; warning: everything loads, the finding is recorded.
SEVERITIES: tuple[str, ...] = ("error", "quarantine", "warning")

# Holdings: the equity lines of an iShares file, as a share of the whole fund. The real IWM and IJR
# files put 99.2-99.95% in equities (the rest is cash and index futures, which the source excludes).
# Below 90% a large part of the fund is missing from the file (a truncated download, a parser that
# dropped a sector); above 101% lines are counted twice. Either way cohort weights would be wrong.
WEIGHT_SUM_MIN_PCT = 90.0
WEIGHT_SUM_MAX_PCT = 101.0

# A close 100x (or 1/100) the previous close: Yahoo's known currency-unit slip (pence/cents for a
# dollar quote) and missed reverse splits. A real small cap can triple; it does not move 100x.
JUMP_FACTOR = 100.0
# A stored close that a re-fetch moves by more than this fraction: more than Yahoo's routine
# dividend/split re-adjustment of Adj Close, worth a look.
BIG_REVISION_FRACTION = 0.05
# The same close (and no volume) for this many sessions in a row: a halted or delisted symbol that
# Yahoo keeps forward-filling.
STALE_SESSIONS = 5
# Two period ends of one company closer than this are the same quarter twice (a restatement with a
# shifted date, or a stub period); TTM sums would count it twice.
MIN_QUARTER_SPACING_DAYS = 60
# Shares that must sum to 1: float noise of a few ulps per member is tolerated, a lost cohort is not.
SHARE_SUM_TOLERANCE = 1e-6
# A price (open, high, low, close, adj_close; index levels too) outside this band is not a quote but
# a broken value: `1e308` loads as a float and overflows the first return computed from it. The
# band is wide on purpose: Yahoo's split-adjusted history of a company that reverse-split many times
# shows prices far above any real quote, and a century of splits and dividends takes an adjusted
# close far below a cent; neither comes near these bounds, and neither bound comes near overflow.
MIN_PRICE = 1e-6
MAX_PRICE = 1e12
# Shares traded in one session: the busiest sub-penny stocks trade tens of billions; a trillion is
# a broken value (a unit slip, a float read as an integer), whatever the Int64 column can hold.
MAX_VOLUME_SHARES = 10**12

COHORTS = ("profitable", "unprofitable", "no_data")
ACTIONS = ("split", "dividend")


@dataclass(frozen=True)
class Params:
    """What a night's checks depend on, passed in: no clock, no warehouse."""

    as_of: date
    # Recent stored rows of the same table (at least the last row per symbol before the batch; rows
    # with the same key as the batch are the stored versions the batch would revise).
    history: pl.DataFrame | None = None
    # raw.revisions-shaped rows (table_name, row_key, column_name, old_value, new_value) found by a
    # merge, if the caller has them.
    revisions: pl.DataFrame | None = None
    universes: Mapping[str, Universe] = field(default_factory=lambda: {u.name: u for u in DEFAULT_UNIVERSES})
    # Work several predicates of one gate call share (is any key repeated?), computed once.
    scratch: dict = field(default_factory=dict, compare=False, repr=False)


Kwargs = Mapping[str, object] | Callable[[pl.DataFrame, Params], Mapping[str, object]]
# Returns a frame of df.height rows: a Boolean `failed` column (True = the row fails) and optional
# detail columns shown in messages (the snapshot's weight sum, the previous close, ...).
Failing = Callable[[pl.DataFrame, Params], pl.DataFrame]


@dataclass(frozen=True)
class Expectation:
    name: str
    severity: Severity
    why: str
    columns: tuple[str, ...] = ()  # columns it reads: skipped when one is missing or mistyped
    gx: str | None = None  # Great Expectations class, e.g. "ExpectColumnValuesToBeBetween"
    kwargs: Kwargs = field(default_factory=dict)
    failing: Failing | None = None  # row predicate; None for table-level checks
    show: tuple[str, ...] = ()  # columns printed in example rows
    per_group: bool = False  # fails whole groups (a snapshot, a session): examples name the group
    # The named reason a quarantined row carries ("not an NYSE session"); rows that fail several
    # expectations name each. Empty: the expectation's name says it.
    reason: str = ""

    def gx_kwargs(self, df: pl.DataFrame, params: Params) -> dict[str, object]:
        return dict(self.kwargs(df, params) if callable(self.kwargs) else self.kwargs)


@dataclass(frozen=True)
class Suite:
    table: str
    grain: str
    keys: tuple[str, ...]
    schema: Mapping[str, pl.DataType]
    not_null: tuple[str, ...]
    expectations: tuple[Expectation, ...]

    def names(self) -> list[str]:
        return [e.name for e in self.expectations]

    @property
    def is_raw(self) -> bool:
        """Raw tables hold fetched rows, which can be quarantined one by one. Marts are derived: a
        row missing from one would make it wrong, so a quarantine-level finding there blocks."""
        return self.table.startswith("raw.")

    def get(self, name: str) -> Expectation:
        for e in self.expectations:
            if e.name == name:
                return e
        raise KeyError(f"{self.table} has no expectation {name!r}; it has: {', '.join(self.names())}")


# predicates ----------------------------------------------------------------------------------------


def _mask(expr: pl.Expr | Callable[[pl.Schema], pl.Expr], *details: pl.Expr) -> Failing:
    """A row predicate from an expression (or a function of the frame's schema giving one)."""

    def run(df: pl.DataFrame, params: Params) -> pl.DataFrame:
        e = expr(df.schema) if callable(expr) else expr
        return df.select(e.fill_null(False).cast(pl.Boolean).alias("failed"), *details)

    return run


def _present(c: str, schema: pl.Schema) -> pl.Expr:
    """Not null and, for floats, not NaN: what GX on pandas considers a value."""
    # polars orders NaN above every number (NaN > 100 is true): keep it out of comparisons.
    if schema[c].is_float():
        return pl.col(c).is_not_null() & pl.col(c).is_not_nan()
    return pl.col(c).is_not_null()


def _missing(c: str) -> Callable[[pl.Schema], pl.Expr]:
    # pandas (and so GX) sees NaN as missing: a NaN close fails close_not_null there too.
    return lambda schema: ~_present(c, schema)


def _between(c: str, lo: float | None = None, hi: float | None = None, strict_lo: bool = False) -> Callable[[pl.Schema], pl.Expr]:
    """Rows outside [lo, hi] (nulls and NaN pass, as in GX: they are another check's business)."""

    def build(schema: pl.Schema) -> pl.Expr:
        col = pl.col(c)
        bad = pl.lit(False)
        if lo is not None:
            bad = bad | ((col <= lo) if strict_lo else (col < lo))
        if hi is not None:
            bad = bad | (col > hi)
        return _present(c, schema) & bad

    return build


def _pair_lt(a: str, b: str) -> Callable[[pl.Schema], pl.Expr]:
    """Rows where a < b, both present (GX ExpectColumnPairValuesAToBeGreaterThanB, or_equal)."""
    return lambda schema: _present(a, schema) & _present(b, schema) & (pl.col(a) < pl.col(b))


def _not_finite(cols: tuple[str, ...]) -> Callable[[pl.Schema], pl.Expr]:
    return lambda schema: pl.any_horizontal(
        [pl.col(c).is_nan() | pl.col(c).is_infinite() for c in cols if schema[c].is_float()] or [pl.lit(False)]
    )


def _keys_duplicated(keys: tuple[str, ...]) -> Failing:
    return _mask(pl.struct(list(keys)).is_duplicated())


def _contract_columns(df: pl.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in BOOKKEEPING_COLUMNS]


def _any_key_repeated(df: pl.DataFrame, keys: tuple[str, ...], params: Params) -> bool:
    """One pass over the key columns, shared by keys_unique and rows_not_repeated of a gate call:
    in the usual batch no key repeats, and neither check has more to do."""
    memo = ("any_key_repeated", keys, id(df))
    if memo not in params.scratch:
        params.scratch[memo] = df.height > 0 and df.group_by(list(keys)).len().select((pl.col("len") > 1).any()).item()
    return params.scratch[memo]


def _keys_conflicting(keys: tuple[str, ...]) -> Failing:
    """Rows whose key also holds a different row: two versions of one bar, and no way to tell which
    is right. Identical copies are rows_not_repeated's business."""

    def run(df: pl.DataFrame, params: Params) -> pl.DataFrame:
        if not _any_key_repeated(df, keys, params):
            return df.select(pl.repeat(False, pl.len()).alias("failed"))
        versions = pl.struct(_contract_columns(df)).n_unique().over(list(keys))
        return df.select((pl.struct(list(keys)).is_duplicated() & (versions > 1)).alias("failed"), versions.alias("versions"))

    return run


def _repeated(keys: tuple[str, ...]) -> Failing:
    """Second and later copies of a row identical in every column of the contract."""

    def run(df: pl.DataFrame, params: Params) -> pl.DataFrame:
        if not _any_key_repeated(df, keys, params):  # no repeated key, no repeated row
            return df.select(pl.repeat(False, pl.len()).alias("failed"))
        return df.select((~pl.struct(_contract_columns(df)).is_first_distinct()).alias("failed"))

    return run


def _sessions_between(df: pl.DataFrame, column: str) -> list[date]:
    from ground import calendar

    days = df.get_column(column).drop_nulls()
    if days.is_empty():
        return []
    return calendar.sessions(days.min(), days.max())


def _on_calendar(column: str) -> Failing:
    def run(df: pl.DataFrame, params: Params) -> pl.DataFrame:
        ok = _sessions_between(df, column)
        return df.select(
            (pl.col(column).is_not_null() & ~pl.col(column).is_in(ok)).alias("failed"),
            pl.col(column).dt.strftime("%A").alias("weekday"),  # a Saturday, or a Monday holiday
        )

    return run


def _not_after_as_of(column: str) -> Failing:
    def run(df: pl.DataFrame, params: Params) -> pl.DataFrame:
        return df.select(
            (pl.col(column) > params.as_of).fill_null(False).alias("failed"), pl.lit(params.as_of).alias("as_of")
        )

    return run


def _not_after_as_of_check(name: str, column: str, severity: Severity, why: str, *, reason: str = "") -> Expectation:
    """`column` is not after the load's as-of session (null passes): GX's between with the night's
    as_of as max_value, and the same rows marked by `_not_after_as_of`."""
    return Expectation(
        name,
        severity,
        why,
        columns=(column,),
        gx="ExpectColumnValuesToBeBetween",
        kwargs=lambda df, p: {"column": column, "max_value": p.as_of},
        failing=_not_after_as_of(column),
        show=(column,),
        reason=reason,
    )


def _previous_close(df: pl.DataFrame, params: Params) -> pl.DataFrame:
    """df's rows in order with the close of the previous stored or batch session of the symbol."""
    batch = df.select("symbol", "session_date", "close").with_row_index("_row")
    parts = [batch.with_columns(pl.lit(True).alias("_batch"))]
    hist = params.history
    if hist is not None and hist.height and {"symbol", "session_date", "close"} <= set(hist.columns):
        older = hist.select("symbol", "session_date", pl.col("close").cast(pl.Float64)).join(
            batch.select("symbol", "session_date"), on=["symbol", "session_date"], how="anti"
        )
        parts.append(
            older.with_columns(pl.lit(None, pl.UInt32).alias("_row"), pl.lit(False).alias("_batch")).select(parts[0].columns)
        )
    both = pl.concat(parts).sort("symbol", "session_date")
    both = both.with_columns(
        pl.col("close").shift(1).over("symbol").alias("prev_close"),
        pl.col("session_date").shift(1).over("symbol").alias("prev_session_date"),
    )
    return both.filter(pl.col("_batch")).sort("_row")


def _price_jump(df: pl.DataFrame, params: Params) -> pl.DataFrame:
    p = _previous_close(df, params)
    ratio = pl.col("close") / pl.col("prev_close")
    finite = pl.col("close").is_finite() & pl.col("prev_close").is_finite() & (pl.col("prev_close") > 0)
    failed = finite & ((ratio >= JUMP_FACTOR) | (ratio <= 1 / JUMP_FACTOR))
    return p.select(failed.fill_null(False).alias("failed"), "prev_session_date", "prev_close")


def _stale(df: pl.DataFrame, params: Params) -> pl.DataFrame:
    cols = ["symbol", "session_date", "close", "volume"]
    batch = df.select(cols).with_row_index("_row").with_columns(pl.lit(True).alias("_batch"))
    parts = [batch]
    hist = params.history
    if hist is not None and hist.height and set(cols) <= set(hist.columns):
        older = hist.select(
            "symbol", "session_date", pl.col("close").cast(pl.Float64), pl.col("volume").cast(pl.Int64)
        ).join(batch.select("symbol", "session_date"), on=["symbol", "session_date"], how="anti")
        parts.append(older.with_columns(pl.lit(None, pl.UInt32).alias("_row"), pl.lit(False).alias("_batch")).select(batch.columns))
    both = pl.concat(parts).sort("symbol", "session_date")
    # A run is a stretch of equal closes with no volume; its length so far is the stale count.
    moved = (pl.col("close") != pl.col("close").shift(1).over("symbol")).fill_null(True) | (
        pl.col("volume").fill_null(0) > 0
    )
    # Rows are sorted by symbol and a symbol's first row always counts as moved, so the start of the
    # current run can be forward-filled over the whole frame.
    rn = pl.int_range(0, pl.len())
    both = both.with_columns((rn - pl.when(moved).then(rn).forward_fill() + 1).alias("unchanged_sessions"))
    out = both.filter(pl.col("_batch")).sort("_row")
    return out.select((pl.col("unchanged_sessions") >= STALE_SESSIONS).alias("failed"), "unchanged_sessions")


def _big_revision(df: pl.DataFrame, params: Params) -> pl.DataFrame:
    """Batch rows that move a stored close or adj_close by more than BIG_REVISION_FRACTION."""
    batch = df.select("symbol", "session_date", "close", "adj_close").with_row_index("_row")
    failed = pl.Series("failed", [False] * df.height)
    out = batch.with_columns(
        pl.lit(None, pl.Float64).alias("stored_close"), pl.lit(None, pl.Float64).alias("stored_adj_close")
    )
    hist = params.history
    if hist is not None and hist.height and {"symbol", "session_date", "close", "adj_close"} <= set(hist.columns):
        stored = hist.select(
            "symbol",
            "session_date",
            pl.col("close").cast(pl.Float64).alias("stored_close"),
            pl.col("adj_close").cast(pl.Float64).alias("stored_adj_close"),
        ).unique(["symbol", "session_date"], keep="last")
        out = batch.join(stored, on=["symbol", "session_date"], how="left").sort("_row")
        change = pl.max_horizontal(
            (pl.col("close") / pl.col("stored_close") - 1).abs(),
            (pl.col("adj_close") / pl.col("stored_adj_close") - 1).abs(),
        )
        failed = out.select((change.fill_nan(None) > BIG_REVISION_FRACTION).fill_null(False)).to_series()
    if params.revisions is not None and params.revisions.height:
        rev = params.revisions.filter(pl.col("column_name").is_in(["close", "adj_close"])).with_columns(
            (
                pl.col("new_value").cast(pl.Float64, strict=False) / pl.col("old_value").cast(pl.Float64, strict=False) - 1
            ).abs().alias("_chg")
        )
        keys = set(rev.filter(pl.col("_chg") > BIG_REVISION_FRACTION).get_column("row_key").to_list())
        if keys:
            rk = df.select(pl.concat_str([pl.col("symbol"), pl.col("session_date").cast(pl.String)], separator="|")).to_series()
            failed = failed | rk.is_in(list(keys))
    return out.select(pl.Series("failed", failed), "stored_close", "stored_adj_close")


def _weight_sum(df: pl.DataFrame, params: Params) -> pl.DataFrame:
    total = pl.col("weight_pct").sum().over("universe", "as_of_date")
    bad = (total < WEIGHT_SUM_MIN_PCT) | (total > WEIGHT_SUM_MAX_PCT) | total.is_nan()
    return df.select(bad.fill_null(True).alias("failed"), total.round(2).alias("weight_sum_pct"))


def _member_count(df: pl.DataFrame, params: Params) -> pl.DataFrame:
    bounds = pl.DataFrame(
        {
            "universe": [u.name for u in params.universes.values()],
            "_min": [u.min_members for u in params.universes.values()],
            "_max": [u.max_members for u in params.universes.values()],
        },
        schema={"universe": pl.String, "_min": pl.Int64, "_max": pl.Int64},
    )
    counted = df.select("universe", "as_of_date", "symbol").with_row_index("_row").with_columns(
        pl.col("symbol").n_unique().over("universe", "as_of_date").alias("members")
    )
    counted = counted.join(bounds, on="universe", how="left").sort("_row")
    # An unknown universe has no band: universe_known reports it.
    bad = (pl.col("members") < pl.col("_min")) | (pl.col("members") > pl.col("_max"))
    return counted.select(
        bad.fill_null(False).alias("failed"),
        "members",
        pl.format("{}..{}", "_min", "_max").alias("expected_members"),
    )


def _quarters_spaced(df: pl.DataFrame, params: Params) -> pl.DataFrame:
    p = df.select("symbol", "period_end_date").with_row_index("_row").sort("symbol", "period_end_date")
    gap_prev = (pl.col("period_end_date") - pl.col("period_end_date").shift(1).over("symbol")).dt.total_days()
    gap_next = (pl.col("period_end_date").shift(-1).over("symbol") - pl.col("period_end_date")).dt.total_days()
    # Equal dates are keys_unique's business; here: distinct period ends too close together.
    close_ = ((gap_prev > 0) & (gap_prev < MIN_QUARTER_SPACING_DAYS)) | ((gap_next > 0) & (gap_next < MIN_QUARTER_SPACING_DAYS))
    p = p.with_columns(close_.fill_null(False).alias("failed"), pl.min_horizontal(gap_prev.abs(), gap_next.abs()).alias("days_to_neighbour"))
    return p.sort("_row").select("failed", "days_to_neighbour")


def _share_sum(column: str, *, allow_all_null: bool) -> Failing:
    def run(df: pl.DataFrame, params: Params) -> pl.DataFrame:
        total = pl.col(column).sum().over("universe", "session_date")
        known = pl.col(column).is_not_null().sum().over("universe", "session_date")
        bad = ((total - 1).abs() > SHARE_SUM_TOLERANCE) | total.is_nan()
        if allow_all_null:
            bad = bad & (known > 0)
        return df.select(bad.fill_null(True).alias("failed"), total.alias(f"{column}_sum"))

    return run


def _streak_le_sessions(df: pl.DataFrame, params: Params) -> pl.DataFrame:
    """A streak grows by at most one session per session: streak <= the pair's previous streak + 1,
    and <= 1 on a pair's first session. (So it never exceeds the pair's sessions so far.) The
    previous row is the batch's own or, for the batch's first row of a pair, the stored one in
    `history` (a night gates only its new rows)."""
    pair = ["lead_symbol", "lag_symbol"]
    p = df.select(*pair, "session_date", "streak").with_row_index("_row").with_columns(pl.lit(True).alias("_batch"))
    hist = params.history
    if hist is not None and hist.height and {*pair, "session_date", "streak"} <= set(hist.columns):
        older = hist.select(*pair, "session_date", pl.col("streak").cast(p.schema["streak"])).join(
            p.select(*pair, "session_date"), on=[*pair, "session_date"], how="anti"
        )
        p = pl.concat([p, older.with_columns(pl.lit(None, dtype=pl.UInt32).alias("_row"), pl.lit(False).alias("_batch"))], how="diagonal")
    p = p.sort(*pair, "session_date").with_columns(pl.col("streak").shift(1).over(pair).alias("previous_streak"))
    # A negative previous streak is streak_non_negative's to report, not this check's again.
    bad = pl.col("streak") > pl.col("previous_streak").fill_null(0).clip(lower_bound=0) + 1
    return p.filter(pl.col("_batch")).sort("_row").select(bad.fill_null(False).alias("failed"), "previous_streak")


# building blocks ---------------------------------------------------------------------------------


def _schema_checks(schema: Mapping[str, pl.DataType]) -> list[Expectation]:
    # Checked by the gate in polars before anything else: a missing or mistyped column must give a
    # message naming it, not an exception inside GX. Expectations reading a broken column are skipped.
    return [
        Expectation(
            "columns_present",
            "error",
            "every column of the table's contract is there; a renamed or missing column cannot load",
        ),
        Expectation(
            "column_types",
            "error",
            "numbers are numbers and dates are dates; a string where a price belongs means the source changed format",
        ),
        Expectation(
            "no_unexpected_columns",
            "warning",
            "a column outside the contract is dropped on load; often the other half of a rename",
        ),
    ]


def _keys(keys: tuple[str, ...]) -> Expectation:
    return Expectation(
        "keys_unique",
        "error",
        f"the primary key ({', '.join(keys)}) identifies one row; duplicates would make the merge pick one at random",
        columns=keys,
        gx="ExpectCompoundColumnsToBeUnique",
        kwargs={"column_list": list(keys)},
        failing=_keys_duplicated(keys),
    )


def _not_null(c: str, schema: Mapping[str, pl.DataType], why: str = "") -> Expectation:
    return Expectation(
        f"{c}_not_null",
        "error",
        why or f"{c} is NOT NULL in the warehouse" + (" (NaN counts as missing)" if schema[c].is_float() else ""),
        columns=(c,),
        gx="ExpectColumnValuesToNotBeNull",
        kwargs={"column": c},
        failing=_mask(_missing(c)),
        show=(c,),
    )


def _positive(c: str, severity: Severity = "error", why: str = "") -> Expectation:
    return Expectation(
        f"{c}_positive",
        severity,
        why or f"{c} is a price: above 0 (0 and negatives are feed errors)",
        columns=(c,),
        gx="ExpectColumnValuesToBeBetween",
        kwargs={"column": c, "min_value": 0, "strict_min": True},
        failing=_mask(_between(c, 0.0, strict_lo=True)),
        show=(c,),
    )


def _range(name: str, c: str, lo: float | None, hi: float | None, why: str, severity: Severity = "error") -> Expectation:
    kwargs: dict[str, object] = {"column": c}
    if lo is not None:
        kwargs["min_value"] = lo
    if hi is not None:
        kwargs["max_value"] = hi
    return Expectation(
        name, severity, why, columns=(c,), gx="ExpectColumnValuesToBeBetween", kwargs=kwargs,
        failing=_mask(_between(c, None if lo is None else float(lo), None if hi is None else float(hi))), show=(c,),
    )


def _ge(name: str, a: str, b: str, why: str, severity: Severity = "error") -> Expectation:
    return Expectation(
        name,
        severity,
        why,
        columns=(a, b),
        gx="ExpectColumnPairValuesAToBeGreaterThanB",
        kwargs={"column_A": a, "column_B": b, "or_equal": True, "ignore_row_if": "either_value_is_missing"},
        failing=_mask(_pair_lt(a, b)),
        show=(a, b),
    )


def _finite(name: str, cols: tuple[str, ...], why: str) -> Expectation:
    # GX on pandas sees NaN as null and lets it pass range checks: finiteness is checked in polars.
    return Expectation(name, "error", why, columns=cols, failing=_mask(_not_finite(cols)), show=cols)


def _raw_keys(keys: tuple[str, ...], why: str = "") -> list[Expectation]:
    """A raw table's key checks: two different rows for one key block (which one is right?); an
    identical copy of a row is a vendor repeating itself, so the copy is quarantined and one loads."""
    return [
        Expectation(
            "keys_unique",
            "error",
            why or f"the primary key ({', '.join(keys)}) identifies one row; two different rows for one key mean "
            "the source contradicts itself (which one is right?): broken data",
            columns=keys,
            failing=_keys_conflicting(keys),
            show=("versions",),
        ),
        Expectation(
            "rows_not_repeated",
            "quarantine",
            "a row repeated identically (every column equal) is one row sent twice: the copies are "
            "quarantined and the first loads",
            columns=keys,
            failing=_repeated(keys),
            reason="an identical copy of an earlier row",
        ),
    ]


def _plausible_prices(cols: tuple[str, ...]) -> Expectation:
    def build(schema: pl.Schema) -> pl.Expr:
        # <= 0 is the *_positive checks' business, NaN and infinity prices_finite's.
        return pl.any_horizontal(
            [
                (pl.col(c) > 0) & pl.col(c).is_finite() & ((pl.col(c) < MIN_PRICE) | (pl.col(c) > MAX_PRICE))
                for c in cols
                if schema[c].is_float()
            ]
            or [pl.lit(False)]
        )

    return Expectation(
        "prices_plausible",
        "error",
        f"a price above 0 lies within {MIN_PRICE:.6f}..{MAX_PRICE:,.0f}: beyond that it is a broken value "
        "(1e308 overflows the returns computed from it), not a quote",
        columns=cols,
        failing=_mask(build),
        show=cols,
    )


def _in_set(name: str, c: str, values: Callable[[Params], list[str]] | tuple[str, ...], why: str) -> Expectation:
    def kwargs(df: pl.DataFrame, params: Params) -> dict[str, object]:
        return {"column": c, "value_set": list(values(params) if callable(values) else values)}

    def failing(df: pl.DataFrame, params: Params) -> pl.DataFrame:
        allowed = list(values(params) if callable(values) else values)
        return df.select((pl.col(c).is_not_null() & ~pl.col(c).is_in(allowed)).alias("failed"))

    return Expectation(name, "error", why, columns=(c,), gx="ExpectColumnValuesToBeInSet", kwargs=kwargs, failing=failing, show=(c,))


NOT_A_SESSION = "not an NYSE session"
AFTER_AS_OF = "after the load's as-of session"


def _session_checks(c: str = "session_date", *, raw: bool = False) -> list[Expectation]:
    # Raw rows on a non-session or after the as-of are vendor quirks (Yahoo's ^VIX has rows on NYSE
    # holidays; a run before the close gets a partial bar for today): one such row is quarantined
    # with its reason, and the rest of the night loads. A mart row there is our own bug: it blocks.
    # The future check comes first: a row past the calendar's end fails both, and "after the as-of"
    # is the better name for it.
    why_future = f"{c} is not after the load's as-of session: nobody has tomorrow's close" + (
        " (a bar for today fetched before the close is partial)" if raw else ""
    )
    why_calendar = f"{c} is an NYSE session (exchange_calendars XNYS)" + (
        ": a session-keyed warehouse has no place for a vendor's row on a day the NYSE was closed (a ^VIX row on "
        "Memorial Day, a weekend row from a time-zone slip)"
        if raw else ": a weekend or holiday row here comes from a bug in a transform"
    )
    return [
        _not_after_as_of_check("session_not_future", c, "quarantine" if raw else "error", why_future, reason=AFTER_AS_OF),
        Expectation(
            "session_on_calendar",
            "quarantine" if raw else "error",
            why_calendar,
            columns=(c,),
            gx="ExpectColumnValuesToBeInSet",
            kwargs=lambda df, p: {"column": c, "value_set": _sessions_between(df, c)},
            failing=_on_calendar(c),
            show=(c,),
            reason=NOT_A_SESSION,
        ),
    ]


def _rows_present(what: str) -> Expectation:
    return Expectation(
        "rows_present",
        "warning",
        f"a load without {what} brought nothing for this table; the completeness gate decides whether the night is held",
        gx="ExpectTableRowCountToBeBetween",
        kwargs={"min_value": 1},
    )


# raw suites ---------------------------------------------------------------------------------------

PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")


def _bars_suite(table: str, *, equities: bool) -> Suite:
    keys = ("symbol", "session_date")
    required = ("symbol", "session_date", "close") + (("adj_close",) if equities else ())
    exps: list[Expectation] = [
        *_schema_checks(BARS_SCHEMA),
        _rows_present("bars"),
        *_raw_keys(keys),
        *(_not_null(c, BARS_SCHEMA) for c in required),
        _finite(
            "prices_finite",
            PRICE_COLUMNS,
            "NaN or infinite prices are feed errors (yfinance fills gaps with NaN); a missing open/high/low must be null",
        ),
        *(_positive(c) for c in PRICE_COLUMNS),
        _plausible_prices(PRICE_COLUMNS),
        _ge("high_ge_low", "high", "low", "a bar's high is at least its low"),
        _ge("high_ge_open", "high", "open", "the open is inside the day's range"),
        _ge("open_ge_low", "open", "low", "the open is inside the day's range"),
        _ge("high_ge_close", "high", "close", "the close is inside the day's range"),
        _ge("close_ge_low", "close", "low", "the close is inside the day's range"),
        *_session_checks(raw=True),
    ]
    if equities:
        # Indexes are exempt: their volume means nothing and ^VIX has none, and a volume rule must
        # never erase index rows.
        exps.append(_range("volume_non_negative", "volume", 0, None, "a share count cannot be negative"))
        exps.append(
            _range(
                "volume_plausible", "volume", None, MAX_VOLUME_SHARES,
                f"at most {MAX_VOLUME_SHARES:,} shares in a session: more is a broken value (a unit slip, a float "
                "read as a share count), not trading",
            )
        )
    exps += [
        Expectation(
            "price_jump_100x",
            "warning",
            "a close 100x or 1/100 the previous close (stored or in the batch): Yahoo's unit slips and missed splits",
            columns=("symbol", "session_date", "close"),
            failing=_price_jump,
            show=("close",),
        ),
        Expectation(
            "stale_symbol",
            "warning",
            f"the same close with no volume for {STALE_SESSIONS}+ sessions in a row: a halted or delisted symbol Yahoo forward-fills",
            columns=("symbol", "session_date", "close", "volume"),
            failing=_stale,
            show=("close", "volume"),
        ),
        Expectation(
            "big_revision",
            "warning",
            f"a re-fetch moves a stored close or adj_close by more than {BIG_REVISION_FRACTION:.0%}: Yahoo revised history",
            columns=("symbol", "session_date", "close", "adj_close"),
            failing=_big_revision,
            show=("close", "adj_close"),
        ),
    ]
    grain = "one row per index and session" if not equities else "one row per constituent and session"
    return Suite(table, grain, keys, BARS_SCHEMA, required, tuple(exps))


HOLDINGS_VALUES = ("market_value_usd", "shares", "price_usd")


def _holdings_suite() -> Suite:
    keys = ("universe", "as_of_date", "symbol")
    required = ("universe", "as_of_date", "symbol", "ticker")
    exps = [
        *_schema_checks(HOLDINGS_SCHEMA),
        *_raw_keys(keys),
        *(_not_null(c, HOLDINGS_SCHEMA) for c in required),
        _in_set("universe_known", "universe", lambda p: sorted(p.universes), "holdings belong to a configured universe"),
        _not_after_as_of_check(
            "as_of_not_future",
            "as_of_date",
            "quarantine",
            "a holdings snapshot is not dated after the load's as-of session: a membership cannot be known "
            "before its date (the whole snapshot is quarantined; the stored membership stays)",
            reason="snapshot dated after the load's as-of session",
        ),
        _in_set("asset_class_equity", "asset_class", ("Equity",), "the source keeps equity lines only; cash and futures go to dq.quarantine as excluded"),
        _range("weight_pct_in_range", "weight_pct", 0, 100, "a member's weight is a percentage of the fund: 0..100"),
        _finite("weight_finite", ("weight_pct",), "a NaN weight would poison the cohort weight shares"),
        _finite(
            "values_finite",
            HOLDINGS_VALUES,
            "NaN or infinity in a member's market value, shares or price is not a value (a missing one must be null); "
            "market values weigh the members",
        ),
        Expectation(
            "weight_sum_band",
            "error",
            f"the equity lines of a snapshot hold {WEIGHT_SUM_MIN_PCT:g}-{WEIGHT_SUM_MAX_PCT:g}% of the fund "
            "(real files: about 99.2-99.95%); outside, lines are missing or doubled",
            columns=("universe", "as_of_date", "weight_pct"),
            failing=_weight_sum,
            show=("universe", "as_of_date"),
            per_group=True,
        ),
        Expectation(
            "member_count_band",
            "error",
            "a snapshot has a plausible number of members for its universe (settings Universe.min_members..max_members)",
            columns=("universe", "as_of_date", "symbol"),
            failing=_member_count,
            show=("universe", "as_of_date"),
            per_group=True,
        ),
        _positive("price_usd", "warning", "a member's price in the holdings file is above 0"),
    ]
    return Suite("raw.holdings", "one row per universe, snapshot date and member", keys, HOLDINGS_SCHEMA, required, tuple(exps))


FUNDAMENTAL_VALUES = ("net_income_common_usd", "net_income_usd", "diluted_eps", "revenue_usd")


def _fundamentals_suite() -> Suite:
    keys = ("symbol", "period_end_date")
    required = keys
    exps = [
        *_schema_checks(FUNDAMENTALS_SCHEMA),
        *_raw_keys(
            keys,
            "one row per company and quarter: two different versions of a quarter (which is right?) would be "
            "counted twice in TTM net income",
        ),
        *(_not_null(c, FUNDAMENTALS_SCHEMA) for c in required),
        _not_after_as_of_check(
            "period_end_past",
            "period_end_date",
            "quarantine",
            "a fiscal quarter that has not ended by the load's as-of session cannot have reported results "
            "(that row is quarantined; the company's other quarters load)",
            reason="quarter ends after the load's as-of session",
        ),
        _finite("values_finite", FUNDAMENTAL_VALUES, "NaN or infinity is not a value; a missing figure must be null"),
        _ge("report_after_period_end", "report_date", "period_end_date", "results are reported after the quarter ends", "warning"),
        _not_after_as_of_check(
            "report_date_not_future",
            "report_date",
            "warning",
            "a report date after as_of is an estimate, not a report (cohort rule v1 then falls back to period_end + 45 days)",
        ),
        Expectation(
            "quarters_spaced",
            "warning",
            f"period ends of one company less than {MIN_QUARTER_SPACING_DAYS} days apart: the same quarter twice or a stub period",
            columns=("symbol", "period_end_date"),
            failing=_quarters_spaced,
            show=("period_end_date",),
        ),
    ]
    return Suite("raw.fundamentals", "one row per company and fiscal quarter", keys, FUNDAMENTALS_SCHEMA, required, tuple(exps))


def _actions_suite() -> Suite:
    keys = ("symbol", "ex_date", "action")
    required = ("symbol", "ex_date", "action", "value")
    exps = [
        *_schema_checks(ACTIONS_SCHEMA),
        *_raw_keys(keys),
        *(_not_null(c, ACTIONS_SCHEMA) for c in required),
        _in_set("action_known", "action", ACTIONS, "actions are 'split' or 'dividend'"),
        _positive("value", why="a split ratio or a dividend per share is above 0"),
        _finite("value_finite", ("value",), "NaN or infinity is not a ratio or an amount"),
        _not_after_as_of_check(
            "ex_date_not_future", "ex_date", "warning", "an announced action with a future ex-date is not history yet"
        ),
    ]
    return Suite("raw.corporate_actions", "one row per company, ex-date and action", keys, ACTIONS_SCHEMA, required, tuple(exps))


# mart suites --------------------------------------------------------------------------------------

# A mart's grain, key, columns and which columns are never null are declared once, in the
# registry of datasets: its suite is made from that declaration plus the checks below.
def _declared(table: str):
    from ground.registry import get

    return get(table)


def _mart(table: str, extra: list[Expectation]) -> Suite:
    d = _declared(table)
    schema, keys = d.schema, d.key
    required = tuple(c.name for c in d.columns if not c.nullable)
    exps = [*_schema_checks(schema), _rows_present("rows"), _keys(keys), *(_not_null(c, schema) for c in required), *extra]
    return Suite(table, d.grain, keys, schema, required, tuple(exps))


def _returns_above_minus_one(cols: tuple[str, ...]) -> list[Expectation]:
    return [_range(f"{c}_ge_minus_1", c, -1, None, f"{c} is a price return: a price cannot fall below 0, so it is >= -1") for c in cols]


def _gt(name: str, a: str, b: str, why: str) -> Expectation:
    """a > b strictly where both are present (a null level or date is another check's business)."""
    return Expectation(
        name,
        "error",
        why,
        columns=(a, b),
        gx="ExpectColumnPairValuesAToBeGreaterThanB",
        kwargs={"column_A": a, "column_B": b, "or_equal": False, "ignore_row_if": "either_value_is_missing"},
        failing=_mask(lambda schema: _present(a, schema) & _present(b, schema) & (pl.col(a) <= pl.col(b))),
        show=(a, b),
    )


def _index_level_checks() -> list[Expectation]:
    """The bounded-window columns of marts.index_daily (transforms/index_levels.py)."""
    return [
        _gt("support_below_close", "close", "support_level", "support is a swing low strictly below the close"),
        _gt("resistance_above_close", "resistance_level", "close", "resistance is a swing high strictly above the close"),
        _gt(
            "support_date_before_session", "session_date", "support_date",
            "a swing is confirmed by later sessions: it lies before the session that uses it (no look-ahead)",
        ),
        _gt(
            "resistance_date_before_session", "session_date", "resistance_date",
            "a swing is confirmed by later sessions: it lies before the session that uses it (no look-ahead)",
        ),
    ]


def _index_performance_suite() -> Suite:
    return _mart(
        "marts.index_performance",
        [
            _finite("returns_finite", ("anchor_close", "close", "return_since_anchor"), "closes and returns are finite numbers"),
            _positive("close"),
            _positive("anchor_close"),
            *_returns_above_minus_one(("return_since_anchor",)),
            _ge("session_ge_anchor", "session_date", "anchor_date", "performance since an anchor starts at the anchor session"),
            *_session_checks(),
        ],
    )


def _mart_suites() -> list[Suite]:
    idx_returns = ("ret_1d", "ytd_return", "drawdown_from_record", "ret_5d")
    idx_levels = ("close", "prev_year_close", "rsi_14", "sma_50", "sma_200", "high_52w", "low_52w", "change_5d", "support_level", "resistance_level")
    rel_returns = ("lead_ret", "lag_ret", "spread", "lead_ytd_return", "lag_ytd_return", "ytd_spread")
    perf_returns = ("return_equal_weight", "return_cap_weight", "return_median")
    sector_returns = ("return_equal_weight", "return_cap_weight")
    return [
        _mart(
            "marts.index_daily",
            [
                _finite("returns_finite", idx_returns + idx_levels, "returns and levels are finite numbers (null where undefined)"),
                _positive("close"),
                _positive("prev_year_close", why="prev_year_close is a close, the YTD base: above 0 where present"),
                *_returns_above_minus_one(("ret_1d", "ytd_return", "ret_5d")),
                *_index_level_checks(),
                _range("drawdown_in_range", "drawdown_from_record", -1, 0, "close / record close - 1 lies in [-1, 0]"),
                _ge("record_ge_close", "record_close", "close", "the record close so far includes today's close"),
                _finite("rsi_averages_finite", ("record_close", "rsi_avg_gain", "rsi_avg_loss"), "the carried running figures are finite"),
                _range("rsi_in_range", "rsi_14", 0, 100, "RSI is bounded to 0..100 by construction"),
                _range("records_ytd_non_negative", "records_ytd", 0, None, "a count of record closes"),
                *_session_checks(),
            ],
        ),
        _mart(
            "marts.relative_performance",
            [
                _finite("returns_finite", rel_returns, "returns and spreads are finite numbers (null where undefined)"),
                _finite("relative_level_finite", ("relative_level",), "the relative level is a finite number: a night continues from it"),
                _positive("relative_level", why="relative_level is a product of ratios of price growth: above 0"),
                _range("streak_non_negative", "streak", 0, None, "a streak counts sessions: 0 or more"),
                Expectation(
                    "streak_le_sessions",
                    "error",
                    "a streak grows by at most one session per session (so it never exceeds the pair's sessions so far)",
                    columns=("lead_symbol", "lag_symbol", "session_date", "streak"),
                    failing=_streak_le_sessions,
                    show=("streak",),
                ),
                Expectation(
                    "streak_matches_outperformed",
                    "error",
                    "streak > 0 exactly on sessions where the lead outperformed (any other session resets it to 0)",
                    columns=("outperformed", "streak"),
                    failing=_mask(pl.col("outperformed") != (pl.col("streak") > 0)),
                    show=("outperformed", "streak"),
                ),
                *_session_checks(),
            ],
        ),
        _mart(
            "marts.cohort_composition",
            [
                _in_set("cohort_known", "cohort", COHORTS, "cohorts of rule v1: profitable, unprofitable, no_data"),
                _range("members_non_negative", "members", 0, None, "a member count"),
                _range("share_in_range", "share_of_members", 0, 1, "a share of members is a fraction in [0, 1]"),
                _finite("shares_finite", ("share_of_members", "share_of_weight"), "shares are finite numbers"),
                Expectation(
                    "shares_sum_to_one",
                    "error",
                    f"the cohorts of a universe and session hold all its members: shares sum to 1 (+/- {SHARE_SUM_TOLERANCE:g})",
                    columns=("universe", "session_date", "share_of_members"),
                    failing=_share_sum("share_of_members", allow_all_null=False),
                    show=("universe", "session_date"),
                    per_group=True,
                ),
                Expectation(
                    "weight_shares_sum_to_one",
                    "warning",
                    "where weights are known, the cohorts' weight shares sum to 1",
                    columns=("universe", "session_date", "share_of_weight"),
                    failing=_share_sum("share_of_weight", allow_all_null=True),
                    show=("universe", "session_date"),
                    per_group=True,
                ),
                *_session_checks(),
            ],
        ),
        _mart(
            "marts.cohort_performance",
            [
                _in_set(
                    "cohort_known", "cohort", (*COHORTS, "all"),
                    "cohorts of rule v1 (profitable, unprofitable, no_data) and the whole universe (all)",
                ),
                _range("members_non_negative", "members", 0, None, "a member count"),
                _ge("members_ge_priced", "members", "priced", "priced members are among the members"),
                _ge("session_ge_anchor", "session_date", "anchor_date", "performance since an anchor starts at the anchor session"),
                _finite("returns_finite", perf_returns, "returns are finite numbers (null where no member is priced)"),
                *_returns_above_minus_one(perf_returns),
                *_session_checks(),
            ],
        ),
        _mart(
            "marts.sector_daily",
            [
                _range("members_non_negative", "members", 0, None, "a member count"),
                _finite("returns_finite", sector_returns, "returns are finite numbers (null where undefined)"),
                *_returns_above_minus_one(sector_returns),
                *_session_checks(),
            ],
        ),
        _mart(
            "marts.sector_performance",
            [
                _finite("returns_finite", sector_returns, "returns are finite numbers"),
                *_returns_above_minus_one(sector_returns),
                _ge("session_ge_anchor", "session_date", "anchor_date", "performance since an anchor starts at the anchor session"),
                *_session_checks(),
            ],
        ),
        _index_performance_suite(),
    ]


def _build() -> dict[str, Suite]:
    suites = [
        _bars_suite("raw.index_bars", equities=False),
        _bars_suite("raw.equity_bars", equities=True),
        _holdings_suite(),
        _fundamentals_suite(),
        _actions_suite(),
        *_mart_suites(),
    ]
    out = {}
    for s in suites:
        names = s.names()
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise AssertionError(f"{s.table}: expectation names must be unique, repeated: {dupes}")
        out[s.table] = s
    return out


SUITES: dict[str, Suite] = _build()


def suite(table: str) -> Suite:
    try:
        return SUITES[table]
    except KeyError:
        raise KeyError(f"no expectation suite for {table!r}; suites: {', '.join(SUITES)}") from None


def expectation_names() -> list[str]:
    """Every expectation name of every suite: what settings.dq_severity may name."""
    return sorted({e.name for s in SUITES.values() for e in s.expectations})


def quarantinable_names() -> list[str]:
    """Expectations that may be set to `quarantine`: those of the raw tables that name the rows they
    blame. A table-level check (a missing column, an empty frame) has no row to set aside, and
    marts are derived (a quarantine-level finding there blocks, see Suite.is_raw)."""
    raw = [e for s in SUITES.values() if s.is_raw for e in s.expectations]
    rowless = {e.name for e in raw if e.failing is None}
    return sorted({e.name for e in raw if e.failing is not None} - rowless)


def check_overrides(overrides: Mapping[str, str]) -> dict[str, Severity]:
    """Validate severity overrides (SMALLCAPS_DQ_SEVERITY); a typo must not silently do nothing."""
    valid = expectation_names()
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown expectation(s) in dq_severity: {', '.join(unknown)}; valid names: {', '.join(valid)}"
        )
    bad = {k: v for k, v in overrides.items() if v not in SEVERITIES}
    if bad:
        raise ValueError(f"dq_severity values must be one of {', '.join(map(repr, SEVERITIES))}, got {bad}")
    can = set(quarantinable_names())
    rowless = sorted(k for k, v in overrides.items() if v == "quarantine" and k not in can)
    if rowless:
        raise ValueError(
            f"dq_severity: {', '.join(rowless)} cannot be 'quarantine': only a raw table's row-level expectations "
            f"can set rows aside ({', '.join(sorted(can))}); use 'error' or 'warning'"
        )
    return dict(overrides)  # type: ignore[arg-type]
