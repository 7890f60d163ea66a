"""The pair fact families of `marts.headlines`, one function each: the outperformance streak
(`streak`), the YTD comparison (`ytd_spread`), and the first pair's returns since each dated anchor
(`index_since`). The first two read `marts.relative_performance`, which carries each side's YTD
return; `index_since` reads `marts.index_performance`.

Pure: LazyFrame in, LazyFrame out (`transforms.headlines` assembles and ranks the families).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import polars as pl

from transforms.headlines_text import a_ordinal, article, bp, bp_expr, display_name, fact_rows, pct, rounded, since_phrase


def pair_facts(
    nights: pl.LazyFrame,
    index_records: pl.LazyFrame,
    relative_performance: pl.LazyFrame,
    index_performance: pl.LazyFrame | None,
    pair_keys: list[tuple[str, str]],
    names: Mapping[str, str],
    anchors: Sequence[str],
) -> list[pl.LazyFrame]:
    """Every pair family; `index_since` only with `index_performance`."""
    if not pair_keys:
        return []
    rel = pair_nights(nights, index_records, relative_performance, pair_keys)
    out = [streak_facts(rel, names), ytd_spread_facts(rel, names)]
    if index_performance is not None:
        out.append(index_since_facts(nights, index_performance, pair_keys[0], names, anchors))
    return out


def pair_nights(
    nights: pl.LazyFrame,
    index_records: pl.LazyFrame,
    relative_performance: pl.LazyFrame,
    pair_keys: list[tuple[str, str]],
) -> pl.LazyFrame:
    """relative_performance's rows of the nights for the configured pairs, with the streak of the
    session before (a streak that ended tonight is named) and where the pair's history starts."""
    starts = index_records.group_by("symbol").agg(pl.col("history_start").min())
    wanted = pl.LazyFrame(
        {
            "lead_symbol": [p[0] for p in pair_keys],
            "lag_symbol": [p[1] for p in pair_keys],
            "_order": list(range(len(pair_keys))),
        },
        schema={"lead_symbol": pl.String, "lag_symbol": pl.String, "_order": pl.Int32},
    )
    pair = ["lead_symbol", "lag_symbol"]
    return (
        relative_performance.join(wanted, on=pair, how="inner")
        .sort(*pair, "session_date")
        .with_columns(
            previous_streak=pl.col("streak").shift(1).over(pair),
            pair_first_session=pl.col("session_date").min().over(pair),
        )
        .join(nights, left_on="session_date", right_on="as_of_date", how="semi")
        .join(starts.rename({"symbol": "lead_symbol", "history_start": "_lead_start"}), on="lead_symbol", how="left")
        .join(starts.rename({"symbol": "lag_symbol", "history_start": "_lag_start"}), on="lag_symbol", how="left")
        .with_columns(
            as_of_date=pl.col("session_date"),
            # The pair's loaded history starts where the later of its two indexes starts
            # (index_records.history_start); its first row comes a session later, when both have a
            # daily return.
            history_start=pl.coalesce(pl.max_horizontal("_lead_start", "_lag_start"), "pair_first_session"),
        )
    )


def _pair_key() -> pl.Expr:
    return pl.col("lead_symbol") + "/" + pl.col("lag_symbol")


def streak_facts(rel: pl.LazyFrame, names: Mapping[str, str]) -> pl.LazyFrame:
    """`streak`: the streak and when one that long was last seen, a new streak, or one that ended."""

    def streak(r: dict) -> str:
        lead, lag = display_name(names, r["lead_symbol"]), display_name(names, r["lag_symbol"])
        rets = f"{pct(r['lead_ret'])} vs {pct(r['lag_ret'])}"
        if pct(r["lead_ret"]) == pct(r["lag_ret"]):
            # One decimal hides the difference that decided the session: say it in bp.
            rets += f", {bp(r['spread'])} bp apart"
        n = r["streak"]
        if n >= 2:
            since = r["longest_since"]
            tail = (
                f"the longest streak since {since.isoformat()}"
                if since is not None
                else f"the longest streak in the loaded history, which starts {r['history_start'].isoformat()}"
            )
            return f"{lead} beat the {lag} for {a_ordinal(n)} straight session, {tail} ({rets})"
        if n == 1:
            return f"{lead} beat the {lag} ({rets}), the first session of a new streak"
        verb = "lagged" if r["spread"] < 0 else "did not beat"
        prev = r["previous_streak"] or 0
        ended = f", ending {article(prev)} {prev}-session winning streak" if prev >= 2 else ""
        return f"{lead} {verb} the {lag} ({rets}){ended}"

    return fact_rows(
        rel,
        family="streak", key=_pair_key(), order=pl.col("_order"), template=streak,
        fields=[
            "lead_symbol", "lag_symbol", "session_date", "lead_ret", "lag_ret", "spread",
            "streak", "longest_since", "previous_streak", "history_start",
        ],
        value=pl.col("streak"), unit="sessions", table="marts.relative_performance",
    )  # fmt: skip


def ytd_spread_facts(rel: pl.LazyFrame, names: Mapping[str, str]) -> pl.LazyFrame:
    """`ytd_spread`: both YTD returns (the mart's lead_ytd_return and lag_ytd_return) and the gap."""
    rel_ytd = rel.filter(pl.col("ytd_spread").is_not_null()).with_columns(
        lead_ytd=pl.col("lead_ytd_return"), lag_ytd=pl.col("lag_ytd_return")
    )

    def ytd_spread(r: dict) -> str:
        lead, lag = display_name(names, r["lead_symbol"]), display_name(names, r["lag_symbol"])
        s = r["ytd_spread"]
        side = "ahead" if s > 0 else "behind" if s < 0 else "level"
        gap = f"{bp(s)} bp {side}" if rounded(s, 0, scale=10_000) != 0 else "level"
        return f"Year to date the {lead} is {pct(r['lead_ytd'])} vs {pct(r['lag_ytd'])} for the {lag}, {gap}"

    return fact_rows(
        rel_ytd,
        family="ytd_spread", key=_pair_key(), order=pl.col("_order"), template=ytd_spread,
        fields=["lead_symbol", "lag_symbol", "session_date", "lead_ytd", "lag_ytd", "ytd_spread"],
        value=bp_expr("ytd_spread"), unit="bp", table="marts.relative_performance",
    )  # fmt: skip


def index_since_facts(
    nights: pl.LazyFrame,
    index_performance: pl.LazyFrame,
    pair: tuple[str, str],
    names: Mapping[str, str],
    anchors: Sequence[str],
) -> pl.LazyFrame:
    """`index_since`: the first configured pair's own returns since each dated anchor (ytd has its
    own line)."""
    lead_symbol, lag_symbol = pair
    dated = [a for a in dict.fromkeys(anchors) if a not in ("ytd", "1y")]
    perf = (
        index_performance.filter(pl.col("anchor").is_in(dated))
        .join(nights, left_on="session_date", right_on="as_of_date", how="semi")
        .select("symbol", "anchor", "session_date", "anchor_date", "anchor_close", "close", "return_since_anchor")
    )

    def side(symbol: str, prefix: str) -> pl.LazyFrame:
        return perf.filter(pl.col("symbol") == symbol).select(
            "anchor", "session_date", "anchor_date",
            **{f"{prefix}_symbol": pl.col("symbol"), f"{prefix}_anchor_close": pl.col("anchor_close"),
               f"{prefix}_close": pl.col("close"), f"{prefix}_return": pl.col("return_since_anchor")},
        )  # fmt: skip

    rows = (
        side(lead_symbol, "lead")
        .join(side(lag_symbol, "lag"), on=["anchor", "session_date", "anchor_date"], how="inner")
        .with_columns(
            as_of_date=pl.col("session_date"),
            gap=pl.col("lead_return") - pl.col("lag_return"),
            _order=pl.col("anchor").replace_strict({a: i for i, a in enumerate(dated)}, default=99, return_dtype=pl.Int32),
        )
    )

    def sentence(r: dict) -> str:
        lead, lag, gap = display_name(names, r["lead_symbol"]), display_name(names, r["lag_symbol"]), r["gap"]
        since = since_phrase(r["anchor"], r["anchor_date"])
        tail = "level" if rounded(gap, 0, scale=10_000) == 0 else f"{bp(gap)} bp {'ahead' if gap > 0 else 'behind'}"
        return (
            f"{since[0].upper()}{since[1:]} the {lead} is {pct(r['lead_return'])} vs {pct(r['lag_return'])} "
            f"for the {lag}, {tail}"
        )

    return fact_rows(
        rows,
        family="index_since",
        key=pl.col("lead_symbol") + "/" + pl.col("lag_symbol") + ":" + pl.col("anchor"),
        order=pl.col("_order"), template=sentence,
        fields=[
            "lead_symbol", "lag_symbol", "anchor", "session_date", "anchor_date", "lead_anchor_close", "lead_close",
            "lead_return", "lag_anchor_close", "lag_close", "lag_return", "gap",
        ],
        value=bp_expr("gap"), unit="bp", table="marts.index_performance",
    )  # fmt: skip
