"""The csv source on real Yahoo daily CSVs and iShares files, subsets of a folder, and malformed
files whose errors must name the file and the exact line."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from smallcaps.settings import Settings
from sources import make_source
from sources.base import BARS_SCHEMA, FUNDAMENTALS_SCHEMA, HOLDINGS_SCHEMA, Source
from sources.csv import CsvSource, read_bars, read_fundamentals

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
YAHOO = FIXTURES / "yahoo-daily-csv"
IJR = FIXTURES / "ishares-ijr"
IWM = FIXTURES / "ishares-iwm" / "IWM_holdings_2025-11-05.csv"
ETFS = {"IWM": "russell2000", "IJR": "sp600"}
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


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
        (GOOD, "Date,Open,High,Low,Close,Volume", "\n",
         r"ABC.csv line 1: missing column\(s\) Adj Close"),
        (GOOD, "Date,Open,High,Low,Close,AdjClose,Volume", "\n",
         r"ABC.csv line 1: missing column\(s\) Adj Close"),
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
    ],
    ids=["non-numeric", "bad-date", "us-date", "missing-col", "renamed-col", "truncated", "truncated-nl",
         "dup-date", "empty-close", "fractional-volume", "blank-line", "extra-field", "no-rows"],
)
def test_malformed_bar_file(tmp_path, rows, header, end, message):
    path = _bars_file(tmp_path, rows, header, end)
    with pytest.raises(ValueError, match=message):
        read_bars(path)
    # The source surfaces the same error: no partial result.
    with pytest.raises(ValueError, match=message):
        CsvSource(path.parent, universes=ETFS).bars(["ABC"], date(2024, 1, 1), date(2024, 12, 31))


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
