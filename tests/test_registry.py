"""The registry of datasets is the one source of the derived tables, their docs and their exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from expectations.suites import SUITES
from smallcaps.docs_marts import render
from ground.registry import DATASETS, order
from pipeline.steps import STEPS

ROOT = Path(__file__).resolve().parents[1]


def test_docs_marts_is_generated_from_the_registry():
    assert (ROOT / "docs" / "marts.md").read_text() == render(), (
        "docs/marts.md differs from the registry: run `.venv/bin/python -m smallcaps.docs_marts > docs/marts.md`"
    )


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda d: d.name)
def test_every_dataset_is_complete(dataset):
    assert dataset.grain.startswith("one row per"), dataset.grain
    assert set(dataset.key) <= set(dataset.column_names)
    for c in dataset.columns:
        assert c.meaning.strip(), f"{dataset.name}.{c.name} has no description"
        if c.name in dataset.key:
            assert not c.nullable, f"{dataset.name}.{c.name} is a key column: never null"
    assert dataset.name in STEPS, f"{dataset.name} has no step in pipeline/steps.py"
    if dataset.suite:
        assert dataset.name in SUITES, f"{dataset.name} is gated but expectations/suites.py has no suite for it"
        assert dict(SUITES[dataset.name].schema) == dataset.schema, "the suite checks another schema than the table has"
    if dataset.date_column:
        assert dataset.date_column in dataset.column_names


def test_steps_and_registry_name_the_same_datasets():
    assert set(STEPS) == {d.name for d in DATASETS}


def test_inputs_are_raw_tables_or_earlier_datasets():
    names = [d.name for d in order()]
    for d in order():
        for i in d.inputs:
            assert i.startswith("raw.") or names.index(i) < names.index(d.name), f"{d.name} reads {i} before it is made"
