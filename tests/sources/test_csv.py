"""The csv source on real Yahoo daily CSVs and iShares files, subsets of a folder, the daily-bar
layouts people have (Yahoo's download, what yfinance 1.7 writes, snake_case exports, close-only
files), rows from the future, and malformed files whose errors must name the file and the exact line."""

from __future__ import annotations

import json
import re
import shutil
import sys
import warnings
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from ground.settings import Settings
from sources import make_source
from sources.base import BARS_SCHEMA, FUNDAMENTALS_SCHEMA, HOLDINGS_SCHEMA, Source
from ground import calendar
from sources.csv import ACCEPTED_LAYOUTS, CsvSource, read_bar_file, read_bars, read_fundamentals

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
YAHOO = FIXTURES / "yahoo-daily-csv"
IJR = FIXTURES / "ishares-ijr"
IWM = FIXTURES / "ishares-iwm" / "IWM_holdings_2025-11-05.csv"
ETFS = {"IWM": "russell2000", "IJR": "sp600"}
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
FAR = date(2030, 1, 1)


def folder(tmp_path: Path, *files: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    for f in files:
        shutil.copy(f, d / f.name)
    return d


def write(d: Path, name: str, text: str) -> Path:
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(text, encoding="utf-8")
    return p


# real Yahoo daily CSVs ----------------------------------------------------------------------------


def test_real_rut_and_gspc(tmp_path):
    src = CsvSource(folder(tmp_path, YAHOO / "^RUT.csv", YAHOO / "^GSPC.csv"), universes=ETFS)
    assert isinstance(src, Source) and src.name == "csv"
    assert src.symbols() == ["^GSPC", "^RUT"]
    got = src.bars(["^RUT", "^GSPC"], date(1990, 1, 1), date(2030, 1, 1))
    assert dict(got.bars.schema) == BARS_SCHEMA
    assert got.failures.is_empty()
    for symbol in ("^RUT", "^GSPC"):
        b = got.bars.filter(pl.col("symbol") == symbol)
        assert b.height == 5_759
        assert b.get_column("session_date").is_sorted() and b.get_column("session_date").is_unique().all()
        assert (b.get_column("session_date")[0], b.get_column("session_date")[-1]) == (date(2000, 1, 3), date(2022, 11, 18))
    rut = got.bars.filter(pl.col("symbol") == "^RUT")
    first = rut.row(0, named=True)
    # 2000-01-03,504.76001,510.95999000000006,489.95001,496.42001,496.42001,931800000.0
    assert first["open"] == pytest.approx(504.76001) and first["high"] == pytest.approx(510.95999)
    assert first["close"] == pytest.approx(496.42001) and first["adj_close"] == pytest.approx(496.42001)
    assert first["volume"] == 931_800_000  # float text read as a whole number
    last = rut.row(-1, named=True)
    assert last["close"] == pytest.approx(1849.72998) and last["volume"] == 4_037_360_000
    gspc = got.bars.filter(pl.col("symbol") == "^GSPC")
    # The README's quirk: ^RUT volume repeats ^GSPC volume on most days.
    same = rut.join(gspc, on="session_date").filter(pl.col("volume") == pl.col("volume_right")).height
    assert same > 5_759 / 2


def test_range_filter_and_missing_symbol(tmp_path):
    src = CsvSource(folder(tmp_path, YAHOO / "^RUT.csv"), universes=ETFS)
    got = src.bars(["^RUT", "^SP600"], date(2022, 11, 1), date(2022, 11, 30))
    assert got.bars.get_column("session_date").to_list()[:2] == [date(2022, 11, 1), date(2022, 11, 2)]
    assert got.bars.height == 14  # Nov 1..18, 2022
    assert got.failures.rows() == [("^SP600", "bars", f"no file ^SP600.csv in {src.path}")]
    none = src.bars(["^RUT"], date(2023, 1, 1), date(2023, 1, 31))
    assert none.bars.is_empty()
    assert "^RUT.csv covers 2000-01-03..2022-11-18, nothing in 2023-01-01..2023-01-31" in none.failures.get_column("error")[0]
    assert src.date_range() == (date(2000, 1, 3), date(2022, 11, 18))


def test_vix_volume_zero_and_empty(tmp_path):
    d = folder(tmp_path, YAHOO / "^VIX.csv")
    vix = read_bars(d / "^VIX.csv")
    assert vix.height == 5_759 and vix.get_column("volume").unique().to_list() == [0]
    # Yahoo leaves index volume empty in other downloads: empty is null, not an error.
    lines = (d / "^VIX.csv").read_text().splitlines()
    blanked = [lines[0]] + [line.rsplit(",", 1)[0] + "," for line in lines[1:]]
    write(d, "^VIX.csv", "\n".join(blanked) + "\n")
    vix = CsvSource(d, universes=ETFS).bars(["^VIX"], date(2000, 1, 1), date(2022, 12, 31)).bars
    assert vix.height == 5_759 and vix.get_column("volume").null_count() == 5_759
    assert vix.get_column("close").null_count() == 0


# the layouts people have --------------------------------------------------------------------------
# Texts below are what yfinance 1.7 wrote with DataFrame.to_csv() for AAPL around its 2020-08-31
# 4:1 split, from the recorded Yahoo answers in tests/fixtures/yahoo-http (first rows kept);
# test_what_yfinance_writes_reads_back below runs yfinance itself to produce them.

HISTORY_ADJUSTED = """\
Date,Open,High,Low,Close,Volume,Dividends,Stock Splits
2020-08-31 00:00:00-04:00,124.40310060397898,127.73793655138815,122.86244278988478,125.82673645019531,225702700,0.0,4.0
2020-09-01 00:00:00-04:00,129.45407646203302,131.44328581036513,127.2796108898159,130.83871459960938,151948100,0.0,0.0
"""
HISTORY_RAW = """\
Date,Open,High,Low,Close,Adj Close,Volume,Dividends,Stock Splits
2020-08-31 00:00:00-04:00,127.58000183105469,131.0,126.0,129.0399932861328,125.82673645019531,225702700,0.0,4.0
2020-09-01 00:00:00-04:00,132.75999450683594,134.8000030517578,130.52999877929688,134.17999267578125,130.83871459960938,151948100,0.0,0.0
"""
DOWNLOAD_ADJUSTED = """\
Price,Close,High,Low,Open,Volume
Ticker,AAPL,AAPL,AAPL,AAPL,AAPL
Date,,,,,
2020-08-31,125.82673645019531,127.73793655138815,122.86244278988478,124.40310060397898,225702700
2020-09-01,130.83871459960938,131.44328581036513,127.2796108898159,129.45407646203302,151948100
"""
DOWNLOAD_RAW = """\
Price,Adj Close,Close,Dividends,High,Low,Open,Stock Splits,Volume
Ticker,AAPL,AAPL,AAPL,AAPL,AAPL,AAPL,AAPL,AAPL
Date,,,,,,,,
2020-08-31,125.82673645019531,129.0399932861328,0.0,131.0,126.0,127.58000183105469,4.0,225702700
2020-09-01,130.83871459960938,134.17999267578125,0.0,134.8000030517578,130.52999877929688,132.75999450683594,0.0,151948100
"""
# Two tickers: the rows are the union of their dates, a ticker's cells are empty where it had no bar.
DOWNLOAD_TWO = """\
Price,Adj Close,Adj Close,Close,Close,High,High,Low,Low,Open,Open,Volume,Volume
Ticker,AAPL,EPAC,AAPL,EPAC,AAPL,EPAC,AAPL,EPAC,AAPL,EPAC,AAPL,EPAC
Date,,,,,,,,,,,,
2020-01-02,,25.943532943725586,,26.15999984741211,,26.34000015258789,,25.75,,26.190000534057617,,407900.0
2020-08-31,125.82673645019531,,129.0399932861328,,131.0,,126.0,,127.58000183105469,,225702700.0,
2020-09-01,130.83871459960938,,134.17999267578125,,134.8000030517578,,130.52999877929688,,132.75999450683594,,151948100.0,
"""
DOWNLOAD_BY_TICKER = """\
Ticker,EPAC,EPAC,EPAC,EPAC,EPAC,AAPL,AAPL,AAPL,AAPL,AAPL
Price,Open,High,Low,Close,Volume,Open,High,Low,Close,Volume
Date,,,,,,,,,,
2020-01-02,25.973285382825814,26.122043795195278,25.536925733851664,25.943532943725586,407900.0,,,,,
2020-08-31,,,,,,124.40310060397898,127.73793655138815,122.86244278988478,125.82673645019531,225702700.0
2020-09-01,,,,,,129.45407646203302,131.44328581036513,127.2796108898159,130.83871459960938,151948100.0
"""
AUG31, SEP1, JAN2 = date(2020, 8, 31), date(2020, 9, 1), date(2020, 1, 2)
# (session_date, close, adj_close, volume) as the recorded Yahoo answers hold them.
AAPL_RAW = [(AUG31, 129.0399932861328, 125.82673645019531, 225_702_700), (SEP1, 134.17999267578125, 130.83871459960938, 151_948_100)]
AAPL_ADJUSTED = [(d, adj, adj, v) for d, _, adj, v in AAPL_RAW]  # auto_adjust=True: Close is already adjusted
EPAC_RAW = [(JAN2, 26.15999984741211, 25.943532943725586, 407_900)]
EPAC_ADJUSTED = [(JAN2, 25.943532943725586, 25.943532943725586, 407_900)]


def _summary(bars: pl.DataFrame) -> list[tuple]:
    return bars.select("session_date", "close", "adj_close", "volume").rows()


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("AAPL.csv", HISTORY_ADJUSTED, {"AAPL": AAPL_ADJUSTED}),
        ("AAPL.csv", HISTORY_RAW, {"AAPL": AAPL_RAW}),
        ("aapl download.csv", DOWNLOAD_ADJUSTED, {"AAPL": AAPL_ADJUSTED}),
        ("aapl download.csv", DOWNLOAD_RAW, {"AAPL": AAPL_RAW}),
        ("two.csv", DOWNLOAD_TWO, {"AAPL": AAPL_RAW, "EPAC": EPAC_RAW}),
        ("two.csv", DOWNLOAD_BY_TICKER, {"AAPL": AAPL_ADJUSTED, "EPAC": EPAC_ADJUSTED}),
    ],
    ids=["history", "history-adj-close", "download", "download-adj-close", "download-two-tickers", "download-by-ticker"],
)
def test_what_yfinance_writes(tmp_path, name, text, expected):
    d = tmp_path / "data"
    write(d, name, text)
    src = CsvSource(d, universes=ETFS)
    assert src.symbols() == sorted(expected)  # a multi-level file's Ticker line names its symbols
    got = src.bars(sorted(expected), date(2020, 1, 1), date(2020, 12, 31))
    assert got.failures.is_empty() and got.excluded.is_empty()
    for symbol, rows in expected.items():
        bars = got.bars.filter(pl.col("symbol") == symbol)
        assert _summary(bars) == rows
    aapl = got.bars.filter(pl.col("symbol") == "AAPL").row(0, named=True)
    assert aapl["open"] is not None and aapl["high"] >= aapl["low"]


def test_snake_case_any_order_and_lower_case(tmp_path):
    d = tmp_path / "data"
    write(d, "ABC.csv", "date,adj_close,close,high,low,open,volume\n"
                        "2024-01-03,10.9,11.0,11.5,10.0,10.5,1200\n"
                        "2024-01-02,10.4,10.5,11.0,9.5,10.0,1000\n")
    write(d, "XYZ.csv", "DATE,OPEN,HIGH,LOW,CLOSE,ADJ-CLOSE,VOLUME\n2024-01-02,1,2,0.5,1.5,1.4,7\n")
    got = CsvSource(d, universes=ETFS).bars(["ABC", "XYZ"], date(2024, 1, 1), date(2024, 1, 31)).bars
    assert got.rows() == [
        ("ABC", date(2024, 1, 2), 10.0, 11.0, 9.5, 10.5, 10.4, 1000),
        ("ABC", date(2024, 1, 3), 10.5, 11.5, 10.0, 11.0, 10.9, 1200),
        ("XYZ", date(2024, 1, 2), 1.0, 2.0, 0.5, 1.5, 1.4, 7),
    ]


def test_close_only_file(tmp_path):
    path = write(tmp_path / "data", "^SP600.csv", "Date,Close\n2024-01-02,1335.31\n2024-01-03,1311.55\n")
    b = read_bars(path)
    assert b.select("symbol", "session_date", "close", "adj_close").rows() == [
        ("^SP600", date(2024, 1, 2), 1335.31, 1335.31), ("^SP600", date(2024, 1, 3), 1311.55, 1311.55)
    ]
    assert b.select("open", "high", "low", "volume").null_count().row(0) == (2, 2, 2, 2)


def test_quoted_fields_bom_and_crlf(tmp_path):
    text = ('\ufeff"Date","Open","High","Low","Close","Adj Close","Volume"\r\n'
            '"2024-01-02","10.0","11.0","9.5","10.5","10.5","1000"\r\n'
            '"2024-01-03",null,null,null,"11.0","11.0",""\r\n')
    path = tmp_path / "ABC.csv"
    path.write_bytes(text.encode("utf-8"))
    b = read_bars(path)
    assert b.select("session_date", "open", "close", "volume").rows() == [
        (date(2024, 1, 2), 10.0, 10.5, 1000), (date(2024, 1, 3), None, 11.0, None)
    ]


def _strings(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def test_the_real_fixture_reads_the_same_in_every_layout(tmp_path):
    original = read_bars(YAHOO / "^GSPC.csv")
    text = _strings(YAHOO / "^GSPC.csv")
    d = tmp_path / "variants"
    d.mkdir()
    # snake_case in another order, CRLF line ends, a BOM.
    snake = text.select("Volume", "Close", "Date", "Adj Close", "Low", "High", "Open")
    snake.columns = [c.lower().replace(" ", "_") for c in snake.columns]
    (d / "snake.csv").write_bytes(b"\xef\xbb\xbf" + snake.write_csv(line_terminator="\r\n").encode())
    # every field quoted
    text.write_csv(d / "quoted.csv", quote_style="always")
    # yfinance's multi-level download, columns in its alphabetical order
    prices = ["Adj Close", "Close", "High", "Low", "Open", "Volume"]
    multi = "Price," + ",".join(prices) + "\nTicker," + ",".join(["^GSPC"] * 6) + "\nDate" + "," * 6 + "\n"
    (d / "download.csv").write_text(multi + text.select("Date", *prices).write_csv(include_header=False))
    for name in ("snake.csv", "quoted.csv", "download.csv"):
        assert read_bars(d / name, "^GSPC").equals(original), name
    close_only = read_bars(write(d, "close.csv", text.select("Date", "Close").write_csv()), "^GSPC")
    assert close_only.get_column("close").equals(original.get_column("close"))
    assert close_only.get_column("adj_close").equals(original.get_column("close"))


def test_one_download_of_three_real_indexes(tmp_path):
    """yf.download(["^GSPC", "^RUT", "^VIX"]) saved whole: one file, three symbols; ^VIX lacks its
    first 100 rows, so its cells there are empty, as yfinance leaves a ticker without a bar."""
    parts = {s: _strings(YAHOO / f"{s}.csv") for s in ("^GSPC", "^RUT", "^VIX")}
    parts["^VIX"] = parts["^VIX"].slice(100)
    wide = parts["^GSPC"].select("Date")
    for s, df in parts.items():
        wide = wide.join(df.rename({c: f"{c}|{s}" for c in df.columns if c != "Date"}), on="Date", how="left")
    columns = sorted((c for c in wide.columns if c != "Date"), key=lambda c: tuple(c.split("|")))
    header = ("Price," + ",".join(c.split("|")[0] for c in columns) + "\nTicker," + ",".join(c.split("|")[1] for c in columns)
              + "\nDate" + "," * len(columns) + "\n")
    d = tmp_path / "data"
    d.mkdir()
    (d / "indexes.csv").write_text(header + wide.select("Date", *columns).write_csv(include_header=False))
    src = CsvSource(d, universes=ETFS)
    assert src.symbols() == ["^GSPC", "^RUT", "^VIX"]
    got = src.bars(["^GSPC", "^RUT", "^VIX"], date(1990, 1, 1), date(2025, 1, 1))
    for s in ("^GSPC", "^RUT"):
        assert got.bars.filter(pl.col("symbol") == s).equals(read_bars(YAHOO / f"{s}.csv"))
    assert got.bars.filter(pl.col("symbol") == "^VIX").equals(read_bars(YAHOO / "^VIX.csv").slice(100))
    assert src.date_range() == (date(2000, 1, 3), date(2022, 11, 18))
    vix = src.bars(["^VIX"], date(2022, 11, 1), date(2022, 11, 30)).bars
    assert vix.get_column("symbol").unique().to_list() == ["^VIX"] and vix.height == 14
    with pytest.raises(ValueError, match=r"indexes.csv: holds \^GSPC, \^RUT, \^VIX; name the symbol to read"):
        read_bars(d / "indexes.csv")
    assert read_bar_file(d / "indexes.csv")["^VIX"].bars.get_column("line")[0] == 3 + 101


def test_a_symbol_in_two_files_is_an_error(tmp_path):
    d = folder(tmp_path, YAHOO / "^RUT.csv")
    write(d, "download.csv", "Price,Close\nTicker,^RUT\nDate,\n2024-01-02,2000.5\n")
    with pytest.raises(ValueError, match=r"\^RUT has bars in two files, \^RUT.csv and download.csv; keep one"):
        CsvSource(d, universes=ETFS)


def test_an_identical_repeated_line_is_collapsed_and_reported(tmp_path):
    path = _bars_file(tmp_path, GOOD + [GOOD[1]])  # line 6 repeats line 3
    assert read_bars(path).height == 4
    got = CsvSource(path.parent, universes=ETFS).bars(["ABC"], date(2024, 1, 1), date(2024, 1, 31))
    assert got.bars.height == 4
    assert got.excluded.select("dataset", "key", "reason").rows() == [
        ("raw.equity_bars", "ABC|2024-01-03", "repeats line 3 of ABC.csv exactly (same date, same values): kept that line")
    ]
    assert json.loads(got.excluded.get_column("row_json")[0])["_line"] == 6
    # Out of the requested range it is not reported.
    assert CsvSource(path.parent, universes=ETFS).bars(["ABC"], date(2024, 1, 4), date(2024, 1, 31)).excluded.is_empty()


@pytest.mark.parametrize(
    "header, problem",
    [
        ("Timestamp,Close", r"unknown column\(s\) 'Timestamp'"),
        ("Date,Open,High,Low,Close*,Adj Close**,Volume", r"unknown column\(s\) 'Close\*', 'Adj Close\*\*'"),
        (",Date,Open,High,Low,Close,Adj Close,Volume", r"unknown column\(s\) unnamed column 1"),
        ("Date,Open,High,Low,Volume", r"no Close column"),
        ("Date,Close,close", r"the same column twice \(Close and close\)"),
        ("Date,Close,AdjClose", r"unknown column\(s\) 'AdjClose'"),
        ("Ticker,Date,Close", r"unknown column\(s\) 'Ticker'"),
        ("Price,Close\nTicker,^RUT", r"a multi-level header needs Price and Ticker lines, then a Date line"),
        ("Price,Close,Close\nTicker,^RUT,\nDate,,", r"no ticker above column 3 \(Close\)"),
        ("Price,Close,Open\nTicker,^RUT,^GSPC\nDate,,", r"no Close column for \^GSPC"),
    ],
    ids=["no-date", "web-page-copy", "pandas-index", "no-close", "twice", "run-together", "long-format", "no-date-line", "no-ticker", "ticker-without-close"],
)
def test_an_unknown_layout_is_one_line_naming_file_header_and_layouts(tmp_path, header, problem):
    width = header.split("\n")[0].count(",") + 1
    path = write(tmp_path / "d", "ABC.csv", header + "\n" + ",".join(["2024-01-02"] + ["1"] * (width - 1)) + "\n")
    with pytest.raises(ValueError) as info:
        read_bars(path, "ABC")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path} line 1: ")
    assert re.search(problem, message), message
    # A multi-level header is shown as the three lines read as one (here a data line, when one is missing).
    lines = path.read_text().splitlines()
    shown = " / ".join(lines[:3]) if header.startswith("Price") else lines[0]
    assert f"header {shown!r} is not a daily-bar layout this source reads; {ACCEPTED_LAYOUTS}" in message


def test_what_yfinance_writes_reads_back(tmp_path):
    """yfinance 1.7 itself, against a fake Yahoo serving the recorded answers (as tests/sources/
    test_yahoo.py does), saves its frames with to_csv(); the csv source reads each back."""
    sys.path.insert(0, str(FIXTURES / "yahoo-http"))
    import fake_yahoo as fy
    import yfinance as yf
    from curl_cffi import requests as curl_requests
    from yfinance import cache, data

    aapl = fy.recorded("chart-AAPL-2020-08-31-to-2020-11-07.json")
    epac = fy.recorded("chart-EPAC-2020-01-01-to-2020-01-03.json")
    charts = {"AAPL": lambda r: fy.json_reply(fy.chart_window(aapl.body, r.params)), "EPAC": lambda r: epac}

    def answer(r):
        return charts[r.symbol](r) if r.kind == "chart" and r.symbol in charts else None

    data.YfData._instances.clear()
    data.YfData.cache_get.cache_clear()
    cache._TzCacheManager._tz_cache = None
    cache._CookieCacheManager._Cookie_cache = None
    yf.set_tz_cache_location(str(tmp_path / "yf-cache"))
    folders = {}
    try:
        # yfinance 1.7 uses pandas APIs that pandas 3 deprecates: its warnings, not ours. (A filter
        # mark would not do: importing yfinance above installs filters of its own in front of it.)
        with fy.FakeYahoo(answer) as fake, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            session = curl_requests.Session(**fake.session_options)
            frames = {
                "download": yf.download(["AAPL", "EPAC"], start="2020-01-01", end="2020-09-03", session=session,
                                        progress=False, threads=False, auto_adjust=False, actions=True),
                "download-adjusted": yf.download(["AAPL", "EPAC"], start="2020-01-01", end="2020-09-03",
                                                 session=session, progress=False, threads=False),
                "history": yf.Ticker("AAPL", session=session).history(start="2020-08-31", end="2020-09-03"),
                "history-adj-close": yf.Ticker("AAPL", session=session).history(
                    start="2020-08-31", end="2020-09-03", auto_adjust=False),
            }
    finally:
        data.YfData._instances.clear()
        data.YfData.cache_get.cache_clear()
        cache._TzCacheManager._tz_cache = None
        cache._CookieCacheManager._Cookie_cache = None
    for name, frame in frames.items():
        folders[name] = tmp_path / name
        folders[name].mkdir()
        frame.to_csv(folders[name] / ("AAPL.csv" if name.startswith("history") else "saved.csv"))
    assert (folders["download"] / "saved.csv").read_text().startswith("Price,Adj Close,Adj Close,Close,Close,Dividends,")
    assert (folders["history"] / "AAPL.csv").read_text().splitlines()[1].startswith("2020-08-31 00:00:00-04:00,")

    sept2 = date(2020, 9, 2)
    raw_sept2 = (sept2, 131.39999389648438, 128.12794494628906, 200_119_000)
    adj_sept2 = (sept2, 128.12794494628906, 128.12794494628906, 200_119_000)
    expected = {
        "download": {"AAPL": AAPL_RAW + [raw_sept2], "EPAC": EPAC_RAW},
        "download-adjusted": {"AAPL": AAPL_ADJUSTED + [adj_sept2], "EPAC": EPAC_ADJUSTED},
        "history": {"AAPL": AAPL_ADJUSTED + [adj_sept2]},
        "history-adj-close": {"AAPL": AAPL_RAW + [raw_sept2]},
    }
    for name, want in expected.items():
        src = CsvSource(folders[name], universes=ETFS)
        assert src.symbols() == sorted(want), name
        got = src.bars(sorted(want), date(2020, 1, 1), date(2020, 12, 31))
        assert got.failures.is_empty(), name
        for symbol, rows in want.items():
            assert _summary(got.bars.filter(pl.col("symbol") == symbol)) == rows, (name, symbol)


# rows from the future ------------------------------------------------------------------------------

STRAY = "2031-01-02,1850.0,1860.0,1840.0,1855.0,1855.0,4000000000"


def test_a_stray_future_row_is_reported_never_loaded(tmp_path):
    d = folder(tmp_path, YAHOO / "^RUT.csv")
    with open(d / "^RUT.csv", "a") as fh:
        fh.write(STRAY + "\n")
    src = CsvSource(d, universes=ETFS)
    latest = calendar.latest_completed_session()
    # The backfill's default range comes from date_range: it ends at the file's last real session.
    start, end = src.date_range()
    assert (start, end) == (date(2000, 1, 3), date(2022, 11, 18))
    got = src.bars(["^RUT"], start, end)
    assert got.bars.height == 5_759 and got.bars.get_column("session_date").max() == end
    assert got.excluded.select("dataset", "key", "reason").rows() == [
        ("raw.index_bars", "^RUT|2031-01-02", f"dated after the latest completed NYSE session ({latest})")
    ]
    row = json.loads(got.excluded.get_column("row_json")[0])
    assert row == {"symbol": "^RUT", "session_date": "2031-01-02", "open": 1850.0, "high": 1860.0, "low": 1840.0,
                   "close": 1855.0, "adj_close": 1855.0, "volume": 4_000_000_000, "_file": "^RUT.csv", "_line": 5_761}
    # Every data line of the file is a bar or an excluded row.
    assert got.bars.height + got.excluded.height == len((d / "^RUT.csv").read_text().splitlines()) - 1
    # Each load that reaches the end of the history hears of it again, a load into the future too...
    for first, last in ((date(2022, 11, 18), latest), (date(2031, 1, 1), date(2031, 12, 31))):
        again = src.bars(["^RUT"], first, last)
        assert again.excluded.get_column("key").to_list() == ["^RUT|2031-01-02"]
        assert 2031 not in again.bars.get_column("session_date").dt.year().to_list()
    # ...one that stops before the end of the history does not.
    assert src.bars(["^RUT"], date(2022, 1, 1), date(2022, 6, 30)).excluded.is_empty()


def test_future_rows_name_the_table_their_symbol_loads_into(tmp_path):
    d = folder(tmp_path)
    shutil.copy(YAHOO / "^GSPC.csv", d / "SPY.csv")
    shutil.copy(YAHOO / "^RUT.csv", d / "RUT.csv")
    # As if the last session completed were 2022-11-16: the fixture's last two rows are in the future.
    src = CsvSource(d, universes=ETFS, index_symbols=["RUT"], latest_session_date=date(2022, 11, 16))
    assert src.date_range() == (date(2000, 1, 3), date(2022, 11, 16))
    got = src.bars(["SPY", "RUT"], date(2022, 11, 1), date(2022, 11, 16))
    assert got.bars.get_column("session_date").max() == date(2022, 11, 16)
    assert got.excluded.select("dataset", "key").rows() == [
        ("raw.equity_bars", "SPY|2022-11-17"), ("raw.equity_bars", "SPY|2022-11-18"),
        ("raw.index_bars", "RUT|2022-11-17"), ("raw.index_bars", "RUT|2022-11-18"),
    ]
    assert set(got.excluded.get_column("reason")) == {"dated after the latest completed NYSE session (2022-11-16)"}


def test_a_file_all_in_the_future(tmp_path):
    d = tmp_path / "data"
    write(d, "ABC.csv", f"{HEADER}\n{STRAY}\n")
    src = CsvSource(d, universes=ETFS, latest_session_date=date(2026, 11, 27))
    with pytest.raises(ValueError, match=r"every bar in .* is dated after the latest completed NYSE session \(2026-11-27\): nothing to load"):
        src.date_range()
    got = src.bars(["ABC"], date(2026, 1, 1), date(2026, 11, 27))
    assert got.bars.is_empty() and got.excluded.get_column("key").to_list() == ["ABC|2031-01-02"]
    assert got.failures.get_column("error").to_list() == [
        "ABC.csv: every row of ABC is dated after the latest completed NYSE session (2026-11-27)"
    ]


def test_a_holdings_file_dated_in_the_future_is_reported(tmp_path):
    d = folder(tmp_path, IWM)
    src = CsvSource(d, universes=ETFS, latest_session_date=date(2025, 11, 4))
    got = src.holdings(["russell2000"], date(2025, 1, 1), date(2025, 11, 4))
    assert got.holdings.is_empty()
    assert got.failures.get_column("symbol").to_list() == ["russell2000"]
    members = got.excluded.filter(pl.col("reason").str.starts_with("snapshot dated after"))
    assert members.height == 1_954
    assert set(members.get_column("reason")) == {"snapshot dated after the latest completed NYSE session (2025-11-04)"}
    assert members.get_column("dataset").unique().to_list() == ["holdings"]
    first = json.loads(members.get_column("row_json")[0])
    assert first["as_of_date"] == "2025-11-05" and first["_file"] == IWM.name
    # The file's own non-member lines are reported too: every line of its table is accounted for.
    now = CsvSource(d, universes=ETFS).holdings(["russell2000"], date(2025, 1, 1), date(2025, 12, 31))
    assert got.excluded.height == now.holdings.height + now.excluded.height


def test_future_snapshots_are_reported_when_the_range_reaches_the_newest_past_one(tmp_path):
    monthly = sorted(IJR.glob("IJR_holdings_2017-??-??.csv"))
    src = CsvSource(folder(tmp_path, *monthly), universes=ETFS, latest_session_date=date(2017, 10, 15))
    early = src.holdings(["sp600"], date(2017, 1, 1), date(2017, 6, 30))
    assert early.holdings.get_column("as_of_date").max() == date(2017, 6, 30)
    assert not early.excluded.get_column("reason").str.starts_with("snapshot dated after").any()
    late = src.holdings(["sp600"], date(2017, 9, 1), date(2017, 10, 15))
    assert late.holdings.get_column("as_of_date").unique().to_list() == [date(2017, 9, 29)]
    future = late.excluded.filter(pl.col("reason").str.starts_with("snapshot dated after"))
    assert sorted(future.get_column("key").str.slice(6, 10).unique().to_list()) == ["2017-10-31", "2017-11-30", "2017-12-29"]


# malformed bar files ------------------------------------------------------------------------------

GOOD = [
    "2024-01-02,10.0,11.0,9.5,10.5,10.5,1000",
    "2024-01-03,10.5,11.5,10.0,11.0,11.0,1200.0",
    "2024-01-04,11.0,11.2,10.1,10.2,10.2,",
    "2024-01-05,10.2,10.9,10.0,10.8,10.8,900",
]


def _bars_file(tmp_path: Path, rows: list[str], header: str = HEADER, end: str = "\n") -> Path:
    return write(tmp_path / "bad", "ABC.csv", "\n".join([header, *rows]) + end)


def test_good_small_file(tmp_path):
    b = read_bars(_bars_file(tmp_path, GOOD))
    assert b.get_column("volume").to_list() == [1000, 1200, None, 900]
    assert b.get_column("symbol").unique().to_list() == ["ABC"]


def test_unsorted_rows_are_sorted_and_null_literals_are_missing(tmp_path):
    rows = [GOOD[1], GOOD[0], "2024-01-04,null,null,null,10.2,null,null"]
    b = read_bars(_bars_file(tmp_path, rows))
    assert b.get_column("session_date").to_list() == [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)]
    assert b.row(2, named=True)["open"] is None and b.row(2, named=True)["close"] == 10.2


def test_timestamp_dates_from_yfinance_are_sessions(tmp_path):
    rows = ["2024-01-02 00:00:00-05:00,10,11,9,10,10,5", "2024-01-03 00:00:00-05:00,10,11,9,10,10,5"]
    b = read_bars(_bars_file(tmp_path, rows))
    assert b.get_column("session_date").to_list() == [date(2024, 1, 2), date(2024, 1, 3)]


@pytest.mark.parametrize(
    "rows, header, end, message",
    [
        (GOOD[:2] + ["2024-01-04,11.0,11.2,abc,10.2,10.2,5"] + GOOD[3:], HEADER, "\n",
         r"ABC.csv line 4: Low 'abc' is not a number"),
        (GOOD[:1] + ["2024-13-03,10.5,11.5,10.0,11.0,11.0,1"] + GOOD[2:], HEADER, "\n",
         r"ABC.csv line 3: Date '2024-13-03' is not a date like 2024-01-31"),
        (GOOD[:1] + ["01/03/2024,10.5,11.5,10.0,11.0,11.0,1"], HEADER, "\n",
         r"ABC.csv line 3: Date '01/03/2024' is not a date"),
        (GOOD, "Date,Open,High,Low,Adj Close,Volume", "\n",
         r"ABC.csv line 1: no Close column: header 'Date,Open,High,Low,Adj Close,Volume' is not a daily-bar layout"),
        (GOOD, "Date,Open,High,Low,Close,Adj Close**,Volume", "\n",
         r"ABC.csv line 1: unknown column\(s\) 'Adj Close\*\*': header '[^']+' is not a daily-bar layout"),
        (GOOD, "Date,Open,High,Low,Close,Volume", "\n",
         r"ABC.csv line 2: 7 fields where the header has 6: '2024-01-02,"),
        (GOOD + ["2024-01-08,10.8,11"], HEADER, "",
         r"ABC.csv line 6: 3 fields where the header has 7 \(truncated last line\?\)"),
        (GOOD + ["2024-01-08,10.8,11"], HEADER, "\n\n",
         r"ABC.csv line 6: 3 fields where the header has 7 \(truncated last line\?\)"),
        (GOOD[:3] + ["2024-01-03,1,1,1,1,1,1"] + GOOD[3:], HEADER, "\n",
         r"ABC.csv line 5: duplicated date 2024-01-03 \(also on line 3\)"),
        (GOOD[:2] + ["2024-01-04,11.0,11.2,10.1,,10.2,5"], HEADER, "\n",
         r"ABC.csv line 4: Close '' is empty; a number is required"),
        (GOOD[:2] + ["2024-01-04,11.0,11.2,10.1,10.2,10.2,12.5"], HEADER, "\n",
         r"ABC.csv line 4: Volume '12.5' is not a whole non-negative number"),
        (GOOD[:2] + ["", GOOD[2]], HEADER, "\n",
         r"ABC.csv line 4: blank line inside the data"),
        (GOOD[:2] + ["2024-01-04,11.0,11.2,10.1,10.2,10.2,5,7"], HEADER, "\n",
         r"ABC.csv line 4: 8 fields where the header has 7: "),
        ([], HEADER, "\n", r"ABC.csv: no rows after the header"),
        (GOOD[:1] + ['2024-01-03,10.5,11.5,10.0,"11.0"x,11.0,1200'] + GOOD[2:], HEADER, "\n",
         r"ABC.csv line 3: broken quoting \(',' expected after '\"'\)"),
        (GOOD[:2] + ['2024-01-04,11.0,11.2,10.1,"10.2,10.2,5'], HEADER, "\n",
         r"ABC.csv line 4: broken quoting \(unexpected end of data\)"),
        (GOOD[:2] + ["2024-01-04,11.0,11.2,10.1,10.2,10.2,1e30"], HEADER, "\n",
         r"ABC.csv line 4: Volume '1e30' is too large for a number of shares"),
        (GOOD[:2] + ["2024-01-04,11.0,11.2,10.1,10.2,10.2,-5"], HEADER, "\n",
         r"ABC.csv line 4: Volume '-5' is not a whole non-negative number"),
        (GOOD[:2] + ["2024-01-04,11.0,11.2,10.1,null,10.2,5"], HEADER, "\n",
         r"ABC.csv line 4: Close 'null' is empty; a number is required"),
        (GOOD[:2] + ['2024-01-04,11.0,11.2,10.1,"1,020.5",10.2,5'], HEADER, "\n",
         r"ABC.csv line 4: Close '1,020.5' is not a number"),
        (GOOD, "Price,Close\nTicker,ABC\nDate,", "\n",
         r"ABC.csv line 4: 7 fields where the header has 2"),
        (["2024-01-02,5", "2024-01-03,x"], "Price,Close\nTicker,ABC\nDate,", "\n",
         r"ABC.csv line 5: Close \(ABC\) 'x' is not a number"),
    ],
    ids=["non-numeric", "bad-date", "us-date", "missing-col", "renamed-col", "narrow-header", "truncated", "truncated-nl",
         "dup-date", "empty-close", "fractional-volume", "blank-line", "extra-field", "no-rows", "stray-quote",
         "unclosed-quote", "huge-volume", "negative-volume", "null-close", "thousands-separator", "multi-level-width",
         "multi-level-value"],
)
def test_malformed_bar_file(tmp_path, rows, header, end, message):
    path = _bars_file(tmp_path, rows, header, end)
    with pytest.raises(ValueError, match=message):
        read_bars(path)
    # The source surfaces the same error: no partial result.
    with pytest.raises(ValueError, match=message):
        CsvSource(path.parent, universes=ETFS).bars(["ABC"], date(2024, 1, 1), date(2024, 12, 31))


def test_line_numbers_count_the_lines_inside_quoted_fields(tmp_path):
    # A quoted cell over two lines (in a column read past) shifts every later line by one.
    path = write(tmp_path / "q", "ABC.csv", 'Date,Close,Dividends\n2024-01-02,10,"0.0\n"\n2024-01-03,abc,0\n')
    with pytest.raises(ValueError, match=r"ABC.csv line 4: Close 'abc' is not a number"):
        read_bars(path)


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "ABC.csv"
    path.write_bytes(("\n".join([HEADER, *GOOD[:2]]) + "\n").encode() + b"2024-01-04,\xe911,1,1,1,1,1\n")
    with pytest.raises(ValueError, match=r"ABC.csv line 4: not UTF-8 text \(byte \d+\)"):
        read_bars(path)


def test_bad_line_deep_in_a_real_file(tmp_path):
    d = folder(tmp_path, YAHOO / "^RUT.csv")
    lines = (d / "^RUT.csv").read_text().splitlines()
    assert lines[4_000].startswith("2015-")
    lines[4_000] = lines[4_000].replace(",", ",x", 1)  # line 4,001 of the file
    write(d, "^RUT.csv", "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"\^RUT.csv line 4001: Open 'x[0-9.]+' is not a number"):
        CsvSource(d, universes=ETFS).bars(["^RUT"], date(2022, 1, 1), date(2022, 12, 31))


# holdings in the folder ---------------------------------------------------------------------------


def test_holdings_files_recognised_by_content(tmp_path):
    monthly = sorted(IJR.glob("IJR_holdings_20??-??-??.csv"))
    d = folder(tmp_path, *monthly, IWM, YAHOO / "^RUT.csv")
    shutil.copy(monthly[0], d / "my saved ijr file.csv")  # any name works with the ETF in it...
    (d / "IJR_holdings_2017-02-28.csv").unlink()
    src = CsvSource(d, universes=ETFS)
    assert src.symbols() == ["^RUT"]
    assert len(src.holdings_files()) == 15
    got = src.holdings(["sp600", "russell2000"], date(2017, 1, 1), date(2025, 12, 31))
    assert dict(got.holdings.schema) == HOLDINGS_SCHEMA and got.failures.is_empty()
    per = dict(got.holdings.group_by("universe").agg(pl.col("as_of_date").n_unique()).iter_rows())
    assert per == {"sp600": 14, "russell2000": 1}
    assert got.holdings.filter(pl.col("universe") == "russell2000").height == 1_954
    assert got.excluded.height == 13 + sum([5] * 13 + [6]) - 1  # 2017-08-31 has no escrow line
    # Range filter: only the 2017 Q4 month ends of sp600; russell2000 has nothing there.
    q4 = src.holdings(["sp600", "russell2000"], date(2017, 10, 1), date(2017, 12, 31))
    assert sorted(q4.holdings.get_column("as_of_date").unique().to_list()) == [
        date(2017, 10, 31), date(2017, 11, 30), date(2017, 12, 29)
    ]
    assert q4.failures.rows() == [
        ("russell2000", "holdings", f"no holdings file for russell2000 with an as-of date in 2017-10-01..2017-12-31 in {d}")
    ]


def test_headerless_holdings_take_the_date_from_the_file_name(tmp_path):
    d = folder(tmp_path, IJR / "IJR_holdings_2019-mid_headerless.csv")
    with pytest.raises(ValueError, match=r"IJR_holdings_2019-mid_headerless.csv \(sp600\): no as-of date.*rename it like"):
        CsvSource(d, universes=ETFS).holdings(["sp600"], date(2019, 1, 1), date(2019, 12, 31))
    (d / "IJR_holdings_2019-mid_headerless.csv").rename(d / "IJR_holdings_2019-06-28.csv")
    got = CsvSource(d, universes=ETFS).holdings(["sp600"], date(2019, 1, 1), date(2019, 12, 31))
    assert got.holdings.height == 601
    assert got.holdings.get_column("as_of_date").unique().to_list() == [date(2019, 6, 28)]


def test_holdings_universe_must_be_known(tmp_path):
    d = folder(tmp_path)
    shutil.copy(IWM, d / "holdings_2025-11-05.csv")
    with pytest.raises(ValueError, match=r"holdings_2025-11-05.csv: no known ETF ticker in the file name or preamble"):
        CsvSource(d, universes=ETFS).holdings(["russell2000"], date(2025, 1, 1), date(2025, 12, 31))


def test_duplicate_snapshot_is_an_error(tmp_path):
    d = folder(tmp_path, IWM)
    shutil.copy(IWM, d / "IWM_copy.csv")
    with pytest.raises(ValueError, match=r"a second russell2000 snapshot as of 2025-11-05"):
        CsvSource(d, universes=ETFS).holdings(["russell2000"], date(2025, 1, 1), date(2025, 12, 31))


def test_broken_holdings_file_fails_the_call(tmp_path):
    d = folder(tmp_path)
    text = IWM.read_text(encoding="utf-8-sig").replace('"Nov 05, 2025"', '"-"')
    write(d, "IWM_holdings.csv", text)
    with pytest.raises(ValueError, match=r"IWM_holdings.csv \(russell2000\) line 2: the 'Fund Holdings as of' date is '-'"):
        CsvSource(d, universes=ETFS).holdings(["russell2000"], date(2025, 1, 1), date(2025, 12, 31))


# fundamentals.csv ---------------------------------------------------------------------------------

FUND_HEADER = "symbol,period_end_date,report_date,net_income_common_usd,net_income_usd,diluted_eps,revenue_usd"


def test_fundamentals(tmp_path):
    d = tmp_path / "f"
    write(d, "fundamentals.csv", "\n".join([
        FUND_HEADER,
        "ABC,2024-03-31,2024-05-02,-1500000,-1400000,-0.12,25000000",
        "ABC,2024-06-30,,0,0,0,26000000.5",
        "ABC,2024-09-30,2024-11-07,,,,",
        "XYZ,2024-06-30,2024-08-01,1e6,1e6,0.5,1.2e7",
    ]) + "\n")
    src = CsvSource(d, universes=ETFS)
    assert src.symbols() == []
    allq = read_fundamentals(d / "fundamentals.csv")
    assert dict(allq.schema) == FUNDAMENTALS_SCHEMA and allq.height == 4
    row = allq.filter(pl.col("period_end_date") == date(2024, 6, 30), pl.col("symbol") == "ABC").row(0, named=True)
    assert row["report_date"] is None and row["net_income_common_usd"] == 0.0  # a real 0 is a value
    empty_nums = allq.filter(pl.col("period_end_date") == date(2024, 9, 30)).row(0, named=True)
    assert empty_nums["net_income_common_usd"] is None and empty_nums["revenue_usd"] is None

    got = src.fundamentals(["ABC", "XYZ", "NOPE"], date(2024, 8, 1))
    assert got.fundamentals.select("symbol", "period_end_date").rows() == [
        ("ABC", date(2024, 3, 31)), ("ABC", date(2024, 6, 30)), ("XYZ", date(2024, 6, 30))
    ]
    assert got.failures.rows() == [("NOPE", "fundamentals", "no quarter known on 2024-08-01 in fundamentals.csv")]


@pytest.mark.parametrize(
    "rows, header, message",
    [
        (["ABC,2024-03-31,2024-05-02,1,1,1,1", "ABC,2024-06-31,,1,1,1,1"], FUND_HEADER,
         r"fundamentals.csv line 3: period_end_date '2024-06-31' is not a date"),
        (["ABC,2024-03-31,May 2,1,1,1,1"], FUND_HEADER, r"line 2: report_date 'May 2' is not a date"),
        (["ABC,2024-03-31,,1,1,1,1", "XYZ,2024-03-31,,1,1,1,1", "ABC,2024-03-31,,2,2,2,2"], FUND_HEADER,
         r"line 4: duplicated quarter ABC 2024-03-31 \(also on line 2\)"),
        (["ABC,2024-03-31,,1,one,1,1"], FUND_HEADER, r"line 2: net_income_usd 'one' is not a number"),
        (["ABC,2024-03-31,,1,1,1,1"], FUND_HEADER.replace("revenue_usd", "revenue"),
         r"line 1: missing column\(s\) revenue_usd"),
        (["ABC,2024-03-31,2024-03-01,1,1,1,1"], FUND_HEADER,
         r"line 2: report_date 2024-03-01 is before period_end_date 2024-03-31"),
        ([",2024-03-31,,1,1,1,1"], FUND_HEADER, r"line 2: symbol '' is empty"),
        (["ABC,2024-03-31,,1,1"], FUND_HEADER, r"line 2: 5 fields where the header has 7 \(truncated last line\?\)"),
    ],
)
def test_malformed_fundamentals(tmp_path, rows, header, message):
    d = tmp_path / "f"
    write(d, "fundamentals.csv", "\n".join([header, *rows]) + "\n")
    with pytest.raises(ValueError, match=message):
        CsvSource(d, universes=ETFS).fundamentals(["ABC"], date(2025, 1, 1))


def test_fundamentals_reported_date_and_any_case(tmp_path):
    d = tmp_path / "f"
    header = "Symbol,Period_End_Date,Reported_Date,Net_Income_Common_USD,net_income_usd,diluted_eps,revenue_usd"
    write(d, "fundamentals.csv", "\r\n".join([
        header,
        "ABC,2025-09-30,2025-11-20,-1500000,-1400000,-0.12,25000000",
        '"XYZ","2025-09-30","","1,5","1","1","1"',
    ]) + "\r\n")
    with pytest.raises(ValueError, match=r"fundamentals.csv line 3: Net_Income_Common_USD '1,5' is not a number"):
        read_fundamentals(d / "fundamentals.csv")
    write(d, "fundamentals.csv", header + "\nABC,2025-09-30,2025-11-20,-1500000,-1400000,-0.12,25000000\n")
    got = read_fundamentals(d / "fundamentals.csv")
    assert got.select("symbol", "period_end_date", "report_date", "net_income_common_usd").rows() == [
        ("ABC", date(2025, 9, 30), date(2025, 11, 20), -1_500_000.0)
    ]
    # Known from its report date, not from the period end.
    src = CsvSource(d, universes=ETFS)
    assert src.fundamentals(["ABC"], date(2025, 11, 19)).fundamentals.is_empty()
    assert src.fundamentals(["ABC"], date(2025, 11, 20)).fundamentals.height == 1
    write(d, "fundamentals.csv", FUND_HEADER + ",reported_date\nABC,2025-09-30,,1,1,1,1,2025-11-20\n")
    with pytest.raises(ValueError, match=r"line 1: column report_date appears twice \(report_date and reported_date are one column\)"):
        read_fundamentals(d / "fundamentals.csv")


def test_no_fundamentals_file_reports_every_symbol(tmp_path):
    src = CsvSource(folder(tmp_path, YAHOO / "^RUT.csv"), universes=ETFS)
    got = src.fundamentals(["ABC", "XYZ"], date(2024, 1, 1))
    assert got.fundamentals.is_empty()
    assert got.failures.get_column("symbol").to_list() == ["ABC", "XYZ"]
    assert got.failures.get_column("error")[0] == f"no fundamentals.csv in {src.path}"


# the folder and make_source -----------------------------------------------------------------------


def test_folder_must_exist(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        CsvSource(tmp_path / "nope")


def test_make_source_builds_the_csv_source(tmp_path, monkeypatch):
    d = folder(tmp_path, YAHOO / "^GSPC.csv")
    write(d, "README.md", "not data")
    src = make_source(Settings(source="csv", csv_path=d, home=tmp_path / "home"))
    assert isinstance(src, CsvSource) and src.symbols() == ["^GSPC"]
    assert src.universes == {"IWM": "russell2000", "IJR": "sp600"}
    assert src.index_symbols == {"^RUT", "^GSPC", "^SP600", "^IXIC", "^VIX"}
    other = make_source(Settings(source="csv", csv_path=d, home=tmp_path / "home", index_symbols=["^GSPC", "IWM"], pairs=[]))
    assert other.index_symbols == {"^GSPC", "IWM"}
