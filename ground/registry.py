"""Every derived dataset (core and marts), declared once.

An entry says what a table is (grain, key, columns with their meaning and unit), where it comes
from (its inputs, the step that computes it), how it is checked (its expectation suite), how it is
exported (its date column gives the year partitions), and how it is kept up to date (see
`pipeline.derive`: a night recomputes only what its changed inputs reach, plus the look-back the
step declares). Everything else is derived from this list: the tables' DDL, the order of the
derivation, the gates on marts, the Parquet exports, the freshness in `smallcaps status` and the
report, and docs/marts.md (`python -m smallcaps.docs_marts`, checked by a test).

Nothing here computes: steps live in `pipeline.steps`, transforms in `transforms/`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Iterable, Mapping

import polars as pl

_DUCKDB_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "VARCHAR",
    pl.Date: "DATE",
    pl.Float64: "DOUBLE",
    pl.Int32: "INTEGER",
    pl.Int64: "BIGINT",
    pl.Boolean: "BOOLEAN",
}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: type[pl.DataType] | pl.DataType
    meaning: str
    unit: str = ""  # fraction, bp, index points, USD, count, sessions, level 0-100, ratio; "" for keys and labels
    nullable: bool = True

    @property
    def sql_type(self) -> str:
        base = self.dtype if isinstance(self.dtype, type) else type(self.dtype)
        return _DUCKDB_TYPES[base]

    @property
    def comment(self) -> str:
        return f"{self.meaning} [{self.unit}]" if self.unit else self.meaning


@dataclass(frozen=True)
class Dataset:
    name: str  # schema.table
    grain: str  # "one row per ..."
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    inputs: tuple[str, ...]  # raw tables and other datasets the step reads
    date_column: str | None  # what makes a row old or new: the freshness, the export partition
    description: str = ""  # what a BI user should know beyond the grain (docs/marts.md)
    suite: bool = False  # gated by expectations.suites.suite(name) after each update
    export: bool = False  # exported as Parquet (marts), partitioned by the year of date_column
    lookback_sessions: int = 0  # sessions of its own history (or its inputs') a step re-reads
    examples: tuple[str, ...] = ()  # SQL shown in docs/marts.md
    # Settings that shape the rows (pairs, anchors): a change rebuilds the table like a new shape.
    settings: tuple[str, ...] = ()

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return {c.name: (c.dtype() if isinstance(c.dtype, type) else c.dtype) for c in self.columns}

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def ddl(self) -> str:
        lines = [f"    {c.name} {c.sql_type}{'' if c.nullable else ' NOT NULL'}" for c in self.columns]
        lines.append(f"    PRIMARY KEY ({', '.join(self.key)})")
        return f"CREATE TABLE {self.name} (\n" + ",\n".join(lines) + "\n)"

    def fingerprint(self, config: Mapping[str, object] | None = None) -> str:
        """Changes when the table's shape, or a setting that shapes its rows, changes: the stored
        table is then rebuilt from raw. `config` maps setting names to values."""
        shaped = "".join(f"\n{name}={(config or {}).get(name)!r}" for name in self.settings)
        return hashlib.sha256((self.ddl() + shaped).encode()).hexdigest()[:16]


def _c(name, dtype, meaning, unit="", nullable=True) -> Column:
    return Column(name, dtype, meaning, unit, nullable)


def _key(name, dtype, meaning) -> Column:
    return Column(name, dtype, meaning, "", False)


SYMBOL = _key("symbol", pl.String, "Yahoo symbol, e.g. `^RUT` or `MOG-A`")
INDEX_SYMBOL = _key("symbol", pl.String, "Yahoo index symbol, e.g. `^RUT`")
SESSION = _key("session_date", pl.Date, "NYSE session")
UNIVERSE = _key("universe", pl.String, "`russell2000` (iShares IWM holdings) or `sp600` (iShares IJR)")

DATASETS: tuple[Dataset, ...] = (
    # core ----------------------------------------------------------------------------------------
    Dataset(
        "core.sessions",
        "one row per NYSE session (exchange_calendars XNYS) from the first loaded date to the night",
        (
            SESSION,
            _c("year", pl.Int32, "calendar year of the session", nullable=False),
            _c("is_early_close", pl.Boolean, "the exchange closed early (13:00 New York)", nullable=False),
        ),
        key=("session_date",),
        inputs=("raw.index_bars", "raw.equity_bars", "raw.holdings"),
        date_column="session_date",
    ),
    Dataset(
        "core.equity_returns",
        "one row per constituent and session it has a bar for",
        (
            SYMBOL,
            SESSION,
            _c("adj_close", pl.Float64, "adjusted close (splits and dividends, Yahoo `Adj Close`)", "USD", nullable=False),
            _c("ret_1d", pl.Float64, "adj_close / the symbol's previous adj_close - 1; null on its first bar", "fraction"),
        ),
        key=("symbol", "session_date"),
        inputs=("raw.equity_bars",),
        date_column="session_date",
        lookback_sessions=1,
    ),
    Dataset(
        "core.membership",
        "one row per universe, symbol and membership interval",
        (
            UNIVERSE,
            SYMBOL,
            _key("valid_from_date", pl.Date, "first session as a member (the first session on or after the first snapshot holding it)"),
            _c("valid_to_date", pl.Date, "last session as a member (the session before the first later snapshot without it); null while it is in the latest snapshot"),
        ),
        key=("universe", "symbol", "valid_from_date"),
        inputs=("raw.holdings", "core.sessions"),
        date_column="valid_from_date",
    ),
    Dataset(
        "core.cohorts",
        "one row per universe, member and session its membership covers",
        (
            UNIVERSE,
            SYMBOL,
            SESSION,
            _c("sector", pl.String, "sector label of the latest holdings snapshot on or before the session"),
            _c("weight", pl.Float64, "market value / market value of the snapshot's equity lines (the equity sleeve); sums to 1 per universe and session", "fraction"),
            _c("cohort", pl.String, "`profitable`, `unprofitable` or `no_data` under cohort rule v1, as known on the session", nullable=False),
            _c("ttm_net_income_usd", pl.Float64, "net income to common of the 4 latest counted quarters; null for no_data", "USD"),
            _c("quarters_counted", pl.Int32, "quarters of the TTM window counted on the session (0-4)", "count", nullable=False),
            _c("rule_version", pl.String, "cohort rule applied, `v1`", nullable=False),
        ),
        key=("universe", "symbol", "session_date"),
        inputs=("core.membership", "raw.holdings", "raw.fundamentals", "core.sessions"),
        date_column="session_date",
    ),
    # marts (the BI contract) ---------------------------------------------------------------------
    Dataset(
        "marts.index_daily",
        "one row per index symbol and session of its loaded history",
        (
            INDEX_SYMBOL,
            SESSION,
            _c("close", pl.Float64, "official close (Yahoo `Close`)", "index points", nullable=False),
            _c("ret_1d", pl.Float64, "close / previous session's close - 1; null on the first session", "fraction"),
            _c("ytd_return", pl.Float64, "close / prev_year_close - 1; null when that close is not loaded", "fraction"),
            _c("prev_year_close", pl.Float64, "last close of the previous calendar year in the loaded history, the base of ytd_return; null when the previous year has no close loaded", "index points"),
            _c("is_record_close", pl.Boolean, "close strictly above every earlier close in the loaded history; false on the first session and on ties", nullable=False),
            _c("records_ytd", pl.Int32, "record closes in this calendar year up to and including this session", "count", nullable=False),
            _c("drawdown_from_record", pl.Float64, "close / highest close so far (today included) - 1; 0 on a record, negative below it", "fraction", nullable=False),
            _c("record_close", pl.Float64, "highest close so far (today included): the record the drawdown is measured from", "index points", nullable=False),
            _c("record_date", pl.Date, "first session that closed at record_close (a later tie does not move it)", nullable=False),
            _c("rsi_14", pl.Float64, "RSI-14, Wilder's smoothing; null for the first 14 sessions", "level 0-100"),
            _c("rsi_avg_gain", pl.Float64, "Wilder's average of close-to-close gains over 14 sessions, the numerator of RSI-14; null for the first 14 sessions", "index points"),
            _c("rsi_avg_loss", pl.Float64, "Wilder's average of close-to-close losses over 14 sessions (as a positive number); null for the first 14 sessions", "index points"),
            _c("sma_50", pl.Float64, "mean of the last 50 closes; null before 50 sessions", "index points"),
            _c("sma_200", pl.Float64, "mean of the last 200 closes; null before 200 sessions", "index points"),
            _c("high_52w", pl.Float64, "highest close of the last 252 sessions (today included); null before 252 sessions", "index points"),
            _c("low_52w", pl.Float64, "lowest close of the last 252 sessions (today included); null before 252 sessions", "index points"),
            _c("change_5d", pl.Float64, "close - close 5 sessions earlier (one trading week); null for the first 5 sessions. For `^VIX`, points of volatility", "index points"),
            _c("ret_5d", pl.Float64, "close / close 5 sessions earlier - 1; null for the first 5 sessions", "fraction"),
            _c("support_level", pl.Float64, "the highest confirmed swing low strictly below the close, among swings of the last 126 sessions; null when there is none", "index points"),
            _c("support_date", pl.Date, "the session of that swing low"),
            _c("resistance_level", pl.Float64, "the lowest confirmed swing high strictly above the close, among swings of the last 126 sessions; null when there is none", "index points"),
            _c("resistance_date", pl.Date, "the session of that swing high"),
        ),
        key=("symbol", "session_date"),
        inputs=("raw.index_bars",),
        date_column="session_date",
        suite=True,
        export=True,
        description="A swing low (high) is a close strictly below (above) each of the 5 closes before it and the 5 "
        "after it; it is *confirmed*, and used, only from the 5th session after it on, so no row reads a later close "
        "([definitions](definitions.md#support-and-resistance)); each reads at most 130 earlier sessions of its symbol "
        "(`transforms/index_levels.py`).\n\n"
        "A night recomputes only its new sessions: the window columns re-read at most 261 earlier sessions, and the "
        "record, this year's record count and the RSI averages continue from the stored row before them "
        "(`record_close`, `record_date`, `records_ytd`, `rsi_avg_gain`, `rsi_avg_loss`).\n\n"
        "For `^VIX` the columns are computed the same way but only `close`, `ret_1d`, `change_5d` and `ret_5d` are "
        "meaningful (a \"record\" VIX is not a market high).",
        examples=(
            "-- Record closes of the Russell 2000 this year\n"
            "SELECT session_date, close, records_ytd FROM marts.index_daily\n"
            "WHERE symbol = '^RUT' AND is_record_close AND year(session_date) = 2026 ORDER BY session_date;",
        ),
    ),
    Dataset(
        "marts.index_records",
        "one row per index symbol and calendar year present in its loaded history (years with no record close included, with 0)",
        (
            INDEX_SYMBOL,
            _key("year", pl.Int32, "calendar year"),
            _c("record_closes", pl.Int32, "record closes in the year (= records_ytd of the year's last session)", "count", nullable=False),
            _c("first_record_date", pl.Date, "first record close of the year; null when none"),
            _c("last_record_date", pl.Date, "last record close of the year; null when none"),
            _c("history_start", pl.Date, "first session of this symbol's loaded history: records are relative to it", nullable=False),
        ),
        key=("symbol", "year"),
        inputs=("marts.index_daily",),
        date_column=None,
        export=True,
    ),
    Dataset(
        "marts.index_performance",
        "one row per index symbol, anchor and session from the anchor on, where the index has a close both on the session and on the anchor session",
        (
            INDEX_SYMBOL,
            _key("anchor", pl.String, "as configured: `ytd`, `1y`, or a date such as `2025-04-08`"),
            SESSION,
            _c("anchor_date", pl.Date, "the session the anchor resolves to (see `marts.cohort_performance`)", nullable=False),
            _c("anchor_close", pl.Float64, "close on anchor_date", "index points", nullable=False),
            _c("close", pl.Float64, "close on session_date", "index points", nullable=False),
            _c("return_since_anchor", pl.Float64, "close / anchor_close - 1 (price return); 0 on the anchor session itself", "fraction", nullable=False),
        ),
        key=("symbol", "anchor", "session_date"),
        inputs=("marts.index_daily", "core.sessions"),
        date_column="session_date",
        suite=True,
        export=True,
        settings=("anchors",),
        description="Anchors come from settings (default `ytd`, `1y`, `2025-04-02`, `2025-04-08`) and resolve to the "
        "same sessions as in `marts.cohort_performance`, so \"since 2025-04-08\" means one session for the indexes and "
        "for the cohorts. An index without a close on the anchor session (its history starts later) has no rows for that "
        "anchor; a dated anchor has no rows before its date. For `ytd` it equals `marts.index_daily.ytd_return` (both are "
        "measured from the last close of the previous year).",
        examples=(
            "-- \"The Russell 2000 +40.2% since the April 8 low vs +39.2% for the S&P 500\"\n"
            "SELECT symbol, anchor_date, anchor_close, close, return_since_anchor\n"
            "FROM marts.index_performance\n"
            "WHERE anchor = '2025-04-08' AND symbol IN ('^RUT', '^GSPC')\n"
            "  AND session_date = (SELECT max(session_date) FROM marts.index_performance);",
        ),
    ),
    Dataset(
        "marts.relative_performance",
        "one row per (lead_symbol, lag_symbol) pair and session on which both indexes have a daily return",
        (
            _key("lead_symbol", pl.String, "the index that may outperform"),
            _key("lag_symbol", pl.String, "the index it is compared with"),
            SESSION,
            _c("lead_ret", pl.Float64, "lead's ret_1d", "fraction"),
            _c("lag_ret", pl.Float64, "lag's ret_1d", "fraction"),
            _c("spread", pl.Float64, "lead_ret - lag_ret", "fraction"),
            _c("outperformed", pl.Boolean, "lead_ret > lag_ret, strictly (a tie is false)", nullable=False),
            _c("streak", pl.Int32, "consecutive outperforming sessions ending here; 0 when not outperformed", "sessions", nullable=False),
            _c("longest_since", pl.Date, "latest earlier session, before this streak began, on which a streak was at least this long; null when streak is 0 or when this is the longest streak in the loaded history"),
            _c("lead_ytd_return", pl.Float64, "lead's ytd_return (marts.index_daily) on the session; null when its last close of the previous year is not loaded", "fraction"),
            _c("lag_ytd_return", pl.Float64, "lag's ytd_return (marts.index_daily) on the session; null when its last close of the previous year is not loaded", "fraction"),
            _c("ytd_spread", pl.Float64, "lead_ytd_return - lag_ytd_return; null when either is null", "fraction"),
            _c("relative_level", pl.Float64, "relative strength: the product of (1 + lead_ret) / (1 + lag_ret) over the pair's rows from its first one up to and including this session (the first row's own factor included); divide by the level of an earlier session to rebase the line there", "ratio", nullable=False),
        ),
        key=("lead_symbol", "lag_symbol", "session_date"),
        inputs=("marts.index_daily",),
        date_column="session_date",
        suite=True,
        export=True,
        settings=("pairs",),
        description="Pairs come from settings (default `^RUT/^GSPC`, `^RUT/^SP600`, `^SP600/^GSPC`, `^RUT/^IXIC`); "
        "a pair with a symbol not loaded has no rows.\n\n"
        "A night continues the streak and `relative_level` from the pair's stored row before its new sessions. "
        "`relative_level` rises when the lead outperforms; the report's relative-strength line is it divided by "
        "its level on the last session before the chart's window (100 = that session).",
        examples=(
            "-- Tonight's streak and when a streak that long was last seen\n"
            "SELECT session_date, streak, longest_since FROM marts.relative_performance\n"
            "WHERE lead_symbol = '^RUT' AND lag_symbol = '^GSPC' ORDER BY session_date DESC LIMIT 1;",
            "-- Relative strength of the Russell 2000 against the S&P 500 since 2025-04-08 (100 = that session)\n"
            "SELECT session_date, 100 * relative_level / (SELECT relative_level FROM marts.relative_performance\n"
            "    WHERE lead_symbol = '^RUT' AND lag_symbol = '^GSPC' AND session_date = DATE '2025-04-08') AS rs\n"
            "FROM marts.relative_performance\n"
            "WHERE lead_symbol = '^RUT' AND lag_symbol = '^GSPC' AND session_date >= DATE '2025-04-08' ORDER BY session_date;",
        ),
    ),
    Dataset(
        "marts.cohort_composition",
        "one row per universe, session and cohort",
        (
            UNIVERSE,
            SESSION,
            _key("cohort", pl.String, "`profitable`, `unprofitable` or `no_data` under cohort rule v1 (TTM net income as known on the session, no look-ahead)"),
            _c("members", pl.Int32, "members of the universe in this cohort on the session", "count", nullable=False),
            _c("share_of_members", pl.Float64, "members / all members of the universe on the session; sums to 1 over cohorts", "fraction", nullable=False),
            _c("share_of_weight", pl.Float64, "the cohort's share of the universe's weight (equity sleeve, weights from market values in the holdings file); null where weights are unknown", "fraction"),
            _c("rule_version", pl.String, "cohort rule applied, `v1`", nullable=False),
        ),
        key=("universe", "session_date", "cohort"),
        inputs=("core.cohorts",),
        date_column="session_date",
        suite=True,
        export=True,
        description="Every cohort has a row on every session of the universe: a cohort without members has `members` 0 and share 0.",
    ),
    Dataset(
        "marts.cohort_performance",
        "one row per universe, anchor, cohort and session (sessions from the anchor session on)",
        (
            UNIVERSE,
            _key("anchor", pl.String, "as configured: `ytd`, `1y`, or a date such as `2025-04-08`"),
            _key("cohort", pl.String, "cohort fixed at the anchor session (buy and hold): `profitable`, `unprofitable`, `no_data`, or `all` (every member)"),
            _key("session_date", pl.Date, "NYSE session on which the return is measured"),
            _c("anchor_date", pl.Date, "the session the anchor resolves to (last session on or before the date; `ytd`: last session of the previous year; `1y`: last session on or before the same day a year earlier)", nullable=False),
            _c("members", pl.Int32, "members of the cohort at the anchor session", "count", nullable=False),
            _c("priced", pl.Int32, "of those, how many had a price (members without one are not in the returns)", "count", nullable=False),
            _c("return_equal_weight", pl.Float64, "mean of member returns adj_close(t) / adj_close(anchor) - 1 (a member that stopped trading keeps its last return)", "fraction"),
            _c("return_cap_weight", pl.Float64, "member returns weighted by weight at the anchor session", "fraction"),
            _c("return_median", pl.Float64, "median member return", "fraction"),
        ),
        key=("universe", "anchor", "cohort", "session_date"),
        inputs=("core.cohorts", "core.equity_returns", "core.sessions"),
        date_column="session_date",
        suite=True,
        export=True,
        settings=("anchors",),
        examples=(
            "-- \"Junk rally?\" Unprofitable minus profitable since the April 2025 low, in bp\n"
            "SELECT p.session_date, (u.return_equal_weight - p.return_equal_weight) * 1e4 AS gap_bp\n"
            "FROM marts.cohort_performance p JOIN marts.cohort_performance u USING (universe, anchor, session_date)\n"
            "WHERE p.universe = 'russell2000' AND p.anchor = '2025-04-08' AND p.cohort = 'profitable' AND u.cohort = 'unprofitable';",
        ),
    ),
    Dataset(
        "marts.sector_daily",
        "one row per universe, sector and session",
        (
            UNIVERSE,
            _key("sector", pl.String, "the iShares holdings sector label of each member, e.g. `Energy`; `Unknown` where the file has none"),
            SESSION,
            _c("members", pl.Int32, "members of the universe in the sector on the session", "count", nullable=False),
            _c("return_equal_weight", pl.Float64, "mean of the members' daily returns (on adj_close)", "fraction"),
            _c("return_cap_weight", pl.Float64, "members' daily returns weighted by their weight in the universe at the start of the day (the previous session's holdings weight; a member's first session uses that session's)", "fraction"),
        ),
        key=("universe", "sector", "session_date"),
        inputs=("core.cohorts", "core.equity_returns"),
        date_column="session_date",
        suite=True,
        export=True,
    ),
    Dataset(
        "marts.sector_performance",
        "one row per universe, anchor, sector and session from the anchor session on, for each sector with a `marts.sector_daily` row on the session",
        (
            UNIVERSE,
            _key("anchor", pl.String, "as configured: `ytd`, `1y`, or a date such as `2025-04-08`"),
            _key("sector", pl.String, "as in `marts.sector_daily`"),
            SESSION,
            _c("anchor_date", pl.Date, "the session the anchor resolves to (as in `marts.cohort_performance`)", nullable=False),
            _c("return_equal_weight", pl.Float64, "the sector's daily equal-weight returns (`marts.sector_daily`) after anchor_date up to and including the session, compounded: prod(1 + return) - 1; 0 on the anchor session", "fraction", nullable=False),
            _c("return_cap_weight", pl.Float64, "the same for the daily cap-weight returns", "fraction", nullable=False),
        ),
        key=("universe", "anchor", "sector", "session_date"),
        inputs=("marts.sector_daily", "core.sessions"),
        date_column="session_date",
        suite=True,
        export=True,
        settings=("anchors",),
        description="Rebalanced daily, not buy and hold: each session's return is over that session's members "
        "of the sector (unlike `marts.cohort_performance`, whose cohorts are fixed at the anchor). A session "
        "without a return (no member priced, or no weights) counts as 0. A universe whose sector history starts "
        "after the anchor session has no rows for that anchor. A night recomputes the sessions from the first "
        "changed `marts.sector_daily` session on, reading that mart from the earliest anchor session they need.",
        examples=(
            "-- Russell 2000 sectors since the April 2025 low, best first\n"
            "SELECT sector, return_equal_weight, return_cap_weight FROM marts.sector_performance\n"
            "WHERE universe = 'russell2000' AND anchor = '2025-04-08'\n"
            "  AND session_date = (SELECT max(session_date) FROM marts.sector_performance)\n"
            "ORDER BY return_equal_weight DESC;",
        ),
    ),
    Dataset(
        "marts.headlines",
        "one row per night (`as_of_date`) and fact",
        (
            _key("as_of_date", pl.Date, "the night (session) the fact describes"),
            _key("fact_key", pl.String, "`family:subject`, stable across nights"),
            _c("rank", pl.Int32, "reading order within the night, 1, 2, 3, ... without gaps", nullable=False),
            _c("sentence", pl.String, "the fact as a sentence", nullable=False),
            _c("value", pl.Float64, "the key figure of the sentence", "see unit"),
            _c("unit", pl.String, "unit of value: `index_points`, `fraction`, `bp`, `sessions`, `count` or `level`"),
            _c("definition", pl.String, "the definition the fact relies on", nullable=False),
            _c("inputs", pl.String, "`{\"table\": \"marts....\", ...}`: the mart row and figures used", "JSON", nullable=False),
        ),
        key=("as_of_date", "fact_key"),
        inputs=(
            "marts.index_daily", "marts.index_records", "marts.index_performance", "marts.relative_performance",
            "marts.cohort_composition", "marts.cohort_performance", "marts.sector_daily",
        ),
        date_column="as_of_date",
        export=True,
        settings=("pairs", "anchors"),
        description="Every night keeps its facts, so past nights can be read back. A fact whose inputs are missing that night is absent, never invented. Each sentence is made only from mart rows of that night (plus the history those marts carry); `inputs` holds them as JSON.\n\nFact families:\n\n| fact_key | when present | value, unit | example sentence |\n| --- | --- | --- | --- |\n| `index_record:SYM` | the index closed at a record | close, index_points | Russell 2000 closed at a record 2,723.96, its 7th record close of 2026 |\n| `index_from_record:SYM` | otherwise (not on the first session of history) | drawdown_from_record, fraction | Russell 2000 closed at 2,700.00, 1.8% below its record close of 2,750.00 on 2026-01-20; 6 record closes so far in 2026 |\n| `streak:LEAD/LAG` | the pair has a row that night | streak, sessions | Russell 2000 beat the S&P 500 for an 11th straight session, the longest streak since 1996-05-22 (+0.8% vs +0.2%) |\n| `ytd:SYM` | ytd_return is known | ytd_return, fraction | Russell 2000 +8.7% year to date, at 2,717.50 against 2,500.00 at the end of 2025 |\n| `ytd_spread:LEAD/LAG` | both YTD returns are known | ytd_spread, bp | Year to date the Russell 2000 is +8.7% vs +0.4% for the S&P 500, 830 bp ahead |\n| `index_since:LEAD/LAG:ANCHOR` | the first configured pair, each dated anchor, both indexes have a `marts.index_performance` row | lead - lag return, bp | Since 2025-04-08 the Russell 2000 is +40.2% vs +39.2% for the S&P 500, 102 bp ahead |\n| `cohort_shares:UNIVERSE` | composition rows that night | profitable share, fraction | 57% of Russell 2000 members are profitable, 41% unprofitable, 2% without earnings data (1,962 members, cohort rule v1) |\n| `cohort_spread:UNIVERSE:ANCHOR` | both cohorts have an equal-weight return | unprofitable - profitable, bp | Russell 2000: unprofitable members +53.1% since 2025-04-08 vs +22.4% for profitable ones, a 3,070 bp gap |\n| `universe_spread:ANCHOR` | cohort `all` present for russell2000 and sp600 | difference, bp | Russell 2000 members +40.0% since 2025-04-08 vs +25.0% for S&P 600 members (equal weight), 1,500 bp ahead |\n| `rsi:SYM` | RSI-14 above 70 or below 30 | rsi_14, level | Russell 2000 RSI-14 at 73.4, above 70 (overbought) |\n| `sector_best:UNIVERSE`, `sector_worst:UNIVERSE` | at least two sectors with a return | sector return, fraction | Best Russell 2000 sector of the day: Energy +2.3% (equal weight, 80 members; 3 sectors) |\n| `volatility:SYM` | the VIX has a row that night | close, level | VIX at 16.00, down 4.00 points (-20.0%) over the week (5 sessions, from 20.00 on 2026-01-14): `change_5d` and `ret_5d` of `marts.index_daily` |\n\n`rank` puts first the five facts a market note opens with, those the night has, in this order: the\nmain index's `index_record` (or `index_from_record`), the main pair's `streak`, its `ytd_spread`,\nthe main universe's `cohort_spread` since the first dated anchor, its `cohort_shares`. \"Main\" is what\nsettings put first: the first pair (its lead is the main index) and `russell2000`. Every other fact\nfollows, by family in the order of the table above, then symbols in configured order (Russell 2000,\nS&P 500, S&P SmallCap 600, Nasdaq, VIX), pairs, universes and anchors as in settings. Cohort and\nsector figures in headlines use equal-weight returns.\n\nEvery number in a sentence is rounded half away from zero (0.0125 -> +1.3%, 0.00125 -> 13 bp), the\n`value` of a bp fact the same way; \"a\" or \"an\" before a number follows how it is said (\"an 11th\nstraight session\", \"an 8-session winning streak\", \"an 800 bp gap\"). A streak longer than any\nearlier one says where the loaded history starts (\"the longest streak in the loaded history, which\nstarts 2000-01-03\"): the later of the two indexes' `index_records.history_start`.",
        examples=("-- Tonight's headlines\nSELECT rank, sentence FROM marts.headlines\nWHERE as_of_date = (SELECT max(as_of_date) FROM marts.headlines) ORDER BY rank;",),
    ),
)



@dataclass(frozen=True)
class Described:
    """A published table the registry does not derive (meta, dq): what a reader sees of it.

    Its types are the warehouse's (migrations); only the grain, the key and the meaning of each
    column are declared here, and publishing refuses a column that has no description."""

    name: str
    grain: str
    key: tuple[str, ...]
    columns: tuple[tuple[str, str, str], ...]  # (column, meaning, unit)

    def comment(self, column: str) -> str:
        for name, meaning, unit in self.columns:
            if name == column:
                return f"{meaning} [{unit}]" if unit else meaning
        raise KeyError(
            f"{self.name}.{column} has no description: declare it in ground/registry.py (PUBLISHED_META)"
        )


_LOAD = ("load_id", "load id, `YYYYMMDDTHHMMSS-xxxxxxxx` (UTC start of the load, then a random suffix)", "")

# What the snapshot carries besides the datasets, so that a reader can tell which load made it.
PUBLISHED_META: tuple[Described, ...] = (
    Described(
        "meta.snapshot",
        "one row: the night this snapshot is, and the load that published it",
        ("load_id",),
        (
            ("as_of_date", "the night (NYSE session) the snapshot is up to date with", ""),
            _LOAD,
            ("source", "where the data came from: `sample` (synthetic), `yahoo` or `csv`", ""),
            ("published_at", "when the snapshot was written (UTC)", "timestamp"),
            ("storage_version", "DuckDB storage version the file was written with (`SMALLCAPS_PUBLISH_STORAGE_VERSION`)", ""),
        ),
    ),
    Described(
        "meta.loads",
        "one row per load (a nightly, backfill or rebuild run, or a csv import)",
        ("load_id",),
        (
            _LOAD,
            ("flow_run_id", "Prefect flow run id; null outside Prefect", ""),
            ("flow_name", "the flow or command that ran the load", ""),
            ("source", "where the data came from: `sample` (synthetic), `yahoo` or `csv`", ""),
            ("start_date", "first session the load asked for", ""),
            ("end_date", "last session the load asked for (the night it publishes)", ""),
            ("sessions", "NYSE sessions in start_date..end_date", "count"),
            ("rows_in", "rows fetched, all raw tables", "count"),
            ("rows_loaded", "rows that passed the gates into raw", "count"),
            ("rows_changed", "rows of raw that were inserted or differed from the stored row", "count"),
            ("rows_quarantined", "rows set aside by the gates (`dq.quarantine` in the private warehouse)", "count"),
            ("status", "`running`, `succeeded` (published), `merged` (a window of a backfill, published by its last), `held`, `blocked`, `failed`, `interrupted` or `skipped`", ""),
            ("message", "why the load ended as it did, when not plainly succeeded", ""),
            ("started_at", "when the load started (UTC)", "timestamp"),
            ("finished_at", "when the load ended (UTC); null while running", "timestamp"),
            ("timings", "seconds per stage, as JSON", "JSON"),
        ),
    ),
    Described(
        "meta.load_tables",
        "one row per load and raw table: what arrived and what became of it",
        ("load_id", "table_name"),
        (
            _LOAD,
            ("table_name", "raw table, e.g. `raw.equity_bars`", ""),
            ("rows_in", "rows fetched for the table", "count"),
            ("rows_loaded", "rows that passed the gate", "count"),
            ("rows_inserted", "rows new to the table", "count"),
            ("rows_changed", "rows that replaced a stored row with different values", "count"),
            ("rows_quarantined", "rows set aside by the gate", "count"),
        ),
    ),
    Described(
        "meta.publishes",
        "one row per published snapshot (before this one: a snapshot does not list itself)",
        ("load_id",),
        (
            _LOAD,
            ("as_of_date", "the night of the snapshot", ""),
            ("path", "where the snapshot was published (`published/smallcaps.duckdb` under the data home of that day)", ""),
            ("bytes", "size of the file", "bytes"),
            ("published_at", "when it was published (UTC)", "timestamp"),
        ),
    ),
    Described(
        "dq.results",
        "one row per load, table and expectation: every outcome, pass or fail",
        ("load_id", "table_name", "expectation"),
        (
            _LOAD,
            ("table_name", "the checked table, raw or mart", ""),
            ("expectation", "the suite's name for the check, e.g. `high_ge_low`", ""),
            ("severity", "`error` (blocks or quarantines) or `warning`", ""),
            ("success", "the check passed", ""),
            ("element_count", "rows checked", "count"),
            ("unexpected_count", "rows that failed the check", "count"),
            ("details", "result summary and example values, as JSON", "JSON"),
            ("checked_at", "when the check ran (UTC)", "timestamp"),
        ),
    ),
)


def described(name: str) -> Described:
    """The reader's description of any published table: a dataset or a meta table."""
    for m in PUBLISHED_META:
        if m.name == name:
            return m
    d = get(name)
    return Described(d.name, d.grain, d.key, tuple((c.name, c.meaning, c.unit) for c in d.columns))


def registry() -> tuple[Dataset, ...]:
    return DATASETS


def get(name: str, datasets: Iterable[Dataset] = DATASETS) -> Dataset:
    for d in datasets:
        if d.name == name:
            return d
    raise KeyError(f"no dataset {name!r} in the registry; known: {', '.join(d.name for d in DATASETS)}")


def order(datasets: Iterable[Dataset] = DATASETS) -> list[Dataset]:
    """Datasets in dependency order (inputs first); ties keep declaration order."""
    datasets = list(datasets)
    by_name = {d.name: d for d in datasets}
    graph = TopologicalSorter({d.name: [i for i in d.inputs if i in by_name] for d in datasets})
    graph.prepare()
    out: list[Dataset] = []
    position = {d.name: i for i, d in enumerate(datasets)}
    while graph.is_active():
        ready = sorted(graph.get_ready(), key=position.__getitem__)
        for name in ready:
            out.append(by_name[name])
            graph.done(name)
    return out


def downstream(names: Iterable[str], datasets: Iterable[Dataset] = DATASETS) -> set[str]:
    """Every dataset that reads, directly or not, one of `names`."""
    datasets = list(datasets)
    reached = set(names)
    changed = True
    while changed:
        changed = False
        for d in datasets:
            if d.name not in reached and reached.intersection(d.inputs):
                reached.add(d.name)
                changed = True
    return reached - set(names)


if __name__ == "__main__":  # pragma: no cover
    for d in order():
        print(f"{d.name:32} {d.grain}")
