"""derive.filter_scope and derive.in_scope_sql keep exactly the rows a scope names (filter_scope in
their order), whatever mix of keyed, unkeyed, single-day and range rows the scope holds (checked
against a row-by-row reading)."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from hypothesis import given, settings, strategies as st

import duckdb

from pipeline import derive
from pipeline.derive import filter_scope, in_scope_sql, scope_frame
from warehouse.load import read
from tests.helpers.matrix import examples

DAY0 = date(2024, 1, 1)
UNIVERSES = ("russell2000", "sp600", "other")


def _inside(row: dict, scope: list[dict]) -> bool:
    for s in scope:
        if s["universe"] is not None and s["universe"] != row["universe"]:
            continue
        if s["from_date"] <= row["session_date"] <= s["to_date"]:
            return True
    return False


scope_rows = st.lists(
    st.tuples(st.sampled_from((None, *UNIVERSES)), st.integers(0, 30), st.integers(0, 5), st.booleans()),
    min_size=1,
    max_size=12,
)
frame_rows = st.lists(st.tuples(st.sampled_from(UNIVERSES), st.integers(0, 35)), max_size=60)


@settings(max_examples=examples(150), deadline=None)
@given(frame_rows, scope_rows)
def test_filter_scope_keeps_the_rows_a_row_by_row_reading_keeps(rows, scope_spec):
    frame = pl.DataFrame(
        {
            "universe": [u for u, _ in rows],
            "session_date": [DAY0 + timedelta(days=d) for _, d in rows],
            # A wide payload column: it must come through untouched and in the frame's order.
            "text": [f"row {i} " + "x" * 50 for i in range(len(rows))],
        },
        schema={"universe": pl.String, "session_date": pl.Date, "text": pl.String},
    )
    scope_list = [
        {
            "universe": u,
            "from_date": DAY0 + timedelta(days=first),
            "to_date": DAY0 + timedelta(days=first if single else first + length),
        }
        for u, first, length, single in scope_spec
    ]
    scope = scope_frame(
        pl.DataFrame(scope_list, schema={"universe": pl.String, "from_date": pl.Date, "to_date": pl.Date}), ("universe",)
    )

    got = filter_scope(frame, scope, "session_date")

    expected = frame.filter(pl.Series([_inside(r, scope_list) for r in frame.iter_rows(named=True)], dtype=pl.Boolean))
    assert got.columns == frame.columns
    assert got.to_dicts() == expected.to_dicts()


def test_filter_scope_of_an_unkeyed_range_and_single_days():
    """The shape of a night's headlines scope: one range plus single nights, no key columns."""
    days = [DAY0 + timedelta(days=i) for i in range(10)]
    frame = pl.DataFrame({"as_of_date": days, "fact": [f"fact {i}" for i in range(10)]})
    scope = scope_frame(
        pl.DataFrame({"from_date": [days[7], days[1], days[4]], "to_date": [days[9], days[1], days[4]]})
    )
    got = filter_scope(frame, scope, "as_of_date")
    assert got.get_column("fact").to_list() == ["fact 1", "fact 4", "fact 7", "fact 8", "fact 9"]


# Days far enough apart that one scope holds rows starting within derive.FAR_REACH_DAYS of its last
# date and rows starting long before (read apart, the far ones with their keys as literals); one
# key holds a quote.
far_scope_rows = st.lists(
    st.tuples(st.sampled_from((None, "russell2000", "o'brien")), st.integers(0, 30), st.integers(0, 3), st.booleans()),
    min_size=1,
    max_size=12,
)
far_frame_rows = st.lists(st.tuples(st.sampled_from(("russell2000", "o'brien", "sp600")), st.integers(0, 35)), max_size=60)
STEP_DAYS = derive.FAR_REACH_DAYS // 6


@settings(max_examples=examples(100), deadline=None)
@given(far_frame_rows, far_scope_rows)
def test_in_scope_sql_reads_the_rows_a_row_by_row_reading_keeps(rows, scope_spec):
    frame = pl.DataFrame(
        {"universe": [u for u, _ in rows], "session_date": [DAY0 + timedelta(days=STEP_DAYS * d) for _, d in rows]},
        schema={"universe": pl.String, "session_date": pl.Date},
    ).unique()
    scope_list = [
        {
            "universe": u,
            "from_date": DAY0 + timedelta(days=STEP_DAYS * first),
            "to_date": DAY0 + timedelta(days=STEP_DAYS * (first if single else first + length)),
        }
        for u, first, length, single in scope_spec
    ]
    scope = scope_frame(
        pl.DataFrame(scope_list, schema={"universe": pl.String, "from_date": pl.Date, "to_date": pl.Date}), ("universe",)
    )
    con = duckdb.connect()
    con.register("_rows", frame)

    got = read(con, f"SELECT * FROM ({in_scope_sql(con, '_rows', scope, 'r.session_date', 't')})")

    expected = frame.filter(pl.Series([_inside(r, scope_list) for r in frame.iter_rows(named=True)], dtype=pl.Boolean))
    assert got.sort(got.columns).to_dicts() == expected.sort(expected.columns).to_dicts()
