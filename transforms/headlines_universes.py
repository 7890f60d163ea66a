"""The universe fact families of `marts.headlines`, one function each: the cohort shares
(`cohort_shares`, from `marts.cohort_composition`), unprofitable vs profitable since an anchor
(`cohort_spread`) and one universe vs the other since an anchor (`universe_spread`), both from
`marts.cohort_performance`, and the best and worst sector of the day (`sector_best` /
`sector_worst`, from `marts.sector_daily`). Cohort and sector figures use equal-weight returns.

Pure: LazyFrame in, LazyFrame out (`transforms.headlines` assembles and ranks the families).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import polars as pl

from transforms.headlines_text import a_bp, bp, bp_expr, fact_rows, order_of, pct, rounded, share, since_phrase


def universe_facts(
    nights: pl.LazyFrame,
    cohort_composition: pl.LazyFrame,
    cohort_performance: pl.LazyFrame,
    sector_daily: pl.LazyFrame,
    anchors: Sequence[str],
    universe_names: Mapping[str, str],
    universe_order: list[str],
    universe_pair: tuple[str, str],
) -> list[pl.LazyFrame]:
    """Every cohort and sector family."""
    perf = cohort_nights(nights, cohort_performance, anchors)
    return [
        cohort_shares_facts(nights, cohort_composition, universe_names, universe_order),
        cohort_spread_facts(perf, anchors, universe_names, universe_order),
        universe_spread_facts(perf, anchors, universe_names, universe_pair),
        *sector_facts(nights, sector_daily, universe_names, universe_order),
    ]


def cohort_nights(nights: pl.LazyFrame, cohort_performance: pl.LazyFrame, anchors: Sequence[str]) -> pl.LazyFrame:
    """cohort_performance's rows of the nights for the configured anchors."""
    return (
        cohort_performance.filter(pl.col("anchor").is_in(list(anchors)))
        .join(nights, left_on="session_date", right_on="as_of_date", how="semi")
        .select("universe", "anchor", "cohort", "session_date", "anchor_date", "members", "return_equal_weight")
    )


def cohort_shares_facts(
    nights: pl.LazyFrame,
    cohort_composition: pl.LazyFrame,
    universe_names: Mapping[str, str],
    universe_order: list[str],
) -> pl.LazyFrame:
    """`cohort_shares`: profitable, unprofitable and no-data shares of a universe's members."""
    composition = (
        cohort_composition.join(nights, left_on="session_date", right_on="as_of_date", how="semi")
        .group_by("universe", "session_date")
        .agg(
            members=pl.col("members").sum(),
            rule_version=pl.col("rule_version").first(),
            # The mart has a row for every cohort (members 0 when empty); a missing one would read as 0 too.
            **{
                f"share_{c}": pl.col("share_of_members").filter(pl.col("cohort") == c).sum()
                for c in ("profitable", "unprofitable", "no_data")
            },
        )
        .with_columns(as_of_date=pl.col("session_date"), _order=order_of("universe", universe_order))
    )

    def shares(r: dict) -> str:
        return (
            f"{share(r['share_profitable'])} of {universe_names.get(r['universe'], r['universe'])} members are "
            f"profitable, {share(r['share_unprofitable'])} unprofitable, {share(r['share_no_data'])} without "
            f"earnings data ({r['members']:,} members, cohort rule {r['rule_version']})"
        )

    return fact_rows(
        composition,
        family="cohort_shares", key=pl.col("universe"), order=pl.col("_order"), template=shares,
        fields=[
            "universe", "session_date", "members", "share_profitable", "share_unprofitable",
            "share_no_data", "rule_version",
        ],
        value=pl.col("share_profitable"), unit="fraction", table="marts.cohort_composition",
    )  # fmt: skip


def cohort_spread_facts(
    perf: pl.LazyFrame,
    anchors: Sequence[str],
    universe_names: Mapping[str, str],
    universe_order: list[str],
) -> pl.LazyFrame:
    """`cohort_spread`: unprofitable vs profitable members since each anchor, gap in bp."""
    anchor_order = {a: i for i, a in enumerate(anchors)}

    def side(cohort: str, prefix: str) -> pl.LazyFrame:
        return perf.filter(pl.col("cohort") == cohort, pl.col("return_equal_weight").is_not_null()).select(
            "universe", "anchor", "session_date", "anchor_date",
            **{f"{prefix}_return": pl.col("return_equal_weight"), f"{prefix}_members": pl.col("members")},
        )  # fmt: skip

    spread = (
        side("unprofitable", "unprofitable")
        .join(side("profitable", "profitable"), on=["universe", "anchor", "session_date", "anchor_date"])
        .with_columns(
            as_of_date=pl.col("session_date"),
            gap=pl.col("unprofitable_return") - pl.col("profitable_return"),
            _order=order_of("universe", universe_order) * 100
            + pl.col("anchor").replace_strict(anchor_order, default=99, return_dtype=pl.Int32),
        )
    )

    def cohort_spread(r: dict) -> str:
        gap = r["gap"]
        gap_bp = rounded(gap, 0, scale=10_000)
        tail = (
            f"{a_bp(gap)} gap"
            if gap_bp > 0
            else "no gap"
            if gap_bp == 0
            else f"{a_bp(gap)} gap in favour of profitable ones"
        )
        return (
            f"{universe_names.get(r['universe'], r['universe'])}: unprofitable members "
            f"{pct(r['unprofitable_return'])} {since_phrase(r['anchor'], r['anchor_date'])} vs "
            f"{pct(r['profitable_return'])} for profitable ones, {tail}"
        )

    return fact_rows(
        spread,
        family="cohort_spread", key=pl.col("universe") + ":" + pl.col("anchor"), order=pl.col("_order"),
        template=cohort_spread,
        fields=[
            "universe", "anchor", "session_date", "anchor_date", "unprofitable_return", "unprofitable_members",
            "profitable_return", "profitable_members", "gap",
        ],
        value=bp_expr("gap"), unit="bp", table="marts.cohort_performance",
    )  # fmt: skip


def universe_spread_facts(
    perf: pl.LazyFrame,
    anchors: Sequence[str],
    universe_names: Mapping[str, str],
    universe_pair: tuple[str, str],
) -> pl.LazyFrame:
    """`universe_spread`: all members of the first universe vs the second's since each anchor."""
    anchor_order = {a: i for i, a in enumerate(anchors)}
    first, second = universe_pair

    def whole(universe: str, prefix: str) -> pl.LazyFrame:
        return perf.filter(
            pl.col("universe") == universe, pl.col("cohort") == "all", pl.col("return_equal_weight").is_not_null()
        ).select(
            "anchor", "session_date",
            **{
                f"{prefix}_universe": pl.col("universe"), f"{prefix}_anchor_date": pl.col("anchor_date"),
                f"{prefix}_return": pl.col("return_equal_weight"), f"{prefix}_members": pl.col("members"),
            },
        )  # fmt: skip

    universes = (
        whole(first, "first")
        .join(whole(second, "second"), on=["anchor", "session_date"])
        .with_columns(
            as_of_date=pl.col("session_date"),
            gap=pl.col("first_return") - pl.col("second_return"),
            _order=pl.col("anchor").replace_strict(anchor_order, default=99, return_dtype=pl.Int32),
        )
    )

    def universe_spread(r: dict) -> str:
        gap = r["gap"]
        tail = "level" if rounded(gap, 0, scale=10_000) == 0 else f"{bp(gap)} bp {'ahead' if gap > 0 else 'behind'}"
        first_name = universe_names.get(r["first_universe"], r["first_universe"])
        second_name = universe_names.get(r["second_universe"], r["second_universe"])
        return (
            f"{first_name} members {pct(r['first_return'])} "
            f"{since_phrase(r['anchor'], r['first_anchor_date'])} vs {pct(r['second_return'])} for "
            f"{second_name} members (equal weight), {tail}"
        )

    return fact_rows(
        universes,
        family="universe_spread", key=pl.col("anchor"), order=pl.col("_order"), template=universe_spread,
        fields=[
            "anchor", "session_date", "first_universe", "first_anchor_date", "first_return", "first_members",
            "second_universe", "second_anchor_date", "second_return", "second_members", "gap",
        ],
        value=bp_expr("gap"), unit="bp", table="marts.cohort_performance",
    )  # fmt: skip


def sector_facts(
    nights: pl.LazyFrame,
    sector_daily: pl.LazyFrame,
    universe_names: Mapping[str, str],
    universe_order: list[str],
) -> list[pl.LazyFrame]:
    """`sector_best` and `sector_worst`: one family, read from both ends of the same ranking."""
    day = sector_daily.filter(pl.col("return_equal_weight").is_not_null()).join(
        nights, left_on="session_date", right_on="as_of_date", how="semi"
    )
    # Best and worst only mean something with at least two sectors; ties go to the sector name.
    ret = pl.col("return_equal_weight")
    ranked = (
        day.sort("universe", "session_date", "sector")
        .with_columns(
            sectors=pl.len().over("universe", "session_date"),
            _best=ret.rank("ordinal", descending=True).over("universe", "session_date"),
            _worst=ret.rank("ordinal").over("universe", "session_date"),
        )
        .filter(pl.col("sectors") >= 2)
    )

    out = []
    for family, flag, word in (("sector_best", "_best", "Best"), ("sector_worst", "_worst", "Worst")):

        def sentence(r: dict, word: str = word) -> str:
            u = universe_names.get(r["universe"], r["universe"])
            return (
                f"{word} {u} sector of the day: {r['sector']} {pct(r['return_equal_weight'])} "
                f"(equal weight, {r['members']:,} members; {r['sectors']} sectors)"
            )

        rows = ranked.filter(pl.col(flag) == 1).with_columns(
            as_of_date=pl.col("session_date"), _order=order_of("universe", universe_order)
        )
        out.append(
            fact_rows(
                rows,
                family=family, key=pl.col("universe"), order=pl.col("_order"), template=sentence,
                fields=["universe", "sector", "session_date", "members", "return_equal_weight", "sectors"],
                value=pl.col("return_equal_weight"), unit="fraction", table="marts.sector_daily",
            )  # fmt: skip
        )
    return out
