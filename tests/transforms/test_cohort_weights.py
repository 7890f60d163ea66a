"""core.cohorts.weight from market value (transforms/cohorts.py:_sector_and_weight).

On the real IWM file of 2025-11-05, where the published Weight (%) rounds 236 members to 0.00, on
the synthetic 2026-layout IJR file (a swap beside its stock, a stock printing 0.00), and on small
frames for the fallback to the published weight where a market value is missing.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from ground import calendar
from sources.ishares import parse_holdings
from transforms.cohorts import cohorts
from transforms.membership import membership

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IWM = FIXTURES / "ishares-iwm" / "IWM_holdings_2025-11-05.csv"
IJR_2026 = FIXTURES / "ishares-ijr-2026" / "synthetic" / "IJR_holdings_2026-11-20_synthetic.csv"
FUND_SCHEMA = {"symbol": pl.String, "period_end_date": pl.Date, "report_date": pl.Date, "net_income_common_usd": pl.Float64}
NO_FUNDAMENTALS = pl.LazyFrame(schema=FUND_SCHEMA)


def weights_of(holdings: pl.DataFrame, first: date, last: date) -> pl.DataFrame:
    """core.cohorts for the snapshot's members on the sessions first..last, through the real transforms."""
    sessions = pl.LazyFrame({"session_date": calendar.sessions(first, last)}, schema={"session_date": pl.Date})
    members = membership(holdings.lazy(), sessions)
    return cohorts(members, holdings.lazy(), NO_FUNDAMENTALS, sessions).collect()


def raw_market_values(path: Path) -> dict[tuple[str, str], float]:
    """(ticker, Type or Asset Class) -> Market Value, read with the csv module, not the parser."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    start = next(i for i, r in enumerate(rows) if r and r[0] == "Ticker")
    header = rows[start]
    kind = header.index("Type") if "Type" in header else header.index("Asset Class")
    mv = header.index("Market Value")
    out = {}
    for r in rows[start + 1 :]:
        if len(r) != len(header):
            break
        out.setdefault((r[0], r[kind]), float(r[mv].replace(",", "")))
    return out


@pytest.fixture(scope="module")
def iwm() -> pl.DataFrame:
    return parse_holdings(IWM.read_bytes(), universe="russell2000", source_name=IWM.name).holdings


@pytest.fixture(scope="module")
def iwm_cohorts(iwm) -> pl.DataFrame:
    return weights_of(iwm, date(2025, 11, 5), date(2025, 11, 7))


def test_iwm_no_held_stock_weighs_zero_and_weights_sum_to_one(iwm, iwm_cohorts):
    printed_zero = set(iwm.filter(pl.col("weight_pct") == 0).get_column("symbol"))
    assert len(printed_zero) == 236  # of 1,954 members: the reason weights come from market value
    assert iwm.get_column("market_value_usd").min() > 0
    for session_date, day in iwm_cohorts.group_by("session_date"):
        assert day.height == 1_954, session_date
        assert day.get_column("weight").null_count() == 0
        assert day.get_column("weight").sum() == pytest.approx(1.0, abs=1e-12)
        assert day.get_column("weight").min() > 0
        assert day.filter(pl.col("symbol").is_in(printed_zero)).get_column("weight").min() > 0


def test_iwm_weights_are_market_value_ratios(iwm_cohorts):
    # Market values as printed in the file (read here by the csv module, independently of the parser).
    mv = raw_market_values(IWM)
    w = dict(iwm_cohorts.filter(pl.col("session_date") == date(2025, 11, 6)).select("symbol", "weight").iter_rows())
    assert mv[("BE", "Equity")] == 731_205_514.79 and mv[("CRDO", "Equity")] == 617_797_996.92
    assert w["BE"] / w["CRDO"] == pytest.approx(731_205_514.79 / 617_797_996.92, rel=1e-12)
    # Two members that print Weight (%) 0.00: their weights still differ as their holdings do.
    assert (mv[("THRD", "Equity")], mv[("ZSPC", "Equity")]) == (18_103.44, 58_188.85)
    assert w["ZSPC"] / w["THRD"] == pytest.approx(58_188.85 / 18_103.44, rel=1e-12)
    assert w["THRD"] / w["BE"] == pytest.approx(18_103.44 / 731_205_514.79, rel=1e-12)
    # MOGA is keyed by its Yahoo symbol.
    assert w["MOG-A"] / w["BE"] == pytest.approx(mv[("MOGA", "Equity")] / 731_205_514.79, rel=1e-12)


def test_iwm_sector_weights_match_market_value_shares(iwm_cohorts):
    day = iwm_cohorts.filter(pl.col("session_date") == date(2025, 11, 5))
    shares = dict(day.group_by("sector").agg(pl.col("weight").sum()).iter_rows())
    assert shares["Health Care"] == pytest.approx(0.1685, abs=0.001)
    assert shares["Financials"] == pytest.approx(0.1717, abs=0.001)
    assert shares["Industrials"] == pytest.approx(0.1816, abs=0.001)


def test_iwm_without_market_values_falls_back_to_the_rounded_published_weights(iwm):
    # What weights were before they came from market value: the 236 members printing 0.00 weigh 0.
    old = weights_of(iwm.drop("market_value_usd"), date(2025, 11, 5), date(2025, 11, 5))
    assert old.filter(pl.col("weight") == 0).height == 236
    assert old.get_column("weight").sum() == pytest.approx(1.0, abs=1e-12)
    be = old.filter(pl.col("symbol") == "BE").get_column("weight")[0]
    assert be == pytest.approx(1.06 / iwm.get_column("weight_pct").sum(), rel=1e-12)


def test_2026_layout_weights_leave_the_swap_out():
    got = parse_holdings(IJR_2026.read_bytes(), universe="sp600", source_name=IJR_2026.name)
    out = weights_of(got.holdings, date(2026, 11, 20), date(2026, 11, 20))
    w = dict(out.select("symbol", "weight").iter_rows())
    # The seven EQUITY lines of the file, by hand; the CRS swap (1,284,310.55) is not in the sleeve.
    sleeve = 312_375_000 + 254_610_000 + 205_679_485 + 197_311_650 + 192_427_200 + 61_402_000 + 39_382
    assert w["CRS"] == pytest.approx(312_375_000 / sleeve, rel=1e-12)
    assert w["CVRX"] == pytest.approx(39_382 / sleeve, rel=1e-12)  # prints Market Weight 0.00
    assert w["CVRX"] > 0 and sum(w.values()) == pytest.approx(1.0, abs=1e-12)


# fallback to the published weight -------------------------------------------------------------------

D1, D2 = date(2025, 3, 3), date(2025, 3, 4)


def lines(rows: list[tuple]) -> pl.DataFrame:
    """rows: (as_of_date, symbol, weight_pct, market_value_usd)."""
    frame = pl.DataFrame(
        rows,
        schema={"as_of_date": pl.Date, "symbol": pl.String, "weight_pct": pl.Float64, "market_value_usd": pl.Float64},
        orient="row",
    )
    return frame.with_columns(pl.lit("r2k").alias("universe"), pl.lit("Energy").alias("sector"))


def weights_on(holdings: pl.DataFrame, day: date) -> dict[str, float | None]:
    out = weights_of(holdings, day, day)
    return dict(out.select("symbol", "weight").iter_rows())


def test_a_missing_market_value_is_valued_from_the_published_weight():
    # Dollars per published percent point, from the lines with both: (300 + 100) / (0.30 + 0.10) = 1000;
    # CCC (0.20%, no market value) is valued 200; NaN counts as missing.
    w = weights_on(lines([(D1, "AAA", 0.30, 300.0), (D1, "BBB", 0.10, 100.0), (D1, "CCC", 0.20, None)]), D1)
    assert w == pytest.approx({"AAA": 0.5, "BBB": 100 / 600, "CCC": 200 / 600})
    w = weights_on(lines([(D1, "AAA", 0.30, 300.0), (D1, "BBB", 0.10, 100.0), (D1, "CCC", 0.20, float("nan"))]), D1)
    assert w == pytest.approx({"AAA": 0.5, "BBB": 100 / 600, "CCC": 200 / 600})


def test_market_value_wins_over_a_rounded_published_weight():
    # BBB prints 0.00 but holds 4 dollars of 1,004.
    w = weights_on(lines([(D1, "AAA", 1.00, 1000.0), (D1, "BBB", 0.00, 4.0)]), D1)
    assert w == pytest.approx({"AAA": 1000 / 1004, "BBB": 4 / 1004})


def test_a_snapshot_without_market_values_uses_the_published_weights():
    w = weights_on(lines([(D1, "AAA", 0.30, None), (D1, "BBB", 0.10, None)]), D1)
    assert w == pytest.approx({"AAA": 0.75, "BBB": 0.25})


def test_a_line_with_neither_value_has_no_weight():
    w = weights_on(lines([(D1, "AAA", 0.30, 300.0), (D1, "BBB", 0.10, 100.0), (D1, "CCC", None, None)]), D1)
    assert w["CCC"] is None and w["AAA"] + w["BBB"] == pytest.approx(1.0)
    # No line with both figures: the published weight cannot be put in dollars, so BBB has none.
    w = weights_on(lines([(D1, "AAA", None, 300.0), (D1, "BBB", 0.10, None)]), D1)
    assert w == {"AAA": 1.0, "BBB": None}


def test_dollars_per_point_are_per_snapshot():
    # Two snapshots of different fund sizes: CCC's fallback uses its own snapshot's 1000 $/point, not a blend.
    h = lines(
        [
            (D1, "AAA", 0.50, 5.0), (D1, "BBB", 0.50, 5.0), (D1, "CCC", 0.50, 5.0),
            (D2, "AAA", 0.30, 300.0), (D2, "BBB", 0.10, 100.0), (D2, "CCC", 0.20, None),
        ]
    )
    out = weights_of(h, D1, D2)
    w = dict(out.filter(pl.col("session_date") == D2).select("symbol", "weight").iter_rows())
    assert w == pytest.approx({"AAA": 0.5, "BBB": 100 / 600, "CCC": 200 / 600})
