"""marts.index_performance: each index's return since each anchor, by hand and on real Yahoo history."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from ground import calendar
from transforms.index_daily import index_daily
from transforms.index_performance import ROLLING_ANCHOR_LOOKBACK_DAYS, index_performance
from tests.helpers.bars import read_yahoo
from tests.helpers.contract import sql_columns



def contract() -> dict[str, pl.DataType]:
    return sql_columns("marts.index_performance")


def closes(rows: dict[str, list[tuple[date, float]]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        [(s, d, c) for s, days in rows.items() for d, c in days],
        schema={"symbol": pl.String, "session_date": pl.Date, "close": pl.Float64},
        orient="row",
    )


def sessions(start: date, end: date) -> pl.LazyFrame:
    return pl.LazyFrame({"session_date": calendar.sessions(start, end)}, schema={"session_date": pl.Date})


# The sessions of 2025-03-31 .. 2025-04-10 with made-up round closes shaped like that week: a
# sell-off after 04-02, a low on 04-08, a rally on 04-09.
APRIL = calendar.sessions(date(2025, 3, 31), date(2025, 4, 10))
RUT = dict(zip(APRIL, [2010.0, 2020.0, 2040.0, 1910.0, 1790.0, 1810.0, 1760.0, 1910.0, 1830.0]))
SPX = dict(zip(APRIL, [5600.0, 5630.0, 5670.0, 5400.0, 5070.0, 5060.0, 4980.0, 5450.0, 5270.0]))


def april(anchors: list[str], as_of: date = APRIL[-1]) -> pl.DataFrame:
    frame = closes({"^RUT": list(RUT.items()), "^GSPC": list(SPX.items())})
    return index_performance(frame, sessions(APRIL[0], as_of), anchors=anchors, as_of=as_of).collect()


def test_columns_match_the_warehouse_contract_even_when_empty():
    assert april(["2025-04-08"]).schema == pl.Schema(contract())
    assert april(["2026-01-02"]).height == 0


@pytest.mark.parametrize(
    ("anchor", "session", "anchor_date", "expected"),
    [
        # The anchor session itself: 0 there; then 1,910 / 1,760 - 1 = +8.52%.
        ("2025-04-08", date(2025, 4, 8), date(2025, 4, 8), 0.0),
        ("2025-04-08", date(2025, 4, 9), date(2025, 4, 8), 0.0852272727272727),
        ("2025-04-02", date(2025, 4, 10), date(2025, 4, 2), -0.1029411764705882),  # 1,830 / 2,040 - 1
        # A Saturday: measured from Friday's close, first row on Monday: 1,810 / 1,790 - 1.
        ("2025-04-05", date(2025, 4, 7), date(2025, 4, 4), 0.0111731843575419),
        ("2025-04-05", date(2025, 4, 4), None, None),
        # Before the anchor's day there is nothing to measure.
        ("2025-04-08", date(2025, 4, 7), None, None),
    ],
)
def test_return_since_a_dated_anchor_by_hand(anchor, session, anchor_date, expected):
    out = april([anchor]).filter(pl.col("symbol") == "^RUT", pl.col("session_date") == session)
    if anchor_date is None:
        assert out.height == 0
        return
    row = out.row(0, named=True)
    assert row["anchor_date"] == anchor_date
    assert row["anchor_close"] == RUT[anchor_date] and row["close"] == RUT[session]
    assert row["return_since_anchor"] == pytest.approx(expected, abs=1e-12)


def test_an_anchor_after_as_of_has_no_rows_yet():
    assert april(["2025-04-08"], as_of=date(2025, 4, 7)).height == 0
    night = april(["2025-04-08"], as_of=date(2025, 4, 8))
    assert night["session_date"].unique().to_list() == [date(2025, 4, 8)]


def test_each_index_against_its_own_anchor_close():
    out = april(["2025-04-08"]).filter(pl.col("session_date") == date(2025, 4, 9))
    got = dict(zip(out["symbol"], out["return_since_anchor"]))
    assert got["^RUT"] == pytest.approx(0.0852272727)  # 1,910 / 1,760 - 1
    assert got["^GSPC"] == pytest.approx(0.0943775100)  # 5,450 / 4,980 - 1


def test_an_index_without_a_close_on_the_anchor_session_has_no_rows_for_it():
    # ^SP600 starts on 04-09: the 2025-04-08 anchor does not apply to it, 2025-04-09 does.
    late = [(d, 1200.0 + i) for i, d in enumerate(APRIL) if d >= date(2025, 4, 9)]
    frame = closes({"^RUT": list(RUT.items()), "^SP600": late})
    out = index_performance(frame, sessions(APRIL[0], APRIL[-1]), anchors=["2025-04-08", "2025-04-09"], as_of=APRIL[-1])
    sp600 = out.filter(pl.col("symbol") == "^SP600").collect()
    assert sp600["anchor"].unique().to_list() == ["2025-04-09"]


def test_rows_and_keys():
    out = april(["ytd", "1y", "2025-04-02", "2025-04-08", "2025-04-08"])
    assert out.select("symbol", "anchor", "session_date").is_unique().all()
    # ytd and 1y need 2024 sessions, which this history does not hold.
    assert sorted(out["anchor"].unique().to_list()) == ["2025-04-02", "2025-04-08"]
    assert (out["session_date"] >= out["anchor_date"]).all()


# Real history --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> tuple[pl.DataFrame, pl.DataFrame]:
    daily = index_daily(pl.concat([read_yahoo(s) for s in ("^RUT", "^GSPC")])).collect()
    last = daily["session_date"].max()
    perf = index_performance(
        daily.lazy(), sessions(date(2000, 1, 3), last), anchors=["ytd", "1y", "2020-03-18", "2020-03-23"], as_of=last
    ).collect()
    return daily, perf


def test_real_ytd_anchor_agrees_with_index_daily_ytd_return(real):
    daily, perf = real
    ytd = perf.filter(pl.col("anchor") == "ytd").join(daily, on=["symbol", "session_date"], how="inner")
    assert ytd.height == 2 * (5759 - 252)  # every session from 2001 on (2000 has no previous year)
    assert (ytd["return_since_anchor"] - ytd["ytd_return"]).abs().max() < 1e-12


def test_real_since_the_covid_low(real):
    # ^RUT.csv: the Russell 2000 closed at 991.16 on 2020-03-18 and at 2,442.74 on 2021-11-08 (its
    # record); the S&P 500 bottomed at 2,237.40 on 2020-03-23 and closed at 4,701.70 on 2021-11-08.
    _, perf = real
    rut = perf.filter(pl.col("symbol") == "^RUT", pl.col("anchor") == "2020-03-18", pl.col("session_date") == date(2021, 11, 8))
    assert rut["anchor_close"].item() == pytest.approx(991.16, abs=0.005)
    assert rut["return_since_anchor"].item() == pytest.approx(2442.74 / 991.16 - 1, abs=1e-5)  # +146.5%
    spx = perf.filter(pl.col("symbol") == "^GSPC", pl.col("anchor") == "2020-03-23", pl.col("session_date") == date(2021, 11, 8))
    assert spx["anchor_close"].item() == pytest.approx(2237.40, abs=0.005)
    assert spx["return_since_anchor"].item() == pytest.approx(4701.70 / 2237.40 - 1, abs=1e-5)


def test_real_rolling_anchors_stay_within_the_stated_look_back(real):
    _, perf = real
    rolling = perf.filter(pl.col("anchor").is_in(["ytd", "1y"]))
    gap = (rolling["session_date"] - rolling["anchor_date"]).dt.total_days()
    assert gap.max() <= ROLLING_ANCHOR_LOOKBACK_DAYS
    assert gap.min() >= 1
