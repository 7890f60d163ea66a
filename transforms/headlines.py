"""`marts.headlines`: the facts a strategist leads with, as sentences, for each night.

Grain: one row per as_of_date and fact_key. Every sentence is made from mart rows of that night
(`session_date == as_of_date`), plus the history those marts already carry; `inputs` holds those
figures as JSON so a reader can check the sentence. A fact whose inputs are absent that night is
skipped, never invented. Pure: LazyFrame in, LazyFrame out.

Speed: every fact family is one vectorized polars query over all nights at once (joins on the
night's date). Python runs only to format the sentences of the output rows (thousands separators
and ordinals are not polars expressions), via `map_batches` over those rows.

Reading order (`rank`) within a night: first the five facts a market note opens with, when the
night has them (`_lead_keys`): the main index's record or distance from it, the main pair's
streak, its YTD comparison, the main universe's cohort gap since the first dated anchor, its
cohort shares. Then every other fact, by family in this order, then by the configured order of
symbols, pairs, universes and anchors:
  index_record:SYM / index_from_record:SYM   record close, or the distance from the record
  streak:LEAD/LAG                            outperformance streak and longest_since
  ytd:SYM                                    YTD return per index
  ytd_spread:LEAD/LAG                        YTD return of a pair, spread in bp
  index_since:LEAD/LAG:ANCHOR                the first pair's own returns since each dated anchor, in bp
  cohort_shares:UNIVERSE                     profitable / unprofitable / no data shares
  cohort_spread:UNIVERSE:ANCHOR              unprofitable vs profitable since an anchor, in bp
  universe_spread:ANCHOR                     Russell 2000 members vs S&P 600 members since an anchor
  rsi:SYM                                    only when RSI-14 is above 70 or below 30
  sector_best:UNIVERSE / sector_worst:UNIVERSE
  volatility:SYM                             VIX level and change over 5 sessions (change_5d, ret_5d)

Numbers in sentences are rounded half away from zero by one helper (`rounded`); "a" or "an"
before a number follows how it is said ("an 11th", "an 8-session", "an 800 bp").

The families live beside this module, one function each: `headlines_index` (index_record,
index_from_record, ytd, rsi, volatility), `headlines_pairs` (streak, ytd_spread, index_since),
`headlines_universes` (cohort_shares, cohort_spread, universe_spread, sector_best / sector_worst);
`headlines_text` holds the rounding and wording they share. This module assembles and ranks them.
"""

from __future__ import annotations

from datetime import date
from typing import Collection, Mapping, Sequence

import polars as pl

from transforms.headlines_index import index_facts
from transforms.headlines_pairs import pair_facts
# The wording helpers are re-exported: the report and the tests format figures with them.
from transforms.headlines_text import (
    DEFINITIONS,
    a_bp,
    a_ordinal,
    article,
    bp,
    bp_value,
    number,
    ordinal,
    pct,
    pct_abs,
    points,
    rounded,
    share,
)
from transforms.headlines_universes import universe_facts

__all__ = [
    "DEFINITIONS", "HEADLINES_SCHEMA", "INDEX_NAMES", "UNIVERSE_NAMES", "a_bp", "a_ordinal", "article", "bp", "bp_value",
    "headlines", "number", "ordinal", "pct", "pct_abs", "points", "rounded", "share",
]  # fmt: skip

HEADLINES_SCHEMA: dict[str, pl.DataType] = {
    "as_of_date": pl.Date,
    "fact_key": pl.String,
    "rank": pl.Int32,
    "sentence": pl.String,
    "value": pl.Float64,
    "unit": pl.String,
    "definition": pl.String,
    "inputs": pl.String,
}

UNIVERSE_NAMES: dict[str, str] = {"russell2000": "Russell 2000", "sp600": "S&P 600"}
# Friendly names of the index symbols, for the headlines and the report.
INDEX_NAMES: dict[str, str] = {
    "^RUT": "Russell 2000",
    "^GSPC": "S&P 500",
    "^SP600": "S&P SmallCap 600",
    "^IXIC": "Nasdaq Composite",
    "^VIX": "VIX",
    "^NDX": "Nasdaq-100",
    "^DJI": "Dow Jones Industrial Average",
}


def headlines(
    as_of_dates: Sequence[date],
    index_daily: pl.LazyFrame,
    index_records: pl.LazyFrame,
    relative_performance: pl.LazyFrame,
    cohort_composition: pl.LazyFrame,
    cohort_performance: pl.LazyFrame,
    sector_daily: pl.LazyFrame,
    *,
    pairs: Sequence[tuple[str, str]],
    anchors: Sequence[str],
    names: Mapping[str, str],
    universe_names: Mapping[str, str] = UNIVERSE_NAMES,
    volatility_symbols: Collection[str] = ("^VIX",),
    universe_pair: tuple[str, str] = ("russell2000", "sp600"),
    index_performance: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """marts.headlines for every night in `as_of_dates` (any number of sessions).

    `names` maps index symbols to friendly names ("^RUT" -> "Russell 2000"); `universe_names` does
    the same for universes. Volatility indexes (`volatility_symbols`) get the volatility line and
    none of the price-index lines (a record or YTD return of the VIX is not a headline).
    `index_performance` (marts.index_performance) gives the `index_since` lines; without it there
    are none.
    """
    nights = pl.LazyFrame(
        {"as_of_date": sorted(set(as_of_dates))}, schema={"as_of_date": pl.Date}
    )
    pair_keys = [(p.lead, p.lag) if hasattr(p, "lead") else tuple(p) for p in pairs]
    vol = list(volatility_symbols)
    symbol_order = list(names)
    universe_order = list(universe_names)

    families = [
        *index_facts(nights, index_daily, index_records, names, vol, symbol_order),
        *pair_facts(nights, index_records, relative_performance, index_performance, pair_keys, names, anchors),
        *universe_facts(
            nights, cohort_composition, cohort_performance, sector_daily, anchors, universe_names, universe_order,
            universe_pair,
        ),
    ]
    lead = _lead_keys(pair_keys, vol, symbol_order, anchors, universe_pair)
    return (
        pl.concat(families, how="vertical")
        .with_columns(_lead=pl.col("fact_key").replace_strict(lead, default=None, return_dtype=pl.Int32))
        .sort("as_of_date", "_lead", "_family", "_order", "fact_key", nulls_last=True)
        .with_columns(rank=(pl.int_range(pl.len()) + 1).over("as_of_date"))
        .select([pl.col(c).cast(t) for c, t in HEADLINES_SCHEMA.items()])
    )


def _lead_keys(
    pair_keys: list[tuple[str, str]],
    vol: list[str],
    symbol_order: list[str],
    anchors: Sequence[str],
    universe_pair: tuple[str, str],
) -> dict[str, int]:
    """The facts a market note opens with, in its order: the main index's record (or its distance
    from it), the main pair's streak, the main pair's YTD comparison, the main universe's cohort gap
    since the first dated anchor, and its cohort shares. fact_key -> position (0..4).

    "Main" is what the settings put first: the first pair (its lead is the main index; without
    pairs, the first price index of `names`), the first universe of `universe_pair`."""
    out: dict[str, int] = {}
    prices = [s for s in symbol_order if s not in vol]
    main = pair_keys[0][0] if pair_keys else (prices[0] if prices else None)
    if main is not None:
        out[f"index_record:{main}"] = 0
        out[f"index_from_record:{main}"] = 0  # one of the two exists on a night
    if pair_keys:
        lead, lag = pair_keys[0]
        out[f"streak:{lead}/{lag}"] = 1
        out[f"ytd_spread:{lead}/{lag}"] = 2
    dated = [a for a in anchors if a not in ("ytd", "1y")]
    anchor = dated[0] if dated else (anchors[0] if anchors else None)
    universe = universe_pair[0]
    if anchor is not None:
        out[f"cohort_spread:{universe}:{anchor}"] = 3
    out[f"cohort_shares:{universe}"] = 4
    return out
