"""iShares holdings parsing on every real file in tests/fixtures/ishares-*, broken inputs, the
equity sleeve, and the downloader against a mocked HTTP transport."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import httpx
import polars as pl
import pytest

from smallcaps.settings import DEFAULT_UNIVERSES
from sources.base import EXCLUDED_SCHEMA, HOLDINGS_SCHEMA
from sources.ishares import (
    HoldingsDownloadError,
    IsharesHoldings,
    as_of_from_name,
    equity_sleeve,
    looks_like_holdings,
    parse_holdings,
    read_preamble,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IWM = FIXTURES / "ishares-iwm" / "IWM_holdings_2025-11-05.csv"
IJR_DIR = FIXTURES / "ishares-ijr"
IJR_MONTHLY = sorted(IJR_DIR.glob("IJR_holdings_20??-??-??.csv"))
HEADERLESS = IJR_DIR / "IJR_holdings_2019-mid_headerless.csv"


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


def test_iwm_equity_sleeve_sector_shares(iwm):
    sleeve = equity_sleeve(iwm.holdings)
    assert sleeve.get_column("weight_pct").sum() == pytest.approx(100.0, abs=1e-9)
    shares = dict(sleeve.group_by("sector").agg(pl.col("weight_pct").sum()).iter_rows())
    assert shares["Health Care"] == pytest.approx(16.85, abs=0.1)
    assert shares["Financials"] == pytest.approx(17.17, abs=0.1)
    assert shares["Industrials"] == pytest.approx(18.16, abs=0.1)
    # Independent check from the raw file: market-value shares over every Equity-class row (the
    # excluded equity lines are worth a few hundred thousand dollars of $68bn).
    header, rows = _raw_rows(IWM)
    ac, sec, mv = header.index("Asset Class"), header.index("Sector"), header.index("Market Value")
    eq = [(r[sec], float(r[mv].replace(",", ""))) for r in rows if r[ac] == "Equity"]
    total = sum(v for _, v in eq)
    for sector in ("Health Care", "Financials"):
        raw_share = 100 * sum(v for s, v in eq if s == sector) / total
        assert shares[sector] == pytest.approx(raw_share, abs=0.1)


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
    assert equity_sleeve(h).get_column("weight_pct").sum() == pytest.approx(100.0)


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
    with pytest.raises(ValueError, match=r"line 10: missing column\(s\) 'Weight \(%\)' in the header"):
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
    # Weights re-based over market value: 1000 / 2500 and 1500 / 2500.
    assert equity_sleeve(got.holdings).get_column("weight_pct").to_list() == pytest.approx([40.0, 60.0])


def test_equity_sleeve_per_snapshot_and_fallback_to_published_weights():
    h = pl.DataFrame(
        {
            "universe": ["a", "a", "a", "a"],
            "as_of_date": [date(2024, 1, 2)] * 2 + [date(2024, 1, 3)] * 2,
            "weight_pct": [0.3, 0.1, 0.2, 0.6],
            "market_value_usd": [30.0, 10.0, None, 5.0],
        }
    )
    out = equity_sleeve(h).get_column("weight_pct").to_list()
    assert out == pytest.approx([75.0, 25.0, 25.0, 75.0])


# the downloader ---------------------------------------------------------------------------------

IWM_UNIVERSE = next(u for u in DEFAULT_UNIVERSES if u.etf == "IWM")


def _downloader(handler) -> IsharesHoldings:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return IsharesHoldings(DEFAULT_UNIVERSES, user_agent="smallcaps-test/1", timeout_s=3.0, client=client)


def test_fetch_sends_user_agent_and_parses():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["ua"] = request.headers["User-Agent"]
        seen["url"] = str(request.url)
        return httpx.Response(200, content=IWM.read_bytes(), headers={"content-type": "text/csv"})

    got = _downloader(handler).fetch(IWM_UNIVERSE)
    assert seen == {"ua": "smallcaps-test/1", "url": IWM_UNIVERSE.holdings_url}
    assert got.requests == 1 and got.holdings.height == 1_954 and got.excluded.height == 13


@pytest.mark.parametrize(
    "response, message",
    [
        (httpx.Response(403, content=b"denied"), r"russell2000 \(IWM\): HTTP 403 Forbidden from https://www.ishares.com/.*retry later"),
        (httpx.Response(500, content=b"oops"), r"russell2000 \(IWM\): HTTP 500 Internal Server Error from"),
    ],
)
def test_fetch_http_errors_are_clear(response, message):
    with pytest.raises(HoldingsDownloadError, match=message):
        _downloader(lambda request: response).fetch(IWM_UNIVERSE)


def test_fetch_timeout_is_clear():
    def handler(request):
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(HoldingsDownloadError, match=r"no answer within 3 s from https://www.ishares.com/"):
        _downloader(handler).fetch(IWM_UNIVERSE)


def test_holdings_reports_failures_and_out_of_range_snapshots():
    def handler(request: httpx.Request) -> httpx.Response:
        if "IWM_holdings" in str(request.url):
            return httpx.Response(200, content=IWM.read_bytes())
        return httpx.Response(200, content=b"<html><body>maintenance</body></html>")

    src = _downloader(handler)
    got = src.holdings(["russell2000", "sp600", "nasdaq"], date(2025, 11, 5), date(2025, 11, 6))
    assert got.holdings.height == 1_954 and got.requests == 2
    fails = dict(zip(got.failures.get_column("symbol"), got.failures.get_column("error")))
    assert set(fails) == {"sp600", "nasdaq"}
    assert "HTML page" in fails["sp600"] and "unknown universe 'nasdaq'" in fails["nasdaq"]

    later = src.holdings(["russell2000"], date(2025, 11, 10), date(2025, 11, 10))
    assert later.holdings.is_empty() and later.excluded.is_empty()
    (error,) = later.failures.get_column("error").to_list()
    assert "only the current file, as of 2025-11-05, outside 2025-11-10..2025-11-10" in error
