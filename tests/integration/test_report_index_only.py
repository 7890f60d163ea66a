"""An index-only csv folder through the backfill flow, then `smallcaps report`: the report draws the
indexes it has and says what it does not have (no members, pairs with an index not loaded).

Before the fix the backfill published the night but its report failed ("IndexError: too many
indices for array" in the relative-strength chart), and `smallcaps report` exited with it. The same
load also carries the new index columns to the published marts: the weekly change, support and
resistance, and the index's own return since a dated anchor with its headline.
"""

from __future__ import annotations

import re
from datetime import date
from html import unescape
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from flows.backfill import backfill
from smallcaps.cli import app

# Runs a flow: the module's home is loaded by the backfill flow.
pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "yahoo-daily-csv"
# The last two years of the real files keep the load short; the 2022 low of the Russell 2000
# (1,649.84 on 2022-06-16) is the dated anchor.
FIRST = "2020-11-02"
ANCHOR = "2022-06-16"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("index-only")
    for name in ("^RUT.csv", "^GSPC.csv", "^VIX.csv"):
        lines = (FIXTURES / name).read_text().splitlines()
        kept = [lines[0]] + [line for line in lines[1:] if line[:10] >= FIRST]
        (folder / name).write_text("\n".join(kept) + "\n")
    home = tmp_path_factory.mktemp("index-only-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMALLCAPS_ANCHORS", f"ytd,1y,{ANCHOR}")
        result = backfill(source="csv", csv_path=str(folder), home=str(home))
    assert result["status"] == "succeeded", result
    assert result["as_of"] == "2022-11-18"
    assert not [w for w in result["warnings"] if "report" in w], result["warnings"]
    # The cohort marts stay empty in every year of the replay: said once each, not once a year.
    assert len(result["warnings"]) == len(set(result["warnings"])), result["warnings"]
    empty = [w for w in result["warnings"] if w.startswith("marts.") and "rows_present" in w]
    assert any("periods of the replay" in w for w in empty), empty
    home.joinpath("folder").write_text(str(folder))
    return home


def snapshot(home: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)


def test_the_report_draws_what_exists_and_names_what_is_absent(home):
    result = CliRunner().invoke(app, ["report", "--home", str(home)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    charts = [Path(line.removeprefix("chart: ")).stem for line in lines if line.startswith("chart: ")]
    assert charts == ["relative-strength", "index-rut", "index-gspc", "vix"]
    not_drawn = [line.removeprefix("not drawn: ") for line in lines if line.startswith("not drawn: ")]
    assert any("(^RUT/^SP600)" in t and "no ^SP600 rows in marts.index_daily" in t for t in not_drawn)
    assert any("(^RUT/^IXIC)" in t and "no ^IXIC rows" in t for t in not_drawn)
    assert any(t.startswith("Index closes, record closes and RSI-14: S&P SmallCap 600 (^SP600)") for t in not_drawn)
    for universe in ("Russell 2000 (russell2000)", "S&P 600 (sp600)"):
        assert any(t.startswith(f"Cohort performance since each anchor: {universe}: no members") for t in not_drawn)
        assert any(t.startswith(f"Sector returns: {universe}") for t in not_drawn)
    page = (home / "report" / "2022-11-18" / "index.html").read_text(encoding="utf-8")
    boxes = re.findall(r'<div class="absent" id="absent-([a-z-]+)">', page)
    assert boxes == ["relative-strength", "indexes", "cohort-performance", "cohort-composition", "sectors"]
    headlines = [unescape(h) for h in re.findall(r'<ol class="headlines">(.*?)</ol>', page, re.S)[0].split("</li>")]
    assert any("Russell 2000" in h for h in headlines)


def test_the_new_index_columns_are_published(home):
    con = snapshot(home)
    try:
        vix = con.execute(
            "SELECT close, change_5d, ret_5d FROM marts.index_daily WHERE symbol = '^VIX' AND session_date = '2022-11-18'"
        ).fetchone()
        levels = con.execute(
            "SELECT count(*), count(support_level), count(resistance_level), "
            "count(*) FILTER (WHERE support_level >= close OR resistance_level <= close OR support_date >= session_date) "
            "FROM marts.index_daily WHERE session_date >= '2021-06-01'"
        ).fetchone()
        since = con.execute(
            "SELECT symbol, anchor_date, anchor_close, close, return_since_anchor FROM marts.index_performance "
            "WHERE anchor = ? AND session_date = '2022-11-18' AND symbol <> '^VIX' ORDER BY symbol",
            [ANCHOR],
        ).fetchall()
        headline = con.execute(
            "SELECT sentence, value, rank FROM marts.headlines WHERE as_of_date = '2022-11-18' AND fact_key = ?",
            [f"index_since:^RUT/^GSPC:{ANCHOR}"],
        ).fetchone()
        leading = [r[0] for r in con.execute(
            "SELECT fact_key FROM marts.headlines WHERE as_of_date = '2022-11-18' ORDER BY rank LIMIT 3"
        ).fetchall()]  # fmt: skip
    finally:
        con.close()
    # ^VIX.csv: 22.52 on 2022-11-11, 23.12 on 2022-11-18.
    assert vix[0] == pytest.approx(23.12) and vix[1] == pytest.approx(0.60, abs=1e-9)
    assert vix[2] == pytest.approx(23.12 / 22.52 - 1, abs=1e-12)
    rows, with_support, with_resistance, wrong_side = levels
    assert wrong_side == 0 and 0 < with_support < rows and 0 < with_resistance < rows
    # From the files: the Russell 2000 closed at 1,649.84 on 2022-06-16 and 1,849.73 on 2022-11-18;
    # the S&P 500 at 3,666.77 and 3,965.34.
    raw = {
        s: pl.read_csv(FIXTURES / f"{s}.csv", try_parse_dates=True).filter(
            pl.col("Date").cast(pl.Date).is_in([date(2022, 6, 16), date(2022, 11, 18)])
        )["Close"].to_list()
        for s in ("^GSPC", "^RUT")
    }
    assert [r[0] for r in since] == ["^GSPC", "^RUT"]
    for (symbol, anchor_date, anchor_close, close, ret), (c0, c1) in zip(since, (raw["^GSPC"], raw["^RUT"])):
        assert anchor_date == date(2022, 6, 16) and anchor_close == c0 and close == c1
        assert ret == pytest.approx(c1 / c0 - 1, abs=1e-12)
    rut, spx = since[1][4], since[0][4]
    assert headline[0] == (
        f"Since {ANCHOR} the Russell 2000 is {rut * 100:+.1f}% vs {spx * 100:+.1f}% for the S&P 500, "
        f"{abs(rut - spx) * 1e4:,.0f} bp {'ahead' if rut > spx else 'behind'}"
    )
    assert headline[1] == pytest.approx(round((rut - spx) * 1e4))
    # No cohorts in an index-only warehouse: three of the five lead facts, then the rest.
    assert leading == ["index_from_record:^RUT", "streak:^RUT/^GSPC", "ytd_spread:^RUT/^GSPC"]
