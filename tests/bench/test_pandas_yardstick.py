"""The pandas yardstick (bench/pandas_marts.py) computes what our transforms compute.

bench/rebuild_vs_pandas.py checks the two agree on the sample market, but the sample has no
missing weights, no report dates before a period end, no ties: here random small raw tables hold
those edge cases (two snapshots on one weekend, members leaving and returning, null and NaN
figures, lines without a market value and a snapshot with none, gaps in bars, a symbol never
priced, tied closes and tied index returns, a dated anchor on a Saturday), and the bench's own
comparison must find the tables equal. Another test shows that comparison does catch a wrong
value, a missing key and a changed count.
"""

from __future__ import annotations

import functools
import random
import sys
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import pandas_marts  # noqa: E402
import rebuild_vs_pandas as bench  # noqa: E402

from ground import calendar  # noqa: E402
from ground.settings import Settings  # noqa: E402

FIRST, LAST = date(2023, 11, 1), date(2025, 5, 15)
INDEXES = ("^RUT", "^GSPC", "^SP600", "^IXIC", "^VIX")
ANCHORS = ["ytd", "1y", "2024-06-08", "2025-04-08"]  # 2024-06-08 is a Saturday


def random_raw(seed: int) -> dict[str, pl.DataFrame]:
    rng = random.Random(seed)
    days = calendar.sessions(FIRST, LAST)
    stamp = {"source": "test", "fetched_at": datetime(2025, 5, 16), "load_id": "t"}

    index_rows = []
    gspc = {}
    for symbol in INDEXES:
        # Closes on a coarse grid so that records are sometimes tied; ^SP600 is half of ^GSPC on a
        # stretch of sessions, which gives exactly tied daily returns there.
        level = 100
        start = rng.randrange(0, 40) if symbol == "^IXIC" else 0
        for i, day in enumerate(days[start:], start):
            if rng.random() < 0.03:
                continue
            level = max(1, level + rng.choice([-2, -1, 0, 0, 1, 2]))
            close = float(level)
            if symbol == "^GSPC":
                gspc[day] = close
            if symbol == "^SP600" and 150 <= i < 230 and day in gspc:
                close = gspc[day] * 0.5
            index_rows.append((symbol, day, close))
    index_bars = pl.DataFrame(index_rows, schema={"symbol": pl.String, "session_date": pl.Date, "close": pl.Float64}, orient="row")

    symbols = [f"S{i:02d}" for i in range(14)]
    equity_rows = []
    for n, symbol in enumerate(symbols):
        if n == 13:
            continue  # a member never priced
        first = rng.randrange(0, 60)
        last = len(days) - (rng.randrange(30, 200) if n == 12 else 0)  # one stops trading
        price = rng.uniform(5, 50)
        for day in days[first:last]:
            if rng.random() < 0.05:
                continue
            price = max(0.01, price * (1 + rng.gauss(0, 0.03)))
            equity_rows.append((symbol, day, round(price, 2)))
    equity_bars = pl.DataFrame(
        equity_rows, schema={"symbol": pl.String, "session_date": pl.Date, "adj_close": pl.Float64}, orient="row"
    )

    holding_rows = []
    for universe in ("russell2000", "sp600"):
        snapshots = sorted({FIRST + timedelta(days=rng.randrange(0, (LAST - FIRST).days)) for _ in range(12)})
        saturday = date(2024, 8, 3)
        snapshots += [saturday, saturday + timedelta(days=1)] if universe == "sp600" else []  # one weekend, two files
        for as_of in sorted(set(snapshots)):
            # Market values: most lines print one; some only a weight (valued at the snapshot's dollars
            # per point); the first snapshot of each universe prints none at all (weights as printed).
            has_values = as_of != min(snapshots)
            for symbol in symbols:
                if rng.random() < 0.7:
                    sector = rng.choice(["Energy", "Utilities", "Materials", None])
                    weight = None if rng.random() < 0.1 else rng.uniform(0.1, 2.0)
                    value = rng.uniform(1e5, 1e7) if has_values and rng.random() < 0.8 else None
                    holding_rows.append((universe, as_of, symbol, sector, weight, value))
    holdings = pl.DataFrame(
        holding_rows,
        schema={"universe": pl.String, "as_of_date": pl.Date, "symbol": pl.String, "sector": pl.String,
                "weight_pct": pl.Float64, "market_value_usd": pl.Float64},
        orient="row",
    ).with_columns(pl.col("symbol").alias("ticker"))

    fundamental_rows = []
    quarter_ends = [date(y, m, d) for y in range(2022, 2026) for m, d in ((3, 31), (6, 30), (9, 30), (12, 31))]
    for symbol in symbols:
        for end in quarter_ends:
            if rng.random() < 0.1:
                continue  # a quarter the source never returned
            r = rng.random()
            income = None if r < 0.08 else float("nan") if r < 0.12 else float(rng.choice([-5, -1, 0, 0, 1, 3, 4]))
            kind = rng.random()
            report = (
                None if kind < 0.4
                else end - timedelta(days=rng.randrange(0, 5)) if kind < 0.5  # a data error: on or before the end
                else end + timedelta(days=rng.randrange(10, 90))
            )
            fundamental_rows.append((symbol, end, report, income))
    fundamentals = pl.DataFrame(
        fundamental_rows,
        schema={"symbol": pl.String, "period_end_date": pl.Date, "report_date": pl.Date, "net_income_common_usd": pl.Float64},
        orient="row",
    ).with_columns(pl.lit(datetime(2025, 5, 16)).alias("first_seen_at"))

    return {
        t: f.with_columns(pl.lit(v).alias(k) for k, v in stamp.items())
        for t, f in {
            "raw.index_bars": index_bars,
            "raw.equity_bars": equity_bars,
            "raw.holdings": holdings,
            "raw.fundamentals": fundamentals,
        }.items()
    }


def in_memory(raw: dict[str, pl.DataFrame]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    for table, frame in raw.items():
        con.register("_frame", frame)
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM _frame")
        con.unregister("_frame")
    return con


@functools.cache
def both_sides(seed: int):
    """Both derivations of one random raw; computed once per seed (tables are only read)."""
    con = in_memory(random_raw(seed))
    # Settings give pairs and anchors only: the home is never created.
    settings = Settings(home=Path(tempfile.gettempdir()) / "smallcaps-yardstick-unused", anchors=ANCHORS)
    as_of = bench.scalar(con, "SELECT max(session_date) FROM raw.index_bars")
    ours, _ = bench.ours(con, settings, as_of)
    theirs, _ = pandas_marts.derive(
        bench.raw_for_pandas(con, as_of),
        bench.sessions_for(con, as_of),
        pairs=[(p.lead, p.lag) for p in settings.pairs],
        anchors=settings.anchors,
    )
    return ours, theirs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pandas_and_ours_agree_on_random_raw_with_edge_cases(seed):
    ours, theirs = both_sides(seed)
    # The random data does reach the edge cases it is meant to.
    cohorts = ours["core.cohorts"]
    assert cohorts["weight"].null_count() > 0 and cohorts["sector"].null_count() > 0
    assert set(cohorts["cohort"]) == {"profitable", "unprofitable", "no_data"}
    assert ours["marts.relative_performance"]["longest_since"].null_count() < ours["marts.relative_performance"].height
    assert ours["marts.cohort_performance"].filter(pl.col("priced") < pl.col("members")).height > 0
    daily = ours["marts.index_daily"]
    for column in ("support_level", "resistance_level", "high_52w", "rsi_14", "ret_5d"):
        assert 0 < daily[column].null_count() < daily.height, column
    assert daily.filter(pl.col("record_date") < pl.col("session_date")).height > 0
    performance = ours["marts.index_performance"]
    assert set(performance["anchor"]) == set(ANCHORS)
    # The Saturday anchor: measured from the Friday before, with rows from the Monday after only.
    saturday = performance.filter(pl.col("anchor") == "2024-06-08")
    assert saturday["anchor_date"].unique().to_list() == [date(2024, 6, 7)]
    assert saturday["session_date"].min() == date(2024, 6, 10)
    for table in bench.TABLES:
        assert ours[table].height > 0, table
        assert bench.compare(table, ours[table], theirs[table]) == [], table


def test_the_comparison_finds_a_wrong_value_a_missing_key_and_a_changed_count():
    ours, theirs = both_sides(1)
    table = "marts.cohort_performance"
    wrong = theirs[table].copy()
    first_return = wrong["return_equal_weight"].first_valid_index()
    wrong.loc[first_return, "return_equal_weight"] += 1e-6
    wrong.loc[0, "members"] += 1
    wrong = wrong.drop(index=wrong.index[-1])
    problems = bench.compare(table, ours[table], wrong)
    assert len(problems) == 3, problems
    assert problems[0].startswith("1 keys only in ours")
    assert problems[1].startswith("column members: 1 of ")
    assert problems[2].startswith("column return_equal_weight: 1 of ")
