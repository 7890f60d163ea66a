"""NYSE sessions (exchange_calendars XNYS): the only calendar the project uses.

Early closes and unscheduled closures come from exchange_calendars. The calendar object is built
once per process (it costs about a second) and is read-only after that.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime, timezone
from functools import lru_cache

import pandas as pd

# The first day of Yahoo's ^GSPC history: a csv backfill of the whole published history of the
# indexes (^RUT from 1987, ^GSPC from 1927) stays on the calendar. Building it costs ~0.25 s.
CALENDAR_START = "1927-12-30"


@lru_cache(maxsize=1)
def _xnys():
    # exchange_calendars warns about pandas 3 deprecations on import and build; those are its own.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        import exchange_calendars as xcals

        end = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() + pd.Timedelta(days=400)
        return xcals.get_calendar("XNYS", start=CALENDAR_START, end=end.strftime("%Y-%m-%d"))


@lru_cache(maxsize=1)
def _session_dates() -> tuple[date, ...]:
    return tuple(ts.date() for ts in _xnys().sessions)


@lru_cache(maxsize=1)
def _early_closes() -> frozenset[date]:
    return frozenset(ts.date() for ts in _xnys().early_closes)


def sessions(start: date, end: date) -> list[date]:
    """Sessions in [start, end], oldest first."""
    import bisect

    all_ = _session_dates()
    return list(all_[bisect.bisect_left(all_, start) : bisect.bisect_right(all_, end)])


def is_session(day: date) -> bool:
    import bisect

    all_ = _session_dates()
    i = bisect.bisect_left(all_, day)
    return i < len(all_) and all_[i] == day


def is_early_close(day: date) -> bool:
    return day in _early_closes()


def session_on_or_before(day: date) -> date:
    import bisect

    all_ = _session_dates()
    i = bisect.bisect_right(all_, day)
    if i == 0:
        raise ValueError(f"no NYSE session on or before {day} (calendar starts {CALENDAR_START})")
    return all_[i - 1]


def previous_session(day: date) -> date:
    """The last session strictly before `day`."""
    import bisect

    all_ = _session_dates()
    i = bisect.bisect_left(all_, day)
    if i == 0:
        raise ValueError(f"no NYSE session before {day}")
    return all_[i - 1]


def latest_completed_session(now: datetime | None = None) -> date:
    """The newest session whose close has passed at `now` (default: the current time)."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("latest_completed_session needs an aware datetime")
    ny = pd.Timestamp(now).tz_convert("America/New_York")
    today = ny.date()
    if is_session(today):
        close = _xnys().session_close(pd.Timestamp(today))
        if pd.Timestamp(now) >= close:
            return today
    return previous_session(today)
