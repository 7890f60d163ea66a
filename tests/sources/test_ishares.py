"""iShares holdings parsing on every real file in tests/fixtures/ishares-*, on the synthetic file
of the 2026 layout, broken inputs, and the downloader (the real httpx client) against a local HTTP
server on 127.0.0.1."""

from __future__ import annotations

import csv
import gzip
import io
import json
import socket
import threading
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import polars as pl
import pytest

from expectations.suites import WEIGHT_SUM_MAX_PCT, WEIGHT_SUM_MIN_PCT, Params, suite
from ground.settings import DEFAULT_UNIVERSES, Settings, Universe
from sources.base import EXCLUDED_SCHEMA, HOLDINGS_SCHEMA
from sources.ishares import (
    HoldingsDownloadError,
    IsharesHoldings,
    as_of_from_name,
    looks_like_holdings,
    parse_holdings,
    read_preamble,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IWM = FIXTURES / "ishares-iwm" / "IWM_holdings_2025-11-05.csv"
IJR_DIR = FIXTURES / "ishares-ijr"
IJR_MONTHLY = sorted(IJR_DIR.glob("IJR_holdings_20??-??-??.csv"))
HEADERLESS = IJR_DIR / "IJR_holdings_2019-mid_headerless.csv"
IJR_2026 = FIXTURES / "ishares-ijr-2026" / "synthetic" / "IJR_holdings_2026-11-20_synthetic.csv"


def _raw_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and data rows read with the csv module, independently of the parser under test."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    start = next(i for i, r in enumerate(rows) if r and r[0] == "Ticker")
    header = rows[start]
    data = []
    for r in rows[start + 1 :]:
        if len(r) != len(header) or not "".join(r).strip("\u00a0 "):
            break
        data.append(r)
    return header, data


@pytest.fixture(scope="module")
def iwm():
    return parse_holdings(IWM.read_bytes(), universe="russell2000", source_name=IWM.name)


# IWM 2025-11-05 -------------------------------------------------------------------------------


def test_iwm_as_of_and_schema(iwm):
    h = iwm.holdings
    assert dict(h.schema) == HOLDINGS_SCHEMA
    assert dict(iwm.excluded.schema) == EXCLUDED_SCHEMA
    assert h.get_column("as_of_date").unique().to_list() == [date(2025, 11, 5)]
    assert h.get_column("universe").unique().to_list() == ["russell2000"]
    assert h.get_column("asset_class").unique().to_list() == ["Equity"]
    assert h.get_column("symbol").is_unique().all()


def test_iwm_equities_kept_and_every_line_accounted_for(iwm):
    header, rows = _raw_rows(IWM)
    ac = header.index("Asset Class")
    equity_rows = [r for r in rows if r[ac] == "Equity"]
    assert len(rows) == 1_967 and len(equity_rows) == 1_962
    # 1,962 equity-class rows: 1,954 listed shares kept, 8 excluded (3 with ticker '-', 3 CVRs,
    # 1 unlisted line, 1 escrow line); plus 5 cash / money-market / collateral / futures rows.
    assert iwm.holdings.height == 1_954
    assert iwm.excluded.height == 13
    assert iwm.holdings.height + iwm.excluded.height == len(rows)


def test_iwm_exclusion_reasons(iwm):
    by_key = dict(zip(iwm.excluded.get_column("key"), iwm.excluded.get_column("reason")))
    assert by_key["russell2000 2025-11-05 line 44 XTSLA"] == "excluded: not an equity: asset class 'Money Market'"
    assert by_key["russell2000 2025-11-05 line 650 USD"] == "excluded: not an equity: asset class 'Cash'"
    assert by_key["russell2000 2025-11-05 line 1008 MSFUT"].endswith("'Cash Collateral and Margins'")
    assert by_key["russell2000 2025-11-05 line 1970 CAD"] == "excluded: not an equity: asset class 'Cash'"
    assert by_key["russell2000 2025-11-05 line 1977 RTYZ5"] == "excluded: not an equity: asset class 'Futures'"
    assert by_key["russell2000 2025-11-05 line 1909 INH"] == "excluded: contingent value right (CVR), not a share"
    assert by_key["russell2000 2025-11-05 line 1966 ADRO"] == "excluded: contingent value right (CVR), not a share"
    assert by_key["russell2000 2025-11-05 line 1972 GTXI"] == "excluded: contingent value right (CVR), not a share"
    assert by_key["russell2000 2025-11-05 line 1965 ADRO"].startswith("excluded: unlisted")
    assert by_key["russell2000 2025-11-05 line 1973 P5N994"].startswith("excluded: escrow")
    dashes = [k for k in by_key if k.endswith(" -")]
    assert [k.split()[3] for k in dashes] == ["1967", "1975", "1976"]
    assert all(by_key[k].startswith("excluded: no ticker") for k in dashes)
    # The original row travels with the reason.
    row = json.loads(iwm.excluded.filter(pl.col("key").str.ends_with("RTYZ5")).get_column("row_json")[0])
    assert row["Name"] == "RUSSELL 2000 EMINI CME DEC 25" and row["Notional Value"] == "219,876,370.00"
    assert row["_file"] == IWM.name
    # Names that merely contain CVR are kept.
    kept = set(iwm.holdings.get_column("ticker"))
    assert {"CVI", "CVRX"} <= kept


def test_iwm_numbers_and_symbols(iwm):
    be = iwm.holdings.filter(pl.col("ticker") == "BE").row(0, named=True)
    assert be["name"] == "BLOOM ENERGY CLASS A CORP"
    assert be["market_value_usd"] == pytest.approx(731_205_514.79)
    assert be["shares"] == pytest.approx(5_170_819.0)
    assert be["price_usd"] == pytest.approx(141.41)
    assert be["weight_pct"] == pytest.approx(1.06)
    assert be["exchange"] == "New York Stock Exchange Inc."
    moog = iwm.holdings.filter(pl.col("ticker") == "MOGA").row(0, named=True)
    assert moog["symbol"] == "MOG-A"
    # Published weights are shares of the whole fund: the kept equities sum to less than 100.
    assert iwm.holdings.get_column("weight_pct").sum() == pytest.approx(99.55, abs=0.005)


def test_iwm_published_weight_is_market_value_over_the_whole_fund():
    # Why Market Weight (2026 layout) is read as weight_pct: Weight (%) is each line's market value
    # over the sum of every line's market value (cash, money market, collateral, futures included),
    # rounded to two decimals; a future's market value is 0, its exposure is in Notional Value.
    header, rows = _raw_rows(IWM)
    mv, w, nv, ac = (header.index(c) for c in ("Market Value", "Weight (%)", "Notional Value", "Asset Class"))
    number = lambda text: float(text.replace(",", ""))  # noqa: E731
    fund_usd = sum(number(r[mv]) for r in rows)
    assert max(abs(number(r[w]) - 100 * number(r[mv]) / fund_usd) for r in rows) <= 0.005
    assert all(r[mv] == r[nv] for r in rows if r[ac] == "Equity")
    (future,) = [r for r in rows if r[ac] == "Futures"]
    assert (number(future[mv]), number(future[nv])) == (0.0, 219_876_370.0)


# IJR monthly files and the headerless one ------------------------------------------------------

IJR_KEPT = {
    "2017-02-28": 601, "2017-03-31": 601, "2017-04-28": 601, "2017-05-31": 601, "2017-06-30": 601,
    "2017-07-31": 601, "2017-08-31": 601, "2017-09-29": 601, "2017-10-31": 601, "2017-11-30": 601,
    "2017-12-29": 602, "2018-01-31": 602, "2018-02-28": 601, "2018-03-29": 602,
}


def test_fourteen_monthly_ijr_files_present():
    assert [p.stem[-10:] for p in IJR_MONTHLY] == list(IJR_KEPT)


@pytest.mark.parametrize("path", IJR_MONTHLY, ids=lambda p: p.stem[-10:])
def test_each_ijr_file(path):
    got = parse_holdings(path.read_bytes(), universe="sp600", source_name=path.name)
    h = got.holdings
    as_of = date.fromisoformat(path.stem[-10:])
    assert h.get_column("as_of_date").unique().to_list() == [as_of]
    assert 601 <= h.height <= 603
    assert h.height == IJR_KEPT[path.stem[-10:]]
    header, rows = _raw_rows(path)
    assert h.height + got.excluded.height == len(rows)
    equity_rows = sum(r[header.index("Asset Class")] == "Equity" for r in rows)
    assert 601 <= equity_rows <= 603
    # The older layout: Shares (not Quantity) lands in `shares`, numbers may be quoted or not.
    assert h.get_column("shares").null_count() == 0 and h.get_column("market_value_usd").min() > 0
    reasons = got.excluded.get_column("reason").to_list()
    assert any("'Money Market'" in r for r in reasons) and any("'Futures'" in r for r in reasons)


def test_ijr_gerber_escrow_is_excluded_not_a_member():
    path = IJR_DIR / "IJR_holdings_2017-02-28.csv"
    got = parse_holdings(path.read_bytes(), universe="sp600", source_name=path.name)
    assert "GRB" not in set(got.holdings.get_column("ticker"))
    (reason,) = got.excluded.filter(pl.col("key").str.ends_with(" GRB")).get_column("reason").to_list()
    assert reason.startswith("excluded: escrow")


def test_ijr_preamble_title_before_as_of():
    pre = read_preamble((IJR_DIR / "IJR_holdings_2017-02-28.csv").read_bytes(), source_name="x")
    assert pre.fund_name == "iShares Core S&P Small-Cap ETF"
    assert (pre.as_of_date, pre.as_of_line, pre.header_line) == (date(2017, 2, 28), 3, 11)
    pre = read_preamble(IWM.read_bytes(), source_name="x")
    assert (pre.fund_name, pre.as_of_date, pre.as_of_line, pre.header_line) == (
        "iShares Russell 2000 ETF", date(2025, 11, 5), 2, 10
    )


def test_headerless_file_needs_an_explicit_as_of():
    content = HEADERLESS.read_bytes()
    with pytest.raises(ValueError, match=r"IJR_holdings_2019-mid_headerless.csv \(sp600\): no as-of date.*pass as_of="):
        parse_holdings(content, universe="sp600", source_name=HEADERLESS.name)
    got = parse_holdings(content, universe="sp600", source_name=HEADERLESS.name, as_of=date(2019, 6, 28))
    assert got.holdings.height == 601
    assert got.holdings.get_column("as_of_date").unique().to_list() == [date(2019, 6, 28)]
    (reason,) = got.excluded.get_column("reason").to_list()
    assert reason.startswith("excluded: no ticker")
    assert got.excluded.get_column("key")[0] == "sp600 2019-06-28 line 603 -"
    sigi = got.holdings.filter(pl.col("ticker") == "SIGI").row(0, named=True)
    assert sigi["shares"] == 3_559_998.0 and sigi["sector"] == "Financials"


def test_explicit_as_of_must_agree_with_the_file():
    path = IJR_DIR / "IJR_holdings_2017-02-28.csv"
    same = parse_holdings(path.read_bytes(), universe="sp600", source_name=path.name, as_of=date(2017, 2, 28))
    assert same.holdings.height == 601
    with pytest.raises(ValueError, match=r"line 3: the file is as of 2017-02-28, the caller says 2017-03-01"):
        parse_holdings(path.read_bytes(), universe="sp600", source_name=path.name, as_of=date(2017, 3, 1))


def test_as_of_from_name_and_content_sniffing():
    assert as_of_from_name("IJR_holdings_2017-02-28.csv") == date(2017, 2, 28)
    assert as_of_from_name("IJR_holdings_2019-mid_headerless.csv") is None
    assert as_of_from_name("x_2017-02-30.csv") is None
    assert looks_like_holdings(IWM.read_bytes()) and looks_like_holdings(HEADERLESS.read_bytes())
    assert not looks_like_holdings(b"Date,Open,High,Low,Close,Adj Close,Volume\n2020-01-02,1,1,1,1,1,0\n")


# broken inputs --------------------------------------------------------------------------------


def _iwm_text() -> str:
    return IWM.read_bytes().decode("utf-8-sig")


def test_html_page_is_rejected():
    html = b"<!DOCTYPE html>\n<html><head><title>iShares</title></head><body>Page not found</body></html>"
    with pytest.raises(ValueError, match=r"IWM_holdings.csv \(russell2000\): got an HTML page, not a holdings CSV"):
        parse_holdings(html, universe="russell2000", source_name="IWM_holdings.csv")
    with pytest.raises(ValueError, match="HTML page"):
        parse_holdings(b"\xef\xbb\xbf\r\n  <html><body>x</body></html>", universe="russell2000", source_name="x")


def test_as_of_dash_is_rejected():
    text = _iwm_text().replace('Fund Holdings as of,"Nov 05, 2025"', 'Fund Holdings as of,"-"')
    with pytest.raises(ValueError, match=r"IWM.csv \(russell2000\) line 2: the 'Fund Holdings as of' date is '-'"):
        parse_holdings(text.encode(), universe="russell2000", source_name="IWM.csv")


def test_unreadable_as_of_names_the_line():
    text = _iwm_text().replace('"Nov 05, 2025"', '"Novembre 5"')
    with pytest.raises(ValueError, match=r"line 2: cannot read the as-of date 'Novembre 5'"):
        parse_holdings(text.encode(), universe="russell2000", source_name="IWM.csv")


def test_truncated_mid_row_names_the_line():
    content = IWM.read_bytes()
    cut = content[: content.index(b'"NXT","NEXTRACKER') + 40]  # line 14, cut inside the row
    with pytest.raises(ValueError, match=r"IWM.csv \(russell2000\) line 14: \d+ fields where the header has 15 \(truncated line\?\)"):
        parse_holdings(cut, universe="russell2000", source_name="IWM.csv")


def test_truncated_at_a_row_boundary_is_rejected():
    lines = _iwm_text().splitlines()
    cut = "\n".join(lines[:500]) + "\n"
    with pytest.raises(ValueError, match=r"no blank line after the holdings table .* truncated after line 500"):
        parse_holdings(cut.encode(), universe="russell2000", source_name="IWM.csv")


def test_renamed_column_is_rejected():
    text = _iwm_text().replace("Asset Class,Market Value,Weight (%)", "Asset Class,Market Value,Weight")
    with pytest.raises(ValueError, match=r"line 10: missing column\(s\) 'Weight \(%\)' or 'Market Weight' in the header"):
        parse_holdings(text.encode(), universe="russell2000", source_name="IWM.csv")
    text = _iwm_text().replace(",Quantity,", ",Qty,")
    with pytest.raises(ValueError, match=r"missing column\(s\) 'Quantity' or 'Shares'"):
        parse_holdings(text.encode(), universe="russell2000", source_name="IWM.csv")


def test_non_numeric_value_names_the_line():
    text = _iwm_text().replace('"CRDO","CREDO TECHNOLOGY GROUP HOLDING LTD","Information Technology","Equity","617,797,996.92"',
                               '"CRDO","CREDO TECHNOLOGY GROUP HOLDING LTD","Information Technology","Equity","n/a"')
    with pytest.raises(ValueError, match=r"line 12: 'Market Value' is 'n/a', not a number \(ticker CRDO\)"):
        parse_holdings(text.encode(), universe="russell2000", source_name="IWM.csv")


def test_not_a_holdings_file():
    with pytest.raises(ValueError, match=r"no column header \(a line starting with 'Ticker'\)"):
        parse_holdings(b"Date,Open\n2020-01-02,1\n\n", universe="sp600", source_name="x.csv")
    with pytest.raises(ValueError, match="not UTF-8"):
        parse_holdings(b"Ticker,\xff\xfe\n", universe="sp600", source_name="x.csv")
    with pytest.raises(ValueError, match="empty"):
        parse_holdings(b"\xef\xbb\xbf \n", universe="sp600", source_name="x.csv")


def test_duplicate_symbol_keeps_the_first_line():
    text = (
        'Fund Holdings as of,"Jan 02, 2024"\n'
        "Ticker,Name,Sector,Asset Class,Market Value,Weight (%),Quantity,Price,Exchange\n"
        'MOG.A,MOOG,Industrials,Equity,"1,000.00",0.5,10,100,NYSE\n'
        "MOGA,MOOG INC CLASS A,Industrials,Equity,500,0.25,5,100,NYSE\n"
        "ABC,ABC CORP,Financials,Equity,1500,0.75,15,100,NASDAQ\n"
        "\u00a0\n"
    )
    got = parse_holdings(text.encode(), universe="sp600", source_name="t.csv")
    assert got.holdings.select("symbol", "ticker", "market_value_usd").rows() == [
        ("MOG-A", "MOG.A", 1000.0), ("ABC", "ABC", 1500.0)
    ]
    assert got.excluded.get_column("reason").to_list() == [
        "excluded: duplicate: line 3 already holds MOG-A (kept that one)"
    ]


# the 2026 layout (synthetic file: tests/fixtures/ishares-ijr-2026/README.md) -------------------


@pytest.fixture(scope="module")
def ijr_2026():
    return parse_holdings(IJR_2026.read_bytes(), universe="sp600", source_name=IJR_2026.name)


def _ijr_2026_text() -> str:
    return IJR_2026.read_bytes().decode("utf-8-sig")


def _rewrite_2026(edit) -> bytes:
    """The 2026 file with its table rows (header first) passed through `edit(rows) -> rows`."""
    lines = _ijr_2026_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Ticker,"))
    end = next(i for i in range(start, len(lines)) if not lines[i].strip("\u00a0 ,"))
    rows = edit(list(csv.reader(lines[start:end])))
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return ("\n".join(lines[:start]) + "\n" + out.getvalue() + "\n".join(lines[end:]) + "\n").encode()


def test_2026_layout_keeps_exactly_the_stocks(ijr_2026):
    h = ijr_2026.holdings
    assert dict(h.schema) == HOLDINGS_SCHEMA
    assert h.get_column("as_of_date").unique().to_list() == [date(2026, 11, 20)]
    assert h.get_column("symbol").to_list() == ["CRS", "MOG-A", "AEIS", "SPXC", "MLI", "GTY", "CVRX"]
    assert h.get_column("asset_class").unique().to_list() == ["Equity"]
    header, rows = _raw_rows(IJR_2026)
    assert header[:9] == ["Ticker", "Name", "Type", "Sector", "Asset Class", "Market Value", "Market Weight",
                          "Notional Value", "Notional Weight"]
    assert "Weight (%)" not in header
    # Every line of the table is either kept or excluded; the kept ones are exactly the EQUITY lines.
    assert h.height + ijr_2026.excluded.height == len(rows) == 13
    assert h.height == sum(r[header.index("Type")] == "EQUITY" for r in rows)


def test_2026_layout_exclusion_reasons(ijr_2026):
    by_key = dict(zip(ijr_2026.excluded.get_column("key"), ijr_2026.excluded.get_column("reason")))
    assert by_key == {
        "sp600 2026-11-20 line 11 XTSLA": "excluded: not a stock: Type 'STIF' is a short-term investment fund, the fund's cash sweep",
        "sp600 2026-11-20 line 12 CRS": "excluded: not a stock: Type 'SWAP' is an equity swap: exposure through a derivative "
        "contract, not shares the fund holds; the stock itself is kept from line 13",
        "sp600 2026-11-20 line 19 USD": "excluded: not a stock: Type 'CASH' is cash",
        "sp600 2026-11-20 line 20 MSFUT": "excluded: not a stock: Type 'COLLATERAL' is collateral for derivatives, not a holding",
        "sp600 2026-11-20 line 21 RTYZ6": "excluded: not a stock: Type 'INDEX' is an index future",
        "sp600 2026-11-20 line 22 -": "excluded: not a stock: Type 'WARRANT' is a warrant: a right to buy shares, not a share",
    }
    swap = json.loads(ijr_2026.excluded.filter(pl.col("key").str.ends_with(" CRS")).get_column("row_json")[0])
    assert (swap["Type"], swap["Asset Class"], swap["Notional Value"]) == ("SWAP", "Equity", "30,625,000.00")
    assert swap["_file"] == IJR_2026.name


def test_2026_layout_swap_neither_replaces_nor_duplicates_the_stock(ijr_2026):
    (crs,) = ijr_2026.holdings.filter(pl.col("symbol") == "CRS").rows(named=True)
    # The stock line (13), not the swap line (12) just above it with the same ticker.
    assert crs["market_value_usd"] == 312_375_000.0 and crs["shares"] == 1_020_000.0 and crs["weight_pct"] == 24.60
    # The same with the swap after the stock.
    moved = _rewrite_2026(lambda rows: [rows[0], rows[1], rows[3], rows[2], *rows[4:]])
    got = parse_holdings(moved, universe="sp600", source_name="moved.csv")
    assert got.holdings.equals(parse_holdings(IJR_2026.read_bytes(), universe="sp600", source_name="x").holdings)
    (reason,) = got.excluded.filter(pl.col("key").str.ends_with(" CRS")).get_column("reason").to_list()
    assert reason.startswith("excluded: not a stock: Type 'SWAP'") and reason.endswith("kept from line 12")
    # A swap on a stock the fund does not hold says nothing about a kept stock.
    alone = _rewrite_2026(lambda rows: [r for r in rows if not (r[0] == "CRS" and r[2] == "EQUITY")])
    got = parse_holdings(alone, universe="sp600", source_name="alone.csv")
    assert "CRS" not in got.holdings.get_column("symbol").to_list()
    (reason,) = got.excluded.filter(pl.col("key").str.ends_with(" CRS")).get_column("reason").to_list()
    assert reason.endswith("not shares the fund holds")


def test_2026_layout_weight_is_the_market_weight(ijr_2026):
    h = ijr_2026.holdings
    # Market Weight as printed, not Notional Weight; numbers were quoted with thousands separators.
    weights = dict(zip(h.get_column("symbol"), h.get_column("weight_pct")))
    assert weights == {"CRS": 24.60, "MOG-A": 20.05, "AEIS": 16.19, "SPXC": 15.54, "MLI": 15.15, "GTY": 4.83, "CVRX": 0.0}
    cvrx = h.filter(pl.col("symbol") == "CVRX").row(0, named=True)
    assert (cvrx["market_value_usd"], cvrx["shares"], cvrx["price_usd"]) == (39_382.0, 4_850.0, 8.12)
    # Market Weight is market value over the whole fund, like Weight (%) in the older files.
    header, rows = _raw_rows(IJR_2026)
    mv = header.index("Market Value")
    fund_usd = sum(float(r[mv].replace(",", "")) for r in rows)
    for row in h.iter_rows(named=True):
        assert row["weight_pct"] == pytest.approx(100 * row["market_value_usd"] / fund_usd, abs=0.005)


def test_2026_layout_passes_the_gates_weight_band(ijr_2026):
    # The holdings suite's weight_sum_band (expectations/suites.py): the stocks hold 96.36% of the
    # fund, inside 90..101 although the swap's exposure is outside the stock lines.
    h = ijr_2026.holdings
    assert WEIGHT_SUM_MIN_PCT <= h.get_column("weight_pct").sum() <= WEIGHT_SUM_MAX_PCT
    holdings_suite = suite("raw.holdings")
    for name in ("weight_sum_band", "asset_class_equity", "weight_pct_in_range"):
        failed = holdings_suite.get(name).failing(h, Params(as_of=date(2026, 11, 20)))
        assert not failed.get_column("failed").any(), name


def test_2026_layout_without_an_asset_class_column_goes_by_type(ijr_2026):
    drop = _rewrite_2026(lambda rows: [r[:4] + r[5:] for r in rows])
    assert looks_like_holdings(drop)
    got = parse_holdings(drop, universe="sp600", source_name="no-asset-class.csv")
    assert got.holdings.equals(ijr_2026.holdings)
    assert got.excluded.get_column("reason").to_list() == ijr_2026.excluded.get_column("reason").to_list()


def test_2026_layout_other_types_and_contradictions_are_excluded():
    def edit(rows):
        rows = [list(r) for r in rows]
        rows[3][2] = "ETF"  # CRS stock line now of an unknown Type
        rows[4][4] = "Cash"  # MOGA: Type EQUITY but asset class Cash
        rows[5][2] = "equity"  # AEIS: Type spelt in lower case is still a stock
        return rows

    got = parse_holdings(_rewrite_2026(edit), universe="sp600", source_name="t.csv")
    assert got.holdings.get_column("symbol").to_list() == ["AEIS", "SPXC", "MLI", "GTY", "CVRX"]
    by_key = dict(zip(got.excluded.get_column("key"), got.excluded.get_column("reason")))
    assert by_key["sp600 2026-11-20 line 13 CRS"] == "excluded: not a stock: Type 'ETF' (only Type 'EQUITY' lines are stocks)"
    assert by_key["sp600 2026-11-20 line 14 MOGA"] == (
        "excluded: Type 'EQUITY' but asset class 'Cash': the file contradicts itself on this line"
    )
    assert by_key["sp600 2026-11-20 line 12 CRS"].endswith("not shares the fund holds")


def test_2026_layout_broken_inputs_are_named():
    renamed = _ijr_2026_text().replace(",Market Weight,", ",Mkt Weight,")
    with pytest.raises(ValueError, match=r"line 10: missing column\(s\) 'Weight \(%\)' or 'Market Weight' in the header"):
        parse_holdings(renamed.encode(), universe="sp600", source_name="t.csv")
    no_stocks = _rewrite_2026(lambda rows: [rows[0]] + [r for r in rows[1:] if r[2] != "EQUITY"])
    with pytest.raises(ValueError, match=r"t.csv \(sp600\): no equity rows \(Type 'EQUITY'\) between line 10 and line 17"):
        parse_holdings(no_stocks, universe="sp600", source_name="t.csv")
    bad = _ijr_2026_text().replace('"24.60"', '"n/a"')
    with pytest.raises(ValueError, match=r"line 13: 'Market Weight' is 'n/a', not a number \(ticker CRS\)"):
        parse_holdings(bad.encode(), universe="sp600", source_name="t.csv")
    cut = "\n".join(_ijr_2026_text().splitlines()[:15]) + "\n"
    with pytest.raises(ValueError, match="truncated after line 15"):
        parse_holdings(cut.encode(), universe="sp600", source_name="t.csv")


def test_2026_layout_is_recognised_as_a_holdings_file():
    assert looks_like_holdings(IJR_2026.read_bytes())
    pre = read_preamble(IJR_2026.read_bytes(), source_name="x")
    assert (pre.fund_name, pre.as_of_date, pre.as_of_line, pre.header_line) == (
        "iShares Core S&P Small-Cap ETF", date(2026, 11, 20), 2, 10
    )
    assert as_of_from_name(IJR_2026.name) == date(2026, 11, 20)


# the downloader: the real httpx client against a local HTTP server -----------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    gzip: bool = False  # send the body gzip-encoded, as web servers do for text
    hang: bool = False  # accept the request and never answer it
    short_by: int = 0  # announce this many bytes more than are sent, then close (a dropped transfer)


@dataclass(frozen=True)
class Seen:
    path: str
    params: dict[str, str]
    user_agent: str
    accept_encoding: str


class FakeIshares:
    """Plain HTTP on 127.0.0.1 in the place of www.ishares.com: `routes` maps a URL path to a Reply.

    The universes from `universes()` carry the real holdings URLs with only scheme, host and port
    replaced, so the path and query the downloader sends are the ones it would send to iShares.
    """

    def __init__(self, routes: dict[str, Reply]) -> None:
        self.routes = routes
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    def universes(self, *etfs: str) -> list[Universe]:
        assert self._server is not None, "not started"
        host = f"127.0.0.1:{self._server.server_address[1]}"
        out = []
        for u in DEFAULT_UNIVERSES:
            if u.etf in etfs:
                url = urlsplit(u.holdings_url)._replace(scheme="http", netloc=host).geturl()
                out.append(u.model_copy(update={"holdings_url": url}))
        return out

    def __enter__(self) -> "FakeIshares":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                fake.seen.append(
                    Seen(url.path, dict(parse_qsl(url.query)), self.headers.get("User-Agent", ""),
                         self.headers.get("Accept-Encoding", ""))
                )
                reply = fake.routes.get(url.path, Reply(404, b"<html><body>Not Found</body></html>"))
                if reply.hang:
                    fake.stopping.wait()
                    self.close_connection = True
                    return
                body = gzip.compress(reply.body) if reply.gzip else reply.body
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.gzip:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body) + reply.short_by))
                self.end_headers()
                self.wfile.write(body)
                if reply.short_by:
                    self.close_connection = True

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


IWM_PATH = urlsplit(next(u for u in DEFAULT_UNIVERSES if u.etf == "IWM").holdings_url).path
IJR_PATH = urlsplit(next(u for u in DEFAULT_UNIVERSES if u.etf == "IJR").holdings_url).path
CSV = {"Content-Type": "text/csv; charset=UTF-8"}


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """httpx honours proxy variables: a proxy must not stand between the client and 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def downloader(fake: FakeIshares, *etfs: str, timeout_s: float = 5.0) -> IsharesHoldings:
    """The downloader as the pipeline builds it (from settings), pointed at the fake."""
    settings = Settings(universes=fake.universes(*etfs), user_agent="smallcaps-test/1", http_timeout_s=timeout_s)
    return IsharesHoldings.from_settings(settings)


def test_download_of_the_2026_layout_over_http():
    with FakeIshares({IJR_PATH: Reply(body=IJR_2026.read_bytes(), headers=CSV, gzip=True)}) as fake:
        src = downloader(fake, "IJR")
        got = src.fetch(src.universes["sp600"])
    (seen,) = fake.seen
    assert seen.path == IJR_PATH
    assert seen.params == {"fileType": "csv", "fileName": "IJR_holdings", "dataType": "fund"}
    assert seen.user_agent == "smallcaps-test/1" and "gzip" in seen.accept_encoding
    assert got.requests == 1
    assert got.holdings.get_column("symbol").to_list() == ["CRS", "MOG-A", "AEIS", "SPXC", "MLI", "GTY", "CVRX"]
    assert got.excluded.height == 6
    assert got.excluded.get_column("key")[0] == "sp600 2026-11-20 line 11 XTSLA"
    assert json.loads(got.excluded.get_column("row_json")[0])["_file"] == "IJR holdings download"


def test_holdings_of_both_layouts_in_one_call_after_a_redirect():
    routes = {
        IWM_PATH: Reply(302, headers={"Location": "/files/IWM_holdings.csv"}),
        "/files/IWM_holdings.csv": Reply(body=IWM.read_bytes(), headers=CSV),
        IJR_PATH: Reply(body=IJR_2026.read_bytes(), headers=CSV),
    }
    with FakeIshares(routes) as fake:
        src = downloader(fake, "IWM", "IJR")
        got = src.holdings(["russell2000", "sp600"], date(2025, 11, 5), date(2026, 11, 20))
    assert [s.path for s in fake.seen] == [IWM_PATH, "/files/IWM_holdings.csv", IJR_PATH]
    assert got.failures.is_empty() and got.requests == 2
    counts = dict(got.holdings.group_by("universe", "as_of_date").len().select("universe", "len").iter_rows())
    assert counts == {"russell2000": 1_954, "sp600": 7}
    assert got.excluded.height == 13 + 6


def test_holdings_reports_failures_and_out_of_range_snapshots():
    routes = {
        IWM_PATH: Reply(body=IWM.read_bytes(), headers=CSV),
        IJR_PATH: Reply(body=b"<html><body>maintenance</body></html>", headers={"Content-Type": "text/html"}),
    }
    with FakeIshares(routes) as fake:
        src = downloader(fake, "IWM", "IJR")
        got = src.holdings(["russell2000", "sp600", "nasdaq"], date(2025, 11, 5), date(2025, 11, 6))
        later = src.holdings(["russell2000"], date(2025, 11, 10), date(2025, 11, 10))
    assert got.holdings.height == 1_954 and got.requests == 2
    fails = dict(zip(got.failures.get_column("symbol"), got.failures.get_column("error")))
    assert set(fails) == {"sp600", "nasdaq"}
    assert "HTML page" in fails["sp600"] and "unknown universe 'nasdaq'" in fails["nasdaq"]
    assert later.holdings.is_empty() and later.excluded.is_empty()
    (error,) = later.failures.get_column("error").to_list()
    assert "only the current file, as of 2025-11-05, outside 2025-11-10..2025-11-10" in error


@pytest.mark.parametrize(
    "reply, message",
    [
        (Reply(403, b"denied"), r"sp600 \(IJR\): HTTP 403 Forbidden from http://127\.0\.0\.1:\d+/us/products/.*retry later"),
        (Reply(500, b"oops"), r"sp600 \(IJR\): HTTP 500 Internal Server Error from http://127\.0\.0\.1:\d+/"),
        (Reply(body=b"Ticker,Name\n", short_by=5_000, headers=CSV), r"sp600 \(IJR\): RemoteProtocolError for http://127\.0\.0\.1"),
        (Reply(hang=True), r"sp600 \(IJR\): no answer within 0\.3 s from http://127\.0\.0\.1:\d+/"),
    ],
    ids=["403", "500", "dropped", "hangs"],
)
def test_download_failures_are_clear(reply, message):
    with FakeIshares({IJR_PATH: reply}) as fake:
        src = downloader(fake, "IJR", timeout_s=0.3)
        with pytest.raises(HoldingsDownloadError, match=message):
            src.fetch(src.universes["sp600"])


def test_nobody_listening_is_clear():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    universe = next(u for u in DEFAULT_UNIVERSES if u.etf == "IJR")
    dead = universe.model_copy(update={"holdings_url": f"http://127.0.0.1:{port}/IJR_holdings.csv"})
    src = IsharesHoldings.from_settings(Settings(universes=[dead], http_timeout_s=2.0))
    with pytest.raises(HoldingsDownloadError, match=rf"sp600 \(IJR\): ConnectError for http://127.0.0.1:{port}/IJR_holdings.csv"):
        src.fetch(dead)
