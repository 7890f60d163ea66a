"""marts.index_daily and marts.index_records: hand-computed cases, properties, real Yahoo history."""

from __future__ import annotations

import math
from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sources.base import BARS_SCHEMA
from transforms.index_daily import index_daily, index_records
from tests.helpers.bars import YAHOO_DAILY, read_yahoo, weekdays
from tests.helpers.contract import sql_columns
from tests.helpers.matrix import examples



def bars(closes: list[float], dates: list[date] | None = None, symbol: str = "^X") -> pl.LazyFrame:
    dates = dates or weekdays(date(2024, 1, 2), len(closes))
    return pl.LazyFrame(
        {
            "symbol": [symbol] * len(closes),
            "session_date": dates,
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "adj_close": closes,
            "volume": [None] * len(closes),
        },
        schema=BARS_SCHEMA,
    )


def daily(closes: list[float], dates: list[date] | None = None) -> pl.DataFrame:
    return index_daily(bars(closes, dates)).collect()


def wilder_rsi_by_hand(closes: list[float], period: int = 14) -> list[float | None]:
    """Wilder's RSI the textbook way, one session at a time."""
    out: list[float | None] = [None] * min(period, len(closes))
    if len(closes) <= period:
        return out
    gains = [max(closes[i] - closes[i - 1], 0.0) for i in range(1, len(closes))]
    losses = [max(closes[i - 1] - closes[i], 0.0) for i in range(1, len(closes))]
    avg_gain = sum(gains[:period]) / period
    avg_loss = sum(losses[:period]) / period

    def rsi(g: float, l: float) -> float:
        return 100.0 if l == 0 else 100.0 - 100.0 / (1.0 + g / l)

    out.append(rsi(avg_gain, avg_loss))
    for i in range(period, len(gains)):
        avg_gain = (avg_gain * (period - 1) + gains[i]) / period
        avg_loss = (avg_loss * (period - 1) + losses[i]) / period
        out.append(rsi(avg_gain, avg_loss))
    return out


# Contract ---------------------------------------------------------------------------------------


def test_index_daily_columns_match_the_warehouse_contract():
    out = daily([100.0, 101.0, 99.0])
    assert out.schema == pl.Schema(sql_columns("marts.index_daily"))


def test_index_records_columns_match_the_warehouse_contract():
    out = index_records(index_daily(bars([100.0, 101.0]))).collect()
    assert out.schema == pl.Schema(sql_columns("marts.index_records"))


# Hand-computed cases ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("closes", "expected"),
    [
        ([100.0, 110.0, 99.0], [None, 0.10, -0.10]),
        ([50.0, 50.0, 75.0, 60.0], [None, 0.0, 0.5, -0.2]),
        ([10.0], [None]),
    ],
)
def test_ret_1d_is_close_over_previous_close(closes, expected):
    got = daily(closes)["ret_1d"].to_list()
    assert got == [None if e is None else pytest.approx(e) for e in expected]


@pytest.mark.parametrize(
    ("dates", "closes", "expected"),
    [
        # Base is the last close of 2023 (120), not the first of 2024 and not the 2023 high.
        (
            [date(2023, 12, 28), date(2023, 12, 29), date(2024, 1, 2), date(2024, 1, 3)],
            [130.0, 120.0, 126.0, 108.0],
            [None, None, 0.05, -0.10],
        ),
        # A year with no close before it in the history has no YTD return (2022 -> 2024 gap).
        (
            [date(2022, 12, 30), date(2024, 1, 2), date(2024, 1, 3)],
            [100.0, 110.0, 120.0],
            [None, None, None],
        ),
        # Three years: each year rebases on the previous year's last close.
        (
            [date(2021, 12, 31), date(2022, 6, 1), date(2022, 12, 30), date(2023, 3, 1)],
            [200.0, 150.0, 160.0, 200.0],
            [None, -0.25, -0.20, 0.25],
        ),
    ],
)
def test_ytd_return_rebases_on_last_close_of_previous_year(dates, closes, expected):
    got = daily(closes, dates)["ytd_return"].to_list()
    assert got == [None if e is None else pytest.approx(e) for e in expected]


@pytest.mark.parametrize(
    ("dates", "closes", "expected"),
    [
        # 2023's last close (120), on every 2024 row; none before it in the history.
        ([date(2023, 12, 28), date(2023, 12, 29), date(2024, 1, 2), date(2024, 1, 3)], [130.0, 120.0, 126.0, 108.0], [None, None, 120.0, 120.0]),
        # A gap year: 2024 has no previous year's close.
        ([date(2022, 12, 30), date(2024, 1, 2), date(2024, 1, 3)], [100.0, 110.0, 120.0], [None, None, None]),
    ],
)
def test_prev_year_close_is_the_ytd_base(dates, closes, expected):
    got = daily(closes, dates)
    assert got["prev_year_close"].to_list() == expected
    with_base = got.filter(pl.col("prev_year_close").is_not_null())
    assert (with_base["ytd_return"] == with_base["close"] / with_base["prev_year_close"] - 1).all()


@pytest.mark.parametrize(
    ("closes", "records"),
    [
        # First row: nothing earlier, not a record. 101 equal to the max is not a record (tie).
        ([100.0, 101.0, 101.0, 100.0, 102.0, 102.0001], [False, True, False, False, True, True]),
        ([100.0, 90.0, 95.0, 99.99, 100.0, 100.01], [False, False, False, False, False, True]),
        ([5.0, 4.0, 3.0], [False, False, False]),
    ],
)
def test_record_close_is_strictly_above_every_earlier_close(closes, records):
    assert daily(closes)["is_record_close"].to_list() == records


def test_records_ytd_counts_within_the_calendar_year_and_resets():
    dates = [date(2023, 12, 27), date(2023, 12, 28), date(2023, 12, 29), date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)]
    closes = [100.0, 101.0, 102.0, 103.0, 101.0, 104.0]
    out = daily(closes, dates)
    assert out["is_record_close"].to_list() == [False, True, True, True, False, True]
    assert out["records_ytd"].to_list() == [0, 1, 2, 1, 1, 2]


def test_drawdown_is_close_over_running_max_including_today():
    out = daily([100.0, 120.0, 90.0, 130.0, 117.0])
    assert out["drawdown_from_record"].to_list() == pytest.approx([0.0, 0.0, -0.25, 0.0, -0.10])


def test_sma_is_null_until_the_window_is_full():
    closes = [float(i) for i in range(1, 61)]
    out = daily(closes)
    sma50 = out["sma_50"].to_list()
    assert sma50[:49] == [None] * 49
    assert sma50[49] == pytest.approx(25.5)  # mean of 1..50
    assert sma50[59] == pytest.approx(35.5)  # mean of 11..60
    assert out["sma_200"].null_count() == 60


def test_sma_200_and_52_week_range_on_a_long_series():
    closes = [100.0 + (i % 37) - (i // 50) for i in range(300)]
    out = daily(closes)
    assert out["sma_200"][198] is None
    assert out["sma_200"][199] == pytest.approx(sum(closes[:200]) / 200)
    assert out["sma_200"][299] == pytest.approx(sum(closes[100:300]) / 200)
    # 252 sessions including today; full windows only.
    assert out["high_52w"][250] is None and out["low_52w"][250] is None
    assert out["high_52w"][251] == max(closes[:252])
    assert out["low_52w"][299] == min(closes[48:300])


@pytest.mark.parametrize(
    "closes",
    [
        [100 + 3 * math.sin(i / 2.0) + i * 0.1 for i in range(60)],
        [100 * (1.01 if i % 3 else 0.98) ** i for i in range(40)],
        [44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28, 46.28,
         46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25, 45.71, 46.45, 45.78, 45.35, 44.03, 44.18, 44.22, 44.57],
    ],
    ids=["sine-drift", "zigzag", "textbook"],
)
def test_rsi_matches_a_hand_loop_of_wilders_method(closes):
    got = daily(closes)["rsi_14"].to_list()
    want = wilder_rsi_by_hand(closes)
    assert got[:14] == [None] * 14
    assert got[14:] == pytest.approx(want[14:], abs=1e-9)


def test_rsi_textbook_value():
    # The classic worked example (Wilder / StockCharts table): first RSI on the 15th close is 70.46
    # (70.53 in the table, which rounds its averages at each step).
    closes = [44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28, 46.28]
    assert daily(closes)["rsi_14"][14] == pytest.approx(70.46, abs=0.1)


@pytest.mark.parametrize(
    ("closes", "value"),
    [([100.0 + i for i in range(20)], 100.0), ([100.0] * 20, 100.0), ([100.0 - i for i in range(20)], 0.0)],
    ids=["only-gains", "flat", "only-losses"],
)
def test_rsi_edges(closes, value):
    assert daily(closes)["rsi_14"][19] == pytest.approx(value)


def test_symbols_are_computed_independently():
    a = bars([100.0, 102.0, 101.0, 105.0], symbol="^A")
    b = bars([50.0, 49.0, 51.0, 51.0], symbol="^B")
    both = index_daily(pl.concat([b, a])).collect()
    alone = index_daily(a).collect()
    assert both.filter(pl.col("symbol") == "^A").equals(alone)
    assert both["symbol"].to_list() == ["^A"] * 4 + ["^B"] * 4


def test_index_records_per_year():
    dates = [date(2022, 12, 29), date(2022, 12, 30), date(2023, 6, 1), date(2024, 1, 2), date(2024, 1, 3), date(2024, 2, 1)]
    closes = [100.0, 101.0, 99.0, 102.0, 101.0, 103.0]
    out = index_records(index_daily(bars(closes, dates))).collect()
    assert out.to_dicts() == [
        {"symbol": "^X", "year": 2022, "record_closes": 1, "first_record_date": date(2022, 12, 30),
         "last_record_date": date(2022, 12, 30), "history_start": date(2022, 12, 29)},
        {"symbol": "^X", "year": 2023, "record_closes": 0, "first_record_date": None,
         "last_record_date": None, "history_start": date(2022, 12, 29)},
        {"symbol": "^X", "year": 2024, "record_closes": 2, "first_record_date": date(2024, 1, 2),
         "last_record_date": date(2024, 2, 1), "history_start": date(2022, 12, 29)},
    ]  # fmt: skip


# Properties -------------------------------------------------------------------------------------

closes_strategy = st.lists(
    st.floats(min_value=1.0, max_value=10_000.0, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 2)),
    min_size=1,
    max_size=80,
)


@settings(max_examples=examples(150), deadline=None)
@given(closes_strategy)
def test_records_are_exactly_the_strict_running_maxima(closes):
    out = daily(closes)
    expected, best = [], None
    for c in closes:
        expected.append(best is not None and c > best)
        best = c if best is None else max(best, c)
    assert out["is_record_close"].to_list() == expected
    assert all(d <= 0.0 for d in out["drawdown_from_record"].to_list())
    # A record close is always at its running max (drawdown exactly 0).
    assert all(d == 0.0 for d, r in zip(out["drawdown_from_record"], out["is_record_close"]) if r)


@settings(max_examples=examples(100), deadline=None)
@given(closes_strategy, st.integers(min_value=0, max_value=400))
def test_records_ytd_is_the_running_count_within_each_year(closes, offset):
    dates = weekdays(date(2020, 1, 1) + timedelta(days=offset), len(closes))
    out = daily(closes, dates)
    count, year = 0, None
    for d, is_rec, n in zip(out["session_date"], out["is_record_close"], out["records_ytd"]):
        count = 0 if d.year != year else count
        year = d.year
        count += int(is_rec)
        assert n == count


# Real history (tests/fixtures/yahoo-daily-csv, Yahoo 2000-01-03 .. 2022-11-18) ----------------


@pytest.fixture(scope="module")
def real() -> pl.DataFrame:
    return index_daily(pl.concat([read_yahoo(s) for s in ("^RUT", "^GSPC", "^VIX")])).collect()


def _row(df: pl.DataFrame, symbol: str, day: date) -> dict:
    return df.filter(pl.col("symbol") == symbol, pl.col("session_date") == day).to_dicts()[0]


def test_real_history_has_every_session(real):
    assert real.group_by("symbol").len().sort("symbol")["len"].to_list() == [5759, 5759, 5759]


def test_russell_2000_record_close_of_november_2021(real):
    rut = real.filter(pl.col("symbol") == "^RUT")
    row = _row(real, "^RUT", date(2021, 11, 8))
    assert row["close"] == pytest.approx(2442.74, abs=0.005)
    assert row["is_record_close"] and row["drawdown_from_record"] == 0.0
    assert row["close"] == rut["close"].max()
    later = rut.filter(pl.col("session_date") > date(2021, 11, 8))
    assert not later["is_record_close"].any()
    records = index_records(real.lazy()).collect()
    rut_2021 = records.filter(pl.col("symbol") == "^RUT", pl.col("year") == 2021).to_dicts()[0]
    assert rut_2021["last_record_date"] == date(2021, 11, 8)
    assert rut_2021["history_start"] == date(2000, 1, 3)
    assert row["records_ytd"] == rut_2021["record_closes"]


def test_sp500_record_of_2007_first_beaten_in_march_2013(real):
    row = _row(real, "^GSPC", date(2007, 10, 9))
    assert row["close"] == pytest.approx(1565.15, abs=0.005) and row["is_record_close"]
    between = real.filter(
        pl.col("symbol") == "^GSPC", pl.col("session_date").is_between(date(2007, 10, 10), date(2013, 3, 27))
    )
    assert between.height > 1300 and not between["is_record_close"].any()
    assert between["close"].max() < 1565.15
    beaten = _row(real, "^GSPC", date(2013, 3, 28))
    assert beaten["close"] == pytest.approx(1569.19, abs=0.005) and beaten["is_record_close"]
    assert beaten["records_ytd"] == 1
    # The 2009 trough sits about 57% below the 2007 record.
    trough = real.filter(pl.col("symbol") == "^GSPC")["drawdown_from_record"].min()
    assert trough == pytest.approx(-0.5678, abs=0.001)


@pytest.mark.parametrize(
    ("symbol", "year", "published"),
    [
        ("^GSPC", 2008, -0.385),
        ("^GSPC", 2013, 0.296),
        ("^GSPC", 2019, 0.289),
        ("^GSPC", 2021, 0.269),
        ("^RUT", 2008, -0.348),
        ("^RUT", 2020, 0.184),
    ],
)
def test_calendar_year_returns_match_the_file_and_published_figures(real, symbol, year, published):
    raw = pl.read_csv(YAHOO_DAILY / f"{symbol}.csv", try_parse_dates=True)
    year_end = raw.group_by(pl.col("Date").dt.year().alias("y")).agg(pl.col("Close").sort_by("Date").last())
    close = dict(zip(year_end["y"], year_end["Close"]))
    from_file = close[year] / close[year - 1] - 1
    last_session = real.filter(pl.col("symbol") == symbol, pl.col("session_date").dt.year() == year).tail(1)
    ytd = last_session["ytd_return"][0]
    assert ytd == pytest.approx(from_file, abs=1e-12)
    assert abs(ytd - published) <= 0.001 + 1e-9  # 0.1 percentage point


def test_first_year_of_history_has_no_ytd_return(real):
    assert real.filter(pl.col("session_date").dt.year() == 2000)["ytd_return"].null_count() == 3 * 252


def _real_closes() -> pl.DataFrame:
    from sources.csv import read_bars

    return pl.concat([read_bars(YAHOO_DAILY / f"{s}.csv", s) for s in ("^RUT", "^VIX")]).select("symbol", "session_date", "close")


@pytest.mark.parametrize("cut", [15, 16, 300, 1000, 2516, 5700])
def test_a_night_continuing_from_the_stored_row_equals_the_whole_history(cut):
    """Carried state: rows after a cut, computed from the stored row at the cut and the look-back
    window before it, equal the whole-history rows; the running figures bit for bit."""
    from transforms.index_daily import INDEX_LOOKBACK_SESSIONS, INDEX_STATE_COLUMNS

    bars = _real_closes()
    whole = index_daily(bars.lazy()).collect()
    dates = whole.filter(pl.col("symbol") == "^RUT").get_column("session_date")
    cut_date = dates[cut]
    state = whole.filter(pl.col("session_date") == cut_date).select("symbol", *INDEX_STATE_COLUMNS)
    window = bars.filter(
        (pl.col("session_date") > cut_date)
        | (pl.col("session_date") >= dates[max(0, cut - INDEX_LOOKBACK_SESSIONS + 1)])
    )
    night = index_daily(window.lazy(), state.lazy()).collect()
    expected = whole.filter(pl.col("session_date") > cut_date)
    assert night.height == expected.height > 0
    exact = ["symbol", "session_date", "prev_year_close", "is_record_close", "records_ytd", "record_close", "record_date", "rsi_avg_gain", "rsi_avg_loss", "rsi_14"]
    assert night.select(exact).equals(expected.select(exact))
    for c in ("ret_1d", "ytd_return", "drawdown_from_record", "sma_50", "sma_200", "high_52w", "low_52w", "change_5d", "support_level", "resistance_date"):
        a, b = night.get_column(c), expected.get_column(c)
        assert (a.is_null() == b.is_null()).all(), c
        if a.dtype == pl.Float64:
            assert ((a - b).abs() <= 1e-12 * b.abs().clip(lower_bound=1.0)).fill_null(True).all(), c
        else:
            assert a.equals(b), c
