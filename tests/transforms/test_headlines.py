"""marts.headlines: sentences and values from small hand-built mart frames."""

from __future__ import annotations

import json
from datetime import date, timedelta

import polars as pl
import pytest

from sources.base import BARS_SCHEMA
from transforms.headlines import a_ordinal, article, bp, bp_value, headlines, number, ordinal, pct, points, rounded, share
from transforms.index_daily import index_daily, index_records
from transforms.relative_performance import relative_performance
from tests.helpers.contract import sql_columns

NAMES = {"^RUT": "Russell 2000", "^GSPC": "S&P 500", "^SP600": "S&P SmallCap 600", "^IXIC": "Nasdaq Composite", "^VIX": "VIX"}
PAIRS = [("^RUT", "^GSPC"), ("^RUT", "^SP600")]
ANCHORS = ["ytd", "1y", "2025-04-02", "2025-04-08"]
NIGHT = date(2026, 1, 22)


def mart(table: str, rows: list[dict]) -> pl.LazyFrame:
    """A mart frame with the contract's columns; columns a row leaves out are null."""
    schema = sql_columns(table)
    return pl.LazyFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema)


def index_row(symbol: str, day: date, close: float, **kw) -> dict:
    # A row is its own record unless told otherwise (record_close and record_date are mart columns).
    base = {"symbol": symbol, "session_date": day, "close": close, "is_record_close": False, "records_ytd": 0,
            "drawdown_from_record": 0.0, "record_close": close, "record_date": day}  # fmt: skip
    return base | kw


def records_for(symbols: list[str], year: int = 2026, start: date = date(2000, 1, 3)) -> pl.LazyFrame:
    return mart(
        "marts.index_records",
        [{"symbol": s, "year": year, "record_closes": 0, "history_start": start} for s in symbols],
    )


def build(
    as_of=(NIGHT,),
    daily: list[dict] = (),
    records: pl.LazyFrame | None = None,
    rel: list[dict] = (),
    composition: list[dict] = (),
    performance: list[dict] = (),
    sectors: list[dict] = (),
) -> pl.DataFrame:
    symbols = sorted({r["symbol"] for r in daily})
    return headlines(
        list(as_of),
        mart("marts.index_daily", list(daily)),
        records if records is not None else records_for(symbols),
        mart("marts.relative_performance", list(rel)),
        mart("marts.cohort_composition", list(composition)),
        mart("marts.cohort_performance", list(performance)),
        mart("marts.sector_daily", list(sectors)),
        pairs=PAIRS,
        anchors=ANCHORS,
        names=NAMES,
    ).collect()


def fact(out: pl.DataFrame, key: str) -> dict:
    rows = out.filter(pl.col("fact_key") == key).to_dicts()
    assert len(rows) == 1, f"{key} not in {out['fact_key'].to_list()}"
    return rows[0]


# Formatting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"), (21, "21st"),
     (22, "22nd"), (101, "101st"), (111, "111th"), (112, "112th")],
)  # fmt: skip
def test_ordinal(n, text):
    assert ordinal(n) == text


@pytest.mark.parametrize(
    ("fn", "x", "text"),
    [
        (points, 2723.9612, "2,723.96"),
        (points, 1234567.0, "1,234,567.00"),
        (pct, 0.531, "+53.1%"),
        (pct, -0.01, "-1.0%"),
        (pct, 0.0004, "0.0%"),
        (pct, -0.0004, "0.0%"),
        (share, 0.57, "57%"),
        (bp, 0.307, "3,070"),
        (bp, -0.0123, "123"),
    ],
)
def test_number_formats(fn, x, text):
    assert fn(x) == text


@pytest.mark.parametrize(
    ("n", "word"),
    [(1, "a"), (8, "an"), (11, "an"), (18, "an"), (12, "a"), (80, "an"), (88, "an"), (100, "a"), (111, "a"),
     (800, "an"), (811, "an"), (1800, "a"), (8000, "an"), (11_000, "an"), (18_500, "an"), (21_000, "a"), (0, "a")],
)  # fmt: skip
def test_article_follows_the_spoken_number(n, word):
    assert article(n) == word


def test_ordinal_with_its_article():
    assert [a_ordinal(n) for n in (1, 8, 11, 13, 18, 23, 83)] == ["a 1st", "an 8th", "an 11th", "a 13th", "an 18th", "a 23rd", "an 83rd"]


@pytest.mark.parametrize(
    ("fn", "x", "text"),
    [
        # Half away from zero, on the value as written: float arithmetic or round() would split these.
        (pct, 0.0125, "+1.3%"),
        (pct, -0.0125, "-1.3%"),
        (pct, 0.0135, "+1.4%"),
        (pct, -0.0005, "-0.1%"),
        (pct, 0.00049, "0.0%"),
        (share, 0.565, "57%"),
        (share, 0.125, "13%"),
        (bp, 0.00125, "13"),
        (bp, -0.00125, "13"),
        (points, 1.005, "1.01"),
        (points, 2723.125, "2,723.13"),
        (lambda x: number(x, 1), 70.25, "70.3"),
    ],
)
def test_rounding_is_half_away_from_zero_everywhere(fn, x, text):
    assert fn(x) == text


def test_bp_values_round_like_their_sentences():
    assert bp_value(0.00125) == 13.0 and bp_value(-0.00125) == -13.0 and bp_value(0.30705) == 3071.0
    assert rounded(1e308, 2) > 0  # the widest double still formats
    with pytest.raises(ValueError, match="not a finite number"):
        rounded(float("nan"))


# Contract ---------------------------------------------------------------------------------------


def test_columns_match_the_warehouse_contract_even_when_empty():
    out = build(daily=[])
    assert out.schema == pl.Schema(sql_columns("marts.headlines"))
    assert out.height == 0


# Index facts ------------------------------------------------------------------------------------


def test_record_night():
    out = build(
        daily=[
            index_row("^RUT", date(2026, 1, 21), 2700.0, records_ytd=6, drawdown_from_record=-0.01),
            index_row("^RUT", NIGHT, 2723.9612, is_record_close=True, records_ytd=7),
        ]
    )
    row = fact(out, "index_record:^RUT")
    assert row["sentence"] == "Russell 2000 closed at a record 2,723.96, its 7th record close of 2026"
    assert row["value"] == pytest.approx(2723.9612)
    assert row["unit"] == "index_points"
    assert row["rank"] == 1 and row["as_of_date"] == NIGHT
    inputs = json.loads(row["inputs"])
    assert inputs["table"] == "marts.index_daily" and inputs["records_ytd"] == 7
    assert inputs["history_start"] == "2000-01-03"
    assert "index_from_record:^RUT" not in out["fact_key"].to_list()


def test_distance_from_record_night():
    out = build(
        daily=[
            index_row("^RUT", date(2026, 1, 20), 2750.0, is_record_close=True, records_ytd=6),
            index_row("^RUT", NIGHT, 2700.0, records_ytd=6, drawdown_from_record=2700.0 / 2750.0 - 1,
                      record_close=2750.0, record_date=date(2026, 1, 20)),
        ]
    )
    row = fact(out, "index_from_record:^RUT")
    assert row["sentence"] == (
        "Russell 2000 closed at 2,700.00, 1.8% below its record close of 2,750.00 on 2026-01-20; "
        "6 record closes so far in 2026"
    )
    assert row["value"] == pytest.approx(-0.018182, abs=1e-6) and row["unit"] == "fraction"


def test_first_session_of_history_gets_no_record_line():
    out = build(daily=[index_row("^RUT", NIGHT, 2700.0)], records=records_for(["^RUT"], start=NIGHT))
    assert not any(k.startswith("index_") for k in out["fact_key"].to_list())


def test_ytd_and_pair_lines():
    daily = [
        index_row("^RUT", date(2025, 12, 31), 2500.0),
        index_row("^RUT", NIGHT, 2717.5, ytd_return=0.087, prev_year_close=2500.0),
        index_row("^GSPC", date(2025, 12, 31), 6000.0),
        index_row("^GSPC", NIGHT, 6024.0, ytd_return=0.004, prev_year_close=6000.0),
    ]
    rel = [{"lead_symbol": "^RUT", "lag_symbol": "^GSPC", "session_date": NIGHT, "lead_ret": 0.01, "lag_ret": 0.002,
            "spread": 0.008, "outperformed": True, "streak": 1, "lead_ytd_return": 0.087, "lag_ytd_return": 0.004,
            "ytd_spread": 0.083}]  # fmt: skip
    out = build(daily=daily, rel=rel)
    ytd = fact(out, "ytd:^RUT")
    assert ytd["sentence"] == "Russell 2000 +8.7% year to date, at 2,717.50 against 2,500.00 at the end of 2025"
    assert ytd["value"] == pytest.approx(0.087) and ytd["unit"] == "fraction"
    spread = fact(out, "ytd_spread:^RUT/^GSPC")
    assert spread["sentence"] == "Year to date the Russell 2000 is +8.7% vs +0.4% for the S&P 500, 830 bp ahead"
    assert spread["value"] == 830.0 and spread["unit"] == "bp"
    streak = fact(out, "streak:^RUT/^GSPC")
    assert streak["sentence"] == "Russell 2000 beat the S&P 500 (+1.0% vs +0.2%), the first session of a new streak"


def test_rsi_only_when_overbought_or_oversold():
    out = build(
        daily=[
            index_row("^RUT", NIGHT, 2700.0, rsi_14=73.44),
            index_row("^GSPC", NIGHT, 6000.0, rsi_14=50.0),
            index_row("^SP600", NIGHT, 1400.0, rsi_14=28.0),
        ]
    )
    assert fact(out, "rsi:^RUT")["sentence"] == "Russell 2000 RSI-14 at 73.4, above 70 (overbought)"
    assert fact(out, "rsi:^SP600")["sentence"] == "S&P SmallCap 600 RSI-14 at 28.0, below 30 (oversold)"
    assert "rsi:^GSPC" not in out["fact_key"].to_list()


def test_vix_level_and_weekly_change():
    closes = [20.0, 21.0, 19.5, 18.0, 17.5, 16.0]
    days = [date(2026, 1, 14), date(2026, 1, 15), date(2026, 1, 16), date(2026, 1, 20), date(2026, 1, 21), NIGHT]
    # The mart's change_5d / ret_5d (transforms/index_levels.py) are what the sentence says.
    vix = index_daily(
        pl.LazyFrame(
            {"symbol": "^VIX", "session_date": days, "open": closes, "high": closes, "low": closes, "close": closes,
             "adj_close": closes, "volume": [None] * 6},
            schema=BARS_SCHEMA,
        )
    ).collect()  # fmt: skip
    assert vix["change_5d"][-1] == -4.0 and vix["ret_5d"][-1] == pytest.approx(-0.2)
    out = build(daily=vix.to_dicts())
    row = fact(out, "volatility:^VIX")
    assert row["sentence"] == "VIX at 16.00, down 4.00 points (-20.0%) over the week (5 sessions, from 20.00 on 2026-01-14)"
    assert row["value"] == 16.0 and row["unit"] == "level"
    assert json.loads(row["inputs"])["change_5d"] == -4.0
    # The VIX gets no price-index lines.
    assert out["fact_key"].to_list() == ["volatility:^VIX"]
    short = build(as_of=[days[2]], daily=vix.to_dicts())
    assert fact(short, "volatility:^VIX")["sentence"] == "VIX at 19.50"


# Pair facts -------------------------------------------------------------------------------------


def streak_row(streak: int, since: date | None, day: date = NIGHT, lead=0.008, lag=0.002) -> dict:
    return {"lead_symbol": "^RUT", "lag_symbol": "^GSPC", "session_date": day, "lead_ret": lead, "lag_ret": lag,
            "spread": lead - lag, "outperformed": streak > 0, "streak": streak, "longest_since": since}  # fmt: skip


def test_streak_night():
    out = build(rel=[streak_row(13, date(1996, 5, 22), date(2026, 1, 21)), streak_row(14, date(1996, 5, 22))])
    row = fact(out, "streak:^RUT/^GSPC")
    assert row["sentence"] == (
        "Russell 2000 beat the S&P 500 for a 14th straight session, the longest streak since 1996-05-22 (+0.8% vs +0.2%)"
    )
    assert row["value"] == 14.0 and row["unit"] == "sessions"
    assert json.loads(row["inputs"])["longest_since"] == "1996-05-22"


def test_streak_longest_in_loaded_history_says_where_that_history_starts():
    rel = [streak_row(n, None, d) for n, d in ((9, date(2026, 1, 20)), (10, date(2026, 1, 21)), (11, NIGHT))]
    # The pair's history starts where its later index starts (index_records.history_start).
    records = pl.concat([records_for(["^RUT"], start=date(2000, 1, 3)), records_for(["^GSPC"], start=date(1998, 6, 1))])
    row = fact(build(rel=rel, records=records), "streak:^RUT/^GSPC")
    assert row["sentence"] == (
        "Russell 2000 beat the S&P 500 for an 11th straight session, the longest streak in the loaded history, "
        "which starts 2000-01-03 (+0.8% vs +0.2%)"
    )
    assert json.loads(row["inputs"])["history_start"] == "2000-01-03"
    # Without index_records rows, the pair's first session stands in.
    assert fact(build(rel=rel), "streak:^RUT/^GSPC")["sentence"].endswith("which starts 2026-01-20 (+0.8% vs +0.2%)")


@pytest.mark.parametrize(
    ("streak", "text"),
    [(8, "for an 8th straight"), (11, "for an 11th straight"), (18, "for an 18th straight"), (12, "for a 12th straight"),
     (80, "for an 80th straight"), (21, "for a 21st straight"), (2, "for a 2nd straight")],
)  # fmt: skip
def test_streak_articles(streak, text):
    out = build(rel=[streak_row(streak, date(1996, 5, 22))])
    assert text in fact(out, "streak:^RUT/^GSPC")["sentence"]


@pytest.mark.parametrize(("previous", "text"), [(8, "ending an 8-session"), (11, "ending an 11-session"), (5, "ending a 5-session")])
def test_broken_streak_articles(previous, text):
    out = build(rel=[streak_row(previous, None, date(2026, 1, 21)), streak_row(0, None, lead=-0.004, lag=0.001)])
    assert fact(out, "streak:^RUT/^GSPC")["sentence"].endswith(text + " winning streak")


def test_streak_broken():
    out = build(rel=[streak_row(5, None, date(2026, 1, 21)), streak_row(0, None, lead=-0.004, lag=0.001)])
    row = fact(out, "streak:^RUT/^GSPC")
    assert row["sentence"] == "Russell 2000 lagged the S&P 500 (-0.4% vs +0.1%), ending a 5-session winning streak"
    assert row["value"] == 0.0


# Cohort and sector facts ------------------------------------------------------------------------


def perf_row(cohort: str, ret: float, anchor: str = "2025-04-08", anchor_date=date(2025, 4, 8), universe="russell2000"):
    return {"universe": universe, "anchor": anchor, "cohort": cohort, "session_date": NIGHT, "anchor_date": anchor_date,
            "members": 800, "priced": 790, "return_equal_weight": ret, "return_cap_weight": None if ret is None else ret / 2,
            "return_median": ret}  # fmt: skip


def test_cohort_spread_in_bp():
    out = build(performance=[perf_row("unprofitable", 0.531), perf_row("profitable", 0.224), perf_row("no_data", 0.1)])
    row = fact(out, "cohort_spread:russell2000:2025-04-08")
    assert row["sentence"] == (
        "Russell 2000: unprofitable members +53.1% since 2025-04-08 vs +22.4% for profitable ones, a 3,070 bp gap"
    )
    assert row["value"] == 3070.0 and row["unit"] == "bp"
    assert json.loads(row["inputs"])["table"] == "marts.cohort_performance"


def test_cohort_spread_with_ytd_anchor_and_profitable_ahead():
    out = build(
        performance=[
            perf_row("unprofitable", 0.02, "ytd", date(2025, 12, 31)),
            perf_row("profitable", 0.05, "ytd", date(2025, 12, 31)),
        ]
    )
    assert fact(out, "cohort_spread:russell2000:ytd")["sentence"] == (
        "Russell 2000: unprofitable members +2.0% year to date (since 2025-12-31) vs +5.0% for profitable ones, "
        "a 300 bp gap in favour of profitable ones"
    )
    assert fact(out, "cohort_spread:russell2000:ytd")["value"] == -300.0


def test_universe_spread_from_the_all_cohort():
    out = build(
        performance=[perf_row("all", 0.40), perf_row("all", 0.25, universe="sp600"), perf_row("profitable", 0.3)]
    )
    row = fact(out, "universe_spread:2025-04-08")
    assert row["sentence"] == (
        "Russell 2000 members +40.0% since 2025-04-08 vs +25.0% for S&P 600 members (equal weight), 1,500 bp ahead"
    )
    assert row["value"] == 1500.0
    # Only one cohort side: no cohort spread is invented.
    assert not any(k.startswith("cohort_spread") for k in out["fact_key"].to_list())


def test_cohort_shares():
    comp = [
        {"universe": "russell2000", "session_date": NIGHT, "cohort": c, "members": m, "share_of_members": m / 1962,
         "share_of_weight": None, "rule_version": "v1"}
        for c, m in (("profitable", 1118), ("unprofitable", 805), ("no_data", 39))
    ]  # fmt: skip
    row = fact(build(composition=comp), "cohort_shares:russell2000")
    assert row["sentence"] == (
        "57% of Russell 2000 members are profitable, 41% unprofitable, 2% without earnings data "
        "(1,962 members, cohort rule v1)"
    )
    assert row["value"] == pytest.approx(1118 / 1962) and row["unit"] == "fraction"


def test_best_and_worst_sector():
    sectors = [
        {"universe": "russell2000", "sector": s, "session_date": NIGHT, "members": m, "return_equal_weight": r}
        for s, m, r in (("Energy", 80, 0.023), ("Utilities", 40, -0.011), ("Financials", 300, 0.004))
    ]
    sectors.append({"universe": "sp600", "sector": "Energy", "session_date": NIGHT, "members": 20, "return_equal_weight": 0.01})
    out = build(sectors=sectors)
    assert fact(out, "sector_best:russell2000")["sentence"] == (
        "Best Russell 2000 sector of the day: Energy +2.3% (equal weight, 80 members; 3 sectors)"
    )
    assert fact(out, "sector_worst:russell2000")["value"] == pytest.approx(-0.011)
    # One sector is not a ranking.
    assert not any(k.endswith(":sp600") for k in out["fact_key"].to_list())


# Skipping, ordering, many nights ----------------------------------------------------------------


def test_facts_with_missing_inputs_are_skipped():
    out = build(
        daily=[index_row("^RUT", NIGHT, 2700.0, ytd_return=None, rsi_14=None)],
        rel=[streak_row(3, None, date(2026, 1, 21))],  # the pair has no row tonight
        performance=[perf_row("unprofitable", 0.5), perf_row("profitable", None)],
        composition=[],
        sectors=[],
    )
    assert out["fact_key"].to_list() == ["index_from_record:^RUT"]
    assert build(as_of=[date(2026, 2, 2)], daily=[index_row("^RUT", NIGHT, 2700.0)]).height == 0


def _bars(symbol: str, closes: list[float], start: date) -> pl.LazyFrame:
    days, d = [], start
    while len(days) < len(closes):
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return pl.LazyFrame(
        {"symbol": symbol, "session_date": days, "open": closes, "high": closes, "low": closes, "close": closes,
         "adj_close": closes, "volume": [None] * len(closes)},
        schema=BARS_SCHEMA,
    )  # fmt: skip


def test_many_nights_equal_single_nights_and_ranks_are_consecutive():
    import math

    n = 800
    bars = pl.concat(
        [
            _bars("^RUT", [2000 + 300 * math.sin(i / 40) + i for i in range(n)], date(2023, 1, 2)),
            _bars("^GSPC", [5000 + 400 * math.cos(i / 55) + 2 * i for i in range(n)], date(2023, 1, 2)),
            _bars("^VIX", [18 + 6 * math.sin(i / 7) for i in range(n)], date(2023, 1, 2)),
        ]
    )
    daily = index_daily(bars).collect()
    records = index_records(daily.lazy()).collect()
    rel = relative_performance(daily.lazy(), PAIRS).collect()
    nights = daily["session_date"].unique().sort().to_list()[-730:]
    empty = {t: mart(t, []) for t in ("marts.cohort_composition", "marts.cohort_performance", "marts.sector_daily")}

    def run(dates):
        return headlines(
            dates, daily.lazy(), records.lazy(), rel.lazy(), *empty.values(), pairs=PAIRS, anchors=ANCHORS, names=NAMES
        ).collect()

    out = run(nights)
    assert out.select("as_of_date", "fact_key").is_unique().all()
    assert out["as_of_date"].n_unique() == 730
    ranks = out.group_by("as_of_date").agg(ok=(pl.col("rank").sort() == pl.int_range(1, pl.len() + 1)).all())
    assert ranks["ok"].all()
    for night in (nights[0], nights[365], nights[-1]):
        assert run([night]).equals(out.filter(pl.col("as_of_date") == night))
    assert all(json.loads(x)["table"].startswith("marts.") for x in out["inputs"])


def test_cohort_gap_article_and_value_round_alike():
    out = build(performance=[perf_row("unprofitable", 0.30125), perf_row("profitable", 0.2932)])
    row = fact(out, "cohort_spread:russell2000:2025-04-08")
    # 0.30125 - 0.2932 = 0.00805 (in floats 0.008050000000000002): 80.5 bp -> 81, "an 81"? No: eighty-one.
    assert row["sentence"].endswith("an 81 bp gap") and row["value"] == 81.0
    out = build(performance=[perf_row("unprofitable", 0.38), perf_row("profitable", 0.30)])
    assert fact(out, "cohort_spread:russell2000:2025-04-08")["sentence"].endswith("an 800 bp gap")


# The index's own return since an anchor -----------------------------------------------------------


def since_row(symbol: str, anchor: str, anchor_date: date, anchor_close: float, close: float) -> dict:
    return {"symbol": symbol, "anchor": anchor, "session_date": NIGHT, "anchor_date": anchor_date,
            "anchor_close": anchor_close, "close": close, "return_since_anchor": close / anchor_close - 1}  # fmt: skip


def test_index_since_each_dated_anchor():
    perf = mart(
        "marts.index_performance",
        [
            since_row("^RUT", "2025-04-08", date(2025, 4, 8), 1760.71, 2468.50),
            since_row("^GSPC", "2025-04-08", date(2025, 4, 8), 4982.77, 6935.00),
            since_row("^RUT", "2025-04-05", date(2025, 4, 4), 1787.07, 2468.50),
            since_row("^GSPC", "2025-04-05", date(2025, 4, 4), 5074.08, 6935.00),
            # ytd and 1y have their own lines (ytd, ytd_spread): no index_since for them.
            since_row("^RUT", "ytd", date(2025, 12, 31), 2400.0, 2468.50),
            since_row("^GSPC", "ytd", date(2025, 12, 31), 6800.0, 6935.00),
            # Another pair's symbols: only the first configured pair is compared.
            since_row("^SP600", "2025-04-08", date(2025, 4, 8), 1200.0, 1500.0),
        ],
    )
    out = headlines(
        [NIGHT], mart("marts.index_daily", []), records_for([]), *(mart(t, []) for t in (
            "marts.relative_performance", "marts.cohort_composition", "marts.cohort_performance", "marts.sector_daily")),
        pairs=PAIRS, anchors=["ytd", "2025-04-08", "2025-04-05"], names=NAMES, index_performance=perf,
    ).collect()  # fmt: skip
    assert out["fact_key"].to_list() == ["index_since:^RUT/^GSPC:2025-04-08", "index_since:^RUT/^GSPC:2025-04-05"]
    row = fact(out, "index_since:^RUT/^GSPC:2025-04-08")
    # 2,468.50 / 1,760.71 - 1 = +40.199%; 6,935.00 / 4,982.77 - 1 = +39.179%; gap 102 bp.
    assert row["sentence"] == "Since 2025-04-08 the Russell 2000 is +40.2% vs +39.2% for the S&P 500, 102 bp ahead"
    assert row["value"] == 102.0 and row["unit"] == "bp"
    inputs = json.loads(row["inputs"])
    assert inputs["table"] == "marts.index_performance" and inputs["lead_anchor_close"] == 1760.71
    assert fact(out, "index_since:^RUT/^GSPC:2025-04-05")["sentence"].startswith(
        "Since 2025-04-05 (session 2025-04-04) the Russell 2000 is +38.1% vs +36.7%"
    )


# Ranking ----------------------------------------------------------------------------------------


def test_the_first_five_are_what_a_market_note_opens_with():
    daily = [
        index_row("^RUT", date(2026, 1, 21), 2700.0, records_ytd=6),
        index_row("^RUT", NIGHT, 2723.96, is_record_close=True, records_ytd=7, ytd_return=0.087, rsi_14=73.4),
        index_row("^GSPC", date(2026, 1, 21), 6000.0, is_record_close=True, records_ytd=2),
        index_row("^GSPC", NIGHT, 6024.0, is_record_close=True, records_ytd=3, ytd_return=0.004),
        index_row("^SP600", NIGHT, 1400.0, ytd_return=0.05, drawdown_from_record=-0.02),
    ]
    rel = [streak_row(14, date(1996, 5, 22)) | {"lead_ytd_return": 0.087, "lag_ytd_return": 0.004, "ytd_spread": 0.083},
           {**streak_row(0, None), "lag_symbol": "^SP600", "lead_ret": -0.001, "spread": -0.003,
            "lead_ytd_return": 0.087, "lag_ytd_return": 0.05, "ytd_spread": 0.037}]  # fmt: skip
    comp = [
        {"universe": "russell2000", "session_date": NIGHT, "cohort": c, "members": m, "share_of_members": m / 1962,
         "share_of_weight": None, "rule_version": "v1"}
        for c, m in (("profitable", 1118), ("unprofitable", 805), ("no_data", 39))
    ]  # fmt: skip
    perf = [perf_row(c, r, a, d) for a, d in (("ytd", date(2025, 12, 31)), ("2025-04-02", date(2025, 4, 2)),
                                              ("2025-04-08", date(2025, 4, 8)))
            for c, r in (("unprofitable", 0.531), ("profitable", 0.224), ("all", 0.4))]  # fmt: skip
    sectors = [{"universe": "russell2000", "sector": s, "session_date": NIGHT, "members": 80, "return_equal_weight": r}
               for s, r in (("Energy", 0.02), ("Utilities", -0.01))]  # fmt: skip
    out = build(
        daily=daily, records=records_for(["^RUT", "^GSPC", "^SP600"]), rel=rel, composition=comp, performance=perf,
        sectors=sectors,
    )
    keys = out["fact_key"].to_list()
    assert keys[:5] == [
        "index_record:^RUT",
        "streak:^RUT/^GSPC",
        "ytd_spread:^RUT/^GSPC",
        "cohort_spread:russell2000:2025-04-02",  # the first dated anchor in the settings
        "cohort_shares:russell2000",
    ]
    # Then the rest in the families' order: the other records first, the sectors near the end.
    rest = keys[5:]
    assert rest[:2] == ["index_record:^GSPC", "index_from_record:^SP600"]
    order = ["streak:^RUT/^SP600", "ytd_spread:^RUT/^SP600", "cohort_spread:russell2000:ytd", "rsi:^RUT"]
    assert [rest.index(k) for k in order] == sorted(rest.index(k) for k in order)
    assert rest.index("rsi:^RUT") < rest.index("sector_best:russell2000")
    assert out["rank"].to_list() == list(range(1, len(keys) + 1))
    assert len(set(keys)) == len(keys)


def test_a_night_without_a_record_leads_with_the_distance_from_it_and_fills_up():
    out = build(
        daily=[index_row("^RUT", date(2026, 1, 21), 2750.0, is_record_close=True, records_ytd=1),
               index_row("^RUT", NIGHT, 2700.0, records_ytd=1, drawdown_from_record=2700 / 2750 - 1, ytd_return=0.02),
               index_row("^GSPC", NIGHT, 6000.0, is_record_close=True, records_ytd=1)],
        rel=[streak_row(3, date(2025, 12, 1))],
    )  # fmt: skip
    # No ytd_spread and no cohorts tonight: the lead facts there are come first, the rest follow.
    assert out["fact_key"].to_list() == ["index_from_record:^RUT", "streak:^RUT/^GSPC", "index_record:^GSPC"]
