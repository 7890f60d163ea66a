"""Order-independent sums: the same rows in any order give the same bits."""

from __future__ import annotations

import numpy as np
import polars as pl

from transforms.agg import stable_mean, stable_sum


def _by_group(df: pl.DataFrame, expr: pl.Expr) -> pl.Series:
    return df.lazy().group_by("g").agg(expr.alias("v")).sort("g").collect()["v"]


def test_sum_and_mean_do_not_depend_on_row_order():
    rng = np.random.default_rng(7)
    n = 200_000
    df = pl.DataFrame({"g": rng.integers(0, 300, n), "x": rng.normal(size=n) * 1e-3 + rng.normal(size=n)})
    for expr in (stable_sum(pl.col("x")), stable_mean(pl.col("x"))):
        results = [_by_group(df.sample(fraction=1.0, shuffle=True, seed=s), expr) for s in range(4)]
        assert all(r.equals(results[0]) for r in results)
    plain = _by_group(df, pl.col("x").sum())
    assert (plain - _by_group(df, stable_sum(pl.col("x")))).abs().max() < 1e-9


def test_nulls_and_empty_groups_behave_like_sum_and_mean():
    df = pl.DataFrame({"g": [1, 1, 2, 3], "x": [1.5, None, None, 2.0]}).with_columns(pl.col("x").cast(pl.Float64))
    out = df.group_by("g").agg(stable_sum(pl.col("x")).alias("s"), stable_mean(pl.col("x")).alias("m")).sort("g")
    assert out["s"].to_list() == [1.5, 0.0, 2.0]
    assert out["m"].to_list() == [1.5, None, 2.0]
