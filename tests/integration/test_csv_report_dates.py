"""A late filer through the whole pipeline: a csv folder with real index history (2022), an IWM
holdings file, member bars and a fundamentals.csv whose report dates decide when each quarter is
used (cohort rule v1: from the report date where known, 45 days after the period end where not).

Members AAAA..LLLL join the Russell 2000 on 2022-06-01. Their four quarters to 2022-03-31 are long
public (+10 USD m each). The quarter ending 2022-06-30:
- LATE reports it on Thursday 2022-09-01, a loss of 100: its 45-day deadline (Sunday 2022-08-14,
  so Monday 08-15) has passed, but the loss was not public before 09-01;
- NODT has no report date for it (loss of 100): the 45-day rule counts it from 2022-08-15;
- the ten others report +10 on 2022-08-05.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.run import run_load
from ground import calendar
from ground.settings import DEFAULT_UNIVERSES, Pair, Settings

# Runs a flow: the module's home is loaded by the backfill flow.
pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IWM_FILE = FIXTURES / "ishares-iwm" / "IWM_holdings_2025-11-05.csv"
FIRST, LAST = date(2022, 5, 2), date(2022, 11, 18)  # the csv index history ends 2022-11-18
JOINED = date(2022, 6, 1)
MEMBERS = ["LATE", "NODT", *[c * 4 for c in "ABCDEFGHIJ"]]
OLD_QUARTERS = [date(2021, 6, 30), date(2021, 9, 30), date(2021, 12, 31), date(2022, 3, 31)]


def index_file(name: str) -> str:
    lines = (FIXTURES / "yahoo-daily-csv" / name).read_text().splitlines()
    return "\n".join([lines[0], *(line for line in lines[1:] if FIRST.isoformat() <= line[:10])]) + "\n"


def holdings_file() -> str:
    """The real IWM file's preamble, column header and footer around our members' lines."""
    lines = IWM_FILE.read_text(encoding="utf-8-sig").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Ticker,"))
    blank = next(i for i in range(header + 1, len(lines)) if not lines[i].strip(" \u00a0,"))
    preamble = [f'Fund Holdings as of,"{JOINED:%b %d, %Y}"' if line.startswith("Fund Holdings as of") else line
                for line in lines[: header + 1]]
    rows = [
        ",".join(f'"{v}"' for v in (t, f"{t} INC", "Industrials", "Equity", "1,000,000.00", f"{99.5 / len(MEMBERS):.2f}",
                                    "1,000,000.00", "50,000.00", "20.00", "United States", "NASDAQ", "USD", "1.00", "USD", "-"))
        for t in MEMBERS
    ]
    return "\ufeff" + "\n".join([*preamble, *rows, *lines[blank:]]) + "\n"


def member_bars(symbol: str) -> str:
    rng = random.Random(symbol)
    price, out = 20.0, ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for day in calendar.sessions(FIRST, LAST):
        close = price * (1 + rng.gauss(0, 0.01))
        out.append(f"{day},{price:.4f},{max(price, close) * 1.01:.4f},{min(price, close) * 0.99:.4f},{close:.4f},{close:.4f},10000")
        price = close
    return "\n".join(out) + "\n"


def fundamentals_file() -> str:
    out = ["symbol,period_end_date,report_date,net_income_common_usd,net_income_usd,diluted_eps,revenue_usd"]
    for symbol in MEMBERS:
        for end in OLD_QUARTERS:
            out.append(f"{symbol},{end},{end + timedelta(days=30)},10000000,10000000,0.5,90000000")
        report, income = {"LATE": ("2022-09-01", -100e6), "NODT": ("", -100e6)}.get(symbol, ("2022-08-05", 10e6))
        out.append(f"{symbol},2022-06-30,{report},{income:.0f},{income:.0f},0.5,90000000")
    return "\n".join(out) + "\n"


@flow(name="csv-report-dates", task_runner=ThreadPoolTaskRunner(max_workers=4))
def backfill_csv(settings: Settings) -> dict:
    return run_load(settings, "backfill", as_of=LAST, start=FIRST)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("csv-late-filer")
    for name in ("^RUT.csv", "^GSPC.csv", "^VIX.csv"):
        (folder / name).write_text(index_file(name))
    (folder / f"IWM_holdings_{JOINED}.csv").write_text(holdings_file(), encoding="utf-8")
    for symbol in MEMBERS:
        (folder / f"{symbol}.csv").write_text(member_bars(symbol))
    (folder / "fundamentals.csv").write_text(fundamentals_file())
    home = tmp_path_factory.mktemp("csv-late-filer-home")
    russell = next(u for u in DEFAULT_UNIVERSES if u.name == "russell2000").model_copy(update={"min_members": 10, "max_members": 50})
    settings = Settings(
        home=home, source="csv", csv_path=folder, universes=[russell], index_symbols=["^RUT", "^GSPC", "^VIX"],
        pairs=[Pair.parse("^RUT/^GSPC")], anchors=["2022-06-01"], write_report=False,
    )
    result = backfill_csv(settings)
    assert result["status"] == "succeeded", result
    return home


def cohort_by_day(home: Path, symbol: str) -> dict[date, str]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT session_date, cohort FROM core.cohorts WHERE symbol = ? AND session_date BETWEEN '2022-08-10' AND '2022-09-09'",
            [symbol],
        ).fetchall()
    return dict(rows)


def test_a_late_filers_quarter_is_not_used_before_its_report_date(home):
    late = cohort_by_day(home, "LATE")
    for day in calendar.sessions(date(2022, 8, 10), date(2022, 8, 31)):
        assert late[day] == "profitable", day  # 45-day deadline passed on 08-14, but not yet reported
    for day in calendar.sessions(date(2022, 9, 1), date(2022, 9, 9)):
        assert late[day] == "unprofitable", day  # TTM 10 + 10 + 10 - 100 = -70 from the report on


def test_a_quarter_without_a_report_date_counts_45_days_after_its_period_end(home):
    nodt = cohort_by_day(home, "NODT")
    assert nodt[date(2022, 8, 12)] == "profitable"
    assert nodt[date(2022, 8, 15)] == "unprofitable"  # 2022-06-30 + 45 days = Sunday 08-14


def test_the_published_composition_agrees(home):
    with duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True) as con:
        unprofitable = dict(con.execute(
            "SELECT session_date, members FROM marts.cohort_composition WHERE universe = 'russell2000' "
            "AND cohort = 'unprofitable' AND session_date IN ('2022-08-12', '2022-08-15', '2022-08-31', '2022-09-01')"
        ).fetchall())
    assert unprofitable == {date(2022, 8, 12): 0, date(2022, 8, 15): 1, date(2022, 8, 31): 1, date(2022, 9, 1): 2}
