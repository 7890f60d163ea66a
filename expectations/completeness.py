"""The completeness gate: is the night's data complete enough to publish?

Expectations judge the rows that arrived; this judges the rows that did not. The night is held (loaded
into the private warehouse, not published) when fewer than `min_share` of a universe's members have a
bar for the session, or when an index the source is expected to deliver has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Sequence

import polars as pl

MAX_LISTED = 10


@dataclass(frozen=True)
class UniverseCompleteness:
    universe: str
    members: int
    with_bar: int
    missing: list[str]  # every member without a bar, sorted

    @property
    def share(self) -> float:
        return self.with_bar / self.members if self.members else 0.0


@dataclass(frozen=True)
class CompletenessResult:
    session: date
    min_share: float
    universes: list[UniverseCompleteness] = field(default_factory=list)
    missing_indexes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one message per reason to hold the night

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def held(self) -> bool:
        return not self.ok

    @property
    def message(self) -> str:
        if self.ok:
            parts = [f"{u.universe} {u.with_bar:,}/{u.members:,}" for u in self.universes]
            return f"{self.session}: complete ({', '.join(parts) or 'no universes'}; every expected index has a bar)"
        return f"{self.session}: night held, not published: " + "; ".join(self.problems)


def _listed(symbols: list[str]) -> str:
    shown = ", ".join(symbols[:MAX_LISTED])
    more = len(symbols) - MAX_LISTED
    return shown + (f" and {more:,} more" if more > 0 else "")


def completeness(
    expected_members: pl.DataFrame,
    bars: pl.DataFrame,
    session: date,
    expected_indexes: Sequence[str],
    index_bars: pl.DataFrame,
    min_share: float,
) -> CompletenessResult:
    """Check the session's bars against membership and the expected indexes.

    expected_members: (universe, symbol), the members on `session`. bars: (symbol, session_date),
    equity bars; only rows of `session` count. index_bars: (symbol, session_date). min_share: the
    share of each universe's members that must have a bar (settings.completeness_min_share).
    """
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {min_share}")
    for name, frame, cols in (
        ("expected_members", expected_members, ("universe", "symbol")),
        ("bars", bars, ("symbol", "session_date")),
        ("index_bars", index_bars, ("symbol", "session_date")),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"completeness: {name} lacks column(s) {', '.join(missing)}")

    priced = set(bars.filter(pl.col("session_date") == session).get_column("symbol").drop_nulls().to_list())
    members = expected_members.select("universe", "symbol").drop_nulls().unique()
    problems: list[str] = []
    universes: list[UniverseCompleteness] = []
    for universe in sorted(members.get_column("universe").unique().to_list()):
        symbols = sorted(members.filter(pl.col("universe") == universe).get_column("symbol").to_list())
        missing_symbols = [s for s in symbols if s not in priced]
        u = UniverseCompleteness(universe, len(symbols), len(symbols) - len(missing_symbols), missing_symbols)
        universes.append(u)
        if u.share < min_share:
            problems.append(
                f"{universe}: only {u.with_bar:,} of {u.members:,} members ({u.share:.1%}) have a bar for {session}, "
                f"below the required {min_share:.1%}; missing {len(missing_symbols):,}: {_listed(missing_symbols)}"
            )
    # No members at all (a csv load of index files only): nothing is expected, nothing is missing.

    delivered = set(index_bars.filter(pl.col("session_date") == session).get_column("symbol").drop_nulls().to_list())
    missing_indexes = [s for s in expected_indexes if s not in delivered]
    if missing_indexes:
        problems.append(
            f"{len(missing_indexes)} of {len(expected_indexes)} expected index(es) have no bar for {session}: "
            f"{_listed(missing_indexes)}"
        )
    return CompletenessResult(session, min_share, universes, missing_indexes, problems)
