"""Planning a load: which sessions (plan_nightly, plan_backfill), which symbols (equity_symbols,
fundamentals_symbols, rebase_symbols) and in which fetch chunks (bar_starts, bar_chunks, own_ranges)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Mapping, Sequence

import duckdb
import polars as pl

from ground import calendar
from ground.settings import Settings
from sources.base import ACTIONS_SCHEMA, BARS_SCHEMA, FAILURES_SCHEMA, Fetched, failures_frame
from warehouse.load import read, registered


@dataclass
class Plan:
    """What one load fetches."""

    kind: str  # nightly | backfill
    as_of: date  # the session the load brings up to date (published night)
    bars_start: date
    holdings_start: date
    index_symbols: list[str]
    universes: list[str]


def check_as_of(as_of: date, latest: date, what: str = "as-of") -> None:
    """No load is for a night after the latest completed NYSE session: nobody has its close yet, and
    a night published for it would claim figures that do not exist."""
    if as_of > latest:
        raise ValueError(
            f"{what} {as_of} is after the latest completed NYSE session ({latest}): nobody has that close yet, "
            f"so nothing was loaded; ask for {latest} or an earlier session"
        )


def plan_nightly(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date, *, first_date: date | None) -> Plan:
    """Bring the warehouse up to `as_of`, re-fetching a few stored sessions to catch revisions, but
    none before `first_date` (the source's first session, Capabilities.first_date; None: unknown)."""
    last = con.execute("SELECT max(session_date) FROM raw.index_bars").fetchone()[0]
    from_ = min(last, as_of) if last else as_of
    start = from_
    for _ in range(settings.overlap_sessions):
        start = calendar.previous_session(start)
    start = max(start, first_date) if first_date is not None else start
    # iShares dates a file by the previous session's close: one session of slack on the left.
    holdings_start = calendar.previous_session(min(from_, as_of))
    return Plan("nightly", as_of, start, holdings_start, list(settings.index_symbols), [u.name for u in settings.universes])


def plan_backfill(settings: Settings, start: date, end: date) -> Plan:
    return Plan("backfill", end, start, start, list(settings.index_symbols), [u.name for u in settings.universes])


def chunks(symbols: Sequence[str], size: int) -> list[list[str]]:
    return [list(symbols[i : i + size]) for i in range(0, len(symbols), size)]


def rebase_chunks(rebase: dict[str, tuple[date, date]], size: int) -> list[tuple[list[str], tuple[date, date]]]:
    """(chunk, (first, last session)) per fetch task of the rebased symbols: `size` symbols a chunk
    in order of their spans, each chunk asking the range that covers its symbols' spans
    (apply_rebase keeps each symbol's own). Their spans start at each symbol's first stored bar,
    nearly every one another date: a chunk per span made a 30-year night's 34 dividends 10 tasks."""
    ordered = sorted(rebase, key=lambda s: (rebase[s], s))
    out = []
    for part in chunks(ordered, size):
        out.append((part, (min(rebase[s][0] for s in part), max(rebase[s][1] for s in part))))
    return out


def equity_symbols(
    con: duckdb.DuckDBPyConnection,
    holdings: pl.DataFrame,
    retire_after: int,
    *,
    anchors: Sequence[str] | None = None,
    window: tuple[date, date] | None = None,
) -> tuple[list[str], list[str]]:
    """Constituents to price this load, and former members retired for failing.

    Current members (in this fetch's holdings or in a universe's latest stored snapshot) are always
    priced. A former member (stored before, in neither) is priced only while its price is needed:
    with `anchors` (settings.anchors) and `window` (the load's first and last session), while
    marts.cohort_performance holds it on some session of the window, or on a session after its
    last stored bar (see `last_needed_sessions`); once its last needed price is stored it is no
    longer asked for. Without them, every former member is priced while it trades (the rule
    before anchors were taken into account).

    A former member whose bars failed on `retire_after` loads in a row has stopped trading: it is
    retired (returned second, logged, kept in meta.fetch_state and meta.symbols) even if needed;
    its last return then holds, as cohort_performance defines. Symbols that failed last time come
    first, so they are fetched first.
    """
    # meta.symbols holds every ticker ever held (its status `active` while in a universe's newest
    # snapshot): no scan of the stored snapshots.
    stored = {r[0] for r in con.execute("SELECT DISTINCT symbol FROM meta.symbols").fetchall()}
    current = set(holdings.get_column("symbol").to_list()) | {
        r[0] for r in con.execute("SELECT DISTINCT symbol FROM meta.symbols WHERE status = 'active'").fetchall()
    }
    failing = dict(
        con.execute(
            "SELECT symbol, consecutive_failures FROM meta.fetch_state WHERE dataset = 'bars' AND consecutive_failures > 0"
        ).fetchall()
    )
    former = stored - current
    retired = sorted(s for s in former if failing.get(s, 0) >= retire_after)
    if anchors is not None and window is not None and former:
        first, as_of = window
        membership = read(con, "SELECT universe, symbol, valid_from_date, valid_to_date FROM core.membership").filter(
            pl.col("symbol").is_in(sorted(former))
        )
        last_bar = dict(con.execute("SELECT symbol, last_bar_date FROM meta.series").fetchall())
        needed = dict(last_needed_sessions(membership, anchors, as_of).iter_rows())
        former = {
            s for s in former
            if s in needed and (needed[s] >= first or last_bar.get(s) is None or last_bar[s] < needed[s])
        }
    wanted = (current | former) - set(retired)
    return sorted(wanted, key=lambda s: (s not in failing, s)), retired


def last_needed_sessions(membership: pl.DataFrame, anchors: Sequence[str], as_of: date) -> pl.DataFrame:
    """symbol, last_needed_date: the last session up to `as_of` on which marts.cohort_performance
    needs the symbol's price, for symbols it needs on any.

    cohort_performance holds a member bought at an anchor session: on session t, with anchor a,
    every symbol that was a member of some universe on a's anchor session for t (resolved exactly
    as the mart resolves it, `resolve_anchors`, on the NYSE calendar). So a symbol's price is
    needed on t when one of its membership intervals (core.membership rows, any universe) contains
    that anchor session. An anchor session never moves back as t advances (a fixed date stays,
    `ytd` and `1y` move forward), so once a former member's last needed session has passed it is
    never needed again: with a fixed anchor such as 2025-04-08, a member of that day is needed on
    every later session (it is held for good); with `1y`, until a year after it left; with `ytd`,
    until the end of the year after the one it left in. Pure: no I/O.
    """
    result_schema = {"symbol": pl.String, "last_needed_date": pl.Date}
    if membership.is_empty() or not anchors:
        return pl.DataFrame(schema=result_schema)
    intervals = membership.select(
        pl.col("symbol").cast(pl.String),
        pl.col("valid_from_date").cast(pl.Date),
        pl.col("valid_to_date").cast(pl.Date).fill_null(as_of),
    ).filter(pl.col("valid_from_date") <= as_of)
    if intervals.is_empty():
        return pl.DataFrame(schema=result_schema)
    from transforms.cohort_performance import resolve_anchors

    first = intervals.get_column("valid_from_date").min()
    fixed = [date.fromisoformat(a) for a in anchors if a not in ("ytd", "1y")]
    # Sessions from a year (and a few days) before the first interval, so a `1y` or `ytd` anchor of
    # its first sessions resolves, and back to any fixed anchor.
    start = min([first - timedelta(days=380), *[d - timedelta(days=10) for d in fixed]])
    sessions = pl.LazyFrame({"session_date": calendar.sessions(start, as_of)}, schema={"session_date": pl.Date})
    # Per anchor and anchor session: the last session that uses it. Anchor sessions only move
    # forward, so the last use grows with the anchor session, and the latest anchor session inside
    # a membership interval gives that interval's last needed session.
    uses = (
        resolve_anchors(sessions, anchors, as_of=as_of)
        .filter(pl.col("session_date") >= first)
        .group_by("anchor", "anchor_date")
        .agg(pl.col("session_date").max().alias("last_needed_date"))
        .sort("anchor_date")
        .collect()
    )
    per_anchor = [
        intervals.sort("valid_to_date")
        .join_asof(
            uses.filter(pl.col("anchor") == anchor).drop("anchor"),
            left_on="valid_to_date",
            right_on="anchor_date",
            strategy="backward",
        )
        .filter(pl.col("anchor_date") >= pl.col("valid_from_date"))
        .select("symbol", "last_needed_date")
        for anchor in dict.fromkeys(anchors)
    ]
    return (
        pl.concat(per_anchor, how="vertical")
        .group_by("symbol")
        .agg(pl.col("last_needed_date").max())
        .sort("symbol")
        .select(list(result_schema))
    )


def bar_chunks(starts: dict[date, list[str]], size: int) -> list[tuple[list[str], date]]:
    """(chunk, first session) per bar fetch task. The symbols of the latest first session (the
    night's window) are cut into chunks of `size`; the symbols behind it (each catching up from its
    own last bar, so nearly every one with another date) share chunks too, in date order, each chunk
    fetched from its earliest member's date: a symbol asked a few sessions more than it needs gets
    rows that merge as unchanged, where one task per date made a night of ~100 one-symbol tasks."""
    if not starts:
        return []
    latest = max(starts)
    behind = [(s, first) for first in sorted(starts) if first != latest for s in starts[first]]
    out = [(chunk, latest) for chunk in chunks(starts[latest], size)]
    for i in range(0, len(behind), size):
        part = behind[i : i + size]
        out.insert(i // size, ([s for s, _ in part], min(first for _, first in part)))
    return out


def bar_starts(con: duckdb.DuckDBPyConnection, symbols: Sequence[str], start: date, overlap: int) -> dict[date, list[str]]:
    """First session to fetch per symbol, grouped: `start` for most; a symbol whose last stored bar
    is older (it failed on earlier nights) is fetched from there, overlap included, so a gap closes."""
    last = dict(con.execute("SELECT symbol, last_bar_date FROM meta.series WHERE last_bar_date < ?", [start]).fetchall())
    groups: dict[date, list[str]] = {}
    for s in symbols:
        first = start
        if s in last:
            first = last[s]
            for _ in range(overlap):
                first = calendar.previous_session(first)
        groups.setdefault(first, []).append(s)
    return dict(sorted(groups.items()))


def own_ranges(con: duckdb.DuckDBPyConnection, fetched: Fetched, firsts: Mapping[str, date], night_first: date) -> Fetched:
    """`fetched` with each symbol's bars cut back to its own first session (`firsts`, as bar_starts
    gave them), and a failure for each symbol behind that brought no bar after its last stored one.

    bar_chunks fetches the symbols behind in shared chunks from the chunk's earliest date, so a
    symbol gets rows from before its own first session: rows already stored, which merge as
    unchanged but cost the gate and the merge. And a symbol behind (its last stored bar before
    `night_first`) that brings nothing newer than that bar has not traded since: the overlap rows it
    did get counted as a success, so its failure count started again every night and a former member
    that had stopped trading was never retired, asked for every night from its last bar. Those
    accumulate with the history, and the oldest of them set its chunk's start: on a 10-year sample
    home, two chunks of 296 such symbols brought 182K of a night's 223K bar rows.
    """
    bars = fetched.bars
    if not firsts or min(firsts.values()) >= night_first or dict(bars.schema) != BARS_SCHEMA:
        return fetched  # nobody behind (a backfill); mis-shaped frames are the gate's to name and block
    own = pl.DataFrame(list(firsts.items()), schema={"symbol": pl.String, "_own_first": pl.Date}, orient="row")
    kept = (
        bars.join(own, on="symbol", how="left")
        .filter(pl.col("_own_first").is_null() | (pl.col("session_date") >= pl.col("_own_first")))
        .drop("_own_first")
    )
    behind = sorted(s for s, first in firsts.items() if first < night_first)  # not empty, see above
    with registered(con, _behind=pl.DataFrame({"symbol": behind}, schema={"symbol": pl.String})):
        last = dict(con.execute("SELECT symbol, last_bar_date FROM meta.series SEMI JOIN _behind USING (symbol)").fetchall())
    newest = dict(kept.filter(pl.col("symbol").is_in(behind)).group_by("symbol").agg(pl.col("session_date").max()).iter_rows())
    already = set(fetched.failures.filter(pl.col("dataset") == "bars").get_column("symbol").to_list())
    failed = [
        (s, "bars", f"no bar after its last stored one, {last[s]}: not traded since")
        for s in behind
        if s in last and s not in already and (s not in newest or newest[s] <= last[s])
    ]
    if not failed and kept.height == bars.height:
        return fetched
    return replace(
        fetched, bars=kept, failures=pl.concat([fetched.failures, failures_frame(failed)], how="vertical") if failed else fetched.failures
    )


def rebase_symbols(
    con: duckdb.DuckDBPyConnection, fetched: Fetched, as_of: date, *, basis_since: datetime | None = None
) -> dict[str, tuple[date, date]]:
    """Symbols whose stored bars are on an old price basis, each with the sessions to fetch again.

    Yahoo's Close is split-adjusted and its Adj Close split- and dividend-adjusted, back to the first
    bar: a new split or dividend changes every earlier row, not only the re-fetched overlap, and the
    rows left from earlier nights would make a false jump where they meet the new ones (-75% on a
    4:1 split). A symbol is rebased when the fetch brought an action that is not stored yet, or
    stored with another value, and the warehouse holds bars of it from before the fetched ones; or
    when an earlier rebase of it failed (meta.fetch_state, dataset 'rebase'), so a failure is
    retried until it succeeds. The range is (first stored session, the session before tonight's
    first bar of it, or `as_of` when tonight brought none): tonight's rows are already current.

    `basis_since`: bars stored at or after it were fetched on the basis the source has now (the
    earlier windows of the same backfill), so a new action does not make them stale; only bars
    fetched before it count as stored for the rule above. Without it, a backfill in windows re-fetched
    the whole stored history of every symbol with a dividend in each new window (~850 symbols a
    window on the sample), unchanged rows whose fetch, gate and merge grew with the history.
    """
    actions, bars = fetched.actions, fetched.bars
    if dict(actions.schema) != ACTIONS_SCHEMA or dict(bars.schema) != BARS_SCHEMA:
        return {}  # mis-shaped frames are the gate's to name and block, not ours to mend
    firsts = bars.filter(pl.col("symbol").is_not_null()).group_by("symbol").agg(pl.col("session_date").min().alias("first_fetched"))
    if basis_since is None:
        stored, params = "SELECT symbol, first_bar_date AS first_stored FROM meta.series WHERE symbol IN (SELECT symbol FROM new)", []
    else:
        stored = (
            "SELECT symbol, min(session_date) AS first_stored FROM raw.equity_bars "
            "WHERE symbol IN (SELECT symbol FROM new) AND fetched_at < ? GROUP BY symbol"
        )
        params = [basis_since]
    with registered(con, _new_actions=actions, _first_fetched=firsts):
        rows = con.execute(
            f"""WITH new AS (
                   SELECT a.symbol FROM _new_actions a
                   WHERE a.symbol IS NOT NULL AND NOT EXISTS (
                       SELECT 1 FROM raw.corporate_actions c
                       WHERE c.symbol = a.symbol AND c.ex_date = a.ex_date AND c.action = a.action AND c.value = a.value)
                   UNION SELECT symbol FROM meta.fetch_state WHERE dataset = 'rebase' AND consecutive_failures > 0),
               stored AS ({stored})
               SELECT s.symbol, s.first_stored, f.first_fetched FROM stored s LEFT JOIN _first_fetched f ON f.symbol = s.symbol
               WHERE f.first_fetched IS NULL OR s.first_stored < f.first_fetched
               ORDER BY s.symbol""",
            params,
        ).fetchall()
    spans = {s: (first, as_of if tonight is None else calendar.previous_session(tonight)) for s, first, tonight in rows}
    return {s: (lo, hi) for s, (lo, hi) in spans.items() if lo <= hi}


def apply_rebase(fetched: Fetched, refetched: Fetched, rebase: dict[str, tuple[date, date]]) -> Fetched:
    """`fetched` plus the re-fetched earlier bars and actions of the rebased symbols (other sessions
    than tonight's, so nothing is replaced or dropped). A symbol whose re-fetch gave no bars gets a
    failures row of dataset 'rebase' instead, and is tried again next night."""
    spans = pl.DataFrame(
        [(s, lo, hi) for s, (lo, hi) in rebase.items()], schema={"symbol": pl.String, "_lo": pl.Date, "_hi": pl.Date}, orient="row"
    )

    def own_span(frame: pl.DataFrame, day: str) -> pl.DataFrame:
        """The rows of each rebased symbol within its own span (a chunk asks the range of all its
        symbols: rows before a symbol's first stored bar are not history it had, and tonight's
        are fetched already)."""
        return (
            frame.join(spans, on="symbol", how="inner", maintain_order="left")
            .filter(pl.col(day).is_between(pl.col("_lo"), pl.col("_hi")))
            .drop("_lo", "_hi")
        )

    bars, actions = own_span(refetched.bars, "session_date"), own_span(refetched.actions, "ex_date")
    done = set(bars.get_column("symbol").unique().to_list())
    errors = dict(refetched.failures.select("symbol", "error").unique(subset="symbol", keep="first").iter_rows())
    failed = [
        (s, "rebase", f"whole-history re-fetch after a new split or dividend failed: {errors.get(s, 'no bars came back')}")
        for s in rebase if s not in done
    ]
    return replace(
        fetched,
        bars=pl.concat([fetched.bars, bars], how="vertical"),
        # Actions only of the symbols whose bars came back: the others are rebased again next night.
        actions=pl.concat([fetched.actions, actions.filter(pl.col("symbol").is_in(list(done)))], how="vertical"),
        failures=pl.concat([fetched.failures, pl.DataFrame(failed, schema=FAILURES_SCHEMA, orient="row")], how="vertical"),
        requests=fetched.requests + refetched.requests,
    )


# How far before a load's first session fundamentals are asked for, where a source can narrow them
# (Capabilities.takes_since). A member's cohort on session D uses its 4 latest quarters counted by
# D; the next quarter is not reported yet, so it ended less than a reporting lag (the sample's
# longest is 60 days) before D, and the 4th latest was reported at least 25 days after it ended,
# 4 quarters before that: after D - 401 days. 500 days holds them with a quarter to spare.
FUNDAMENTALS_LOOKBACK_DAYS = 500


def fundamentals_since(plan: Plan) -> date:
    """The first report date a load needs: quarters reported before it are stored already (each
    earlier load asked for those reported up to its night, and this plan's first session is at most
    the last stored one) or too old for any cohort from the plan's first session on."""
    return plan.holdings_start - timedelta(days=FUNDAMENTALS_LOOKBACK_DAYS)


def fundamentals_symbols(
    con: duckdb.DuckDBPyConnection, settings: Settings, symbols: Sequence[str], as_of: date, *, is_metered: bool
) -> list[str]:
    """Symbols whose fundamentals are due. A source whose requests cost nothing is asked for every
    symbol. A metered one (Capabilities.is_metered: yahoo) is asked only when a symbol's next
    quarter can be out (see sources.yahoo.fundamentals_due):
    shortly after the date its report is expected, from the symbol's own report lag (the same
    fiscal quarter a year before, else its newest quarter; known where a report date is stored).

    "Yahoo has no income statement for it" is an answer, not a failure to retry nightly: such a
    symbol (no stored quarter) counts as answered at that attempt and is looked at again weekly.

    A former member (in stored holdings, in no universe's latest snapshot) is priced while an
    anchor holds it (equity_symbols), but its fundamentals are not asked for: core.cohorts uses a
    quarter only on the member's own sessions, and a quarter reported after it left cannot count
    on any of them. If it joins again, it is a member again (and due: its last fetch is old)."""
    if not is_metered:
        return list(symbols)
    from sources.yahoo import NO_DATA, fundamentals_due

    former = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT symbol FROM raw.holdings EXCEPT SELECT DISTINCT symbol FROM raw.holdings h WHERE as_of_date = "
            "(SELECT max(as_of_date) FROM raw.holdings l WHERE l.universe = h.universe)"
        ).fetchall()
    }
    symbols = [s for s in symbols if s not in former]

    stored = read(
        con,
        """WITH ranked AS (
               SELECT symbol, period_end_date,
                      CASE WHEN report_date > period_end_date THEN datediff('day', period_end_date, report_date) END AS lag_days,
                      row_number() OVER (PARTITION BY symbol ORDER BY period_end_date DESC) AS k
               FROM raw.fundamentals),
                q AS (SELECT symbol, max(period_end_date) FILTER (WHERE k = 1) AS period_end_date,
                             -- the quarter a year before the next one is the 4th newest
                             coalesce(max(lag_days) FILTER (WHERE k = 4), max(lag_days) FILTER (WHERE k = 1)) AS report_lag_days
                      FROM ranked GROUP BY symbol),
                s AS (SELECT symbol,
                             CASE WHEN starts_with(last_error, ?) THEN last_attempt_at ELSE last_success_at END AS answered_at
                      FROM meta.fetch_state WHERE dataset = 'fundamentals')
           SELECT coalesce(q.symbol, s.symbol) AS symbol, q.period_end_date, s.answered_at AS last_success_at, q.report_lag_days
           FROM q FULL OUTER JOIN s ON q.symbol = s.symbol""",
        [NO_DATA],
    )
    return fundamentals_due(stored, symbols, as_of, settings.fundamentals_max_age_days)
