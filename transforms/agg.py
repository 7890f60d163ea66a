"""Aggregations whose bits do not depend on row order.

Joins leave rows in an order that can change from run to run, and a float sum depends on the
order of its terms in the last bits. Summing the sorted values makes a rebuild bit-for-bit
repeatable, so two loads of the same data leave identical tables (and identical checksums).
"""

from __future__ import annotations

import polars as pl


def stable_sum(expr: pl.Expr) -> pl.Expr:
    """Like `expr.sum()` (nulls ignored, 0 for no values), independent of row order."""
    # cum_sum().last() keeps the sort; a plain sort().sum() may be reordered by the lazy engine.
    return expr.drop_nulls().sort().cum_sum().last().fill_null(0.0)


def stable_mean(expr: pl.Expr) -> pl.Expr:
    """Like `expr.mean()` (nulls ignored, null for no values), independent of row order."""
    n = expr.count()
    return pl.when(n > 0).then(stable_sum(expr) / n)
