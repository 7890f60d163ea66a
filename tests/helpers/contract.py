"""The warehouse contract as tests read it: a derived table's columns and polars types, in order,
from the registry of datasets (ground/registry.py), the one place they are declared."""

from __future__ import annotations

import polars as pl

from ground.registry import get


def sql_columns(table: str) -> dict[str, pl.DataType]:
    return get(table).schema
