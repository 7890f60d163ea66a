"""What the fast loop samples and the full run covers whole: matrices of cases, property examples.

A matrix test (every expectation against its corruption, every crash point of a writer) repeats one
behaviour over many cases. `make test-fast` runs the first case of each kind, so every kind of
behaviour is checked on every change; the rest carry the `slow` mark and run in `make test` and CI.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterable

import pytest


def first_of_each_kind(params: Iterable, kind: Callable[..., Hashable]) -> list:
    """`params` (pytest.param sets) with the slow mark on every case but the first of its kind.

    `kind` is called with a case's values, as the test receives them."""
    seen: set[Hashable] = set()
    out = []
    for p in params:
        k = kind(*p.values)
        marks = list(p.marks) + ([pytest.mark.slow] if k in seen else [])
        seen.add(k)
        out.append(pytest.param(*p.values, marks=marks, id=p.id))
    return out


# `make test-fast` sets this (not a SMALLCAPS_ name: settings refuse unknown ones): property tests
# there draw a fifth of their examples (at least 10).
FAST_LOOP = os.environ.get("TEST_FAST_LOOP") == "1"


def examples(n: int) -> int:
    """A property test's hypothesis example count: `n` in the full run, a fifth in the fast loop."""
    return max(10, n // 5) if FAST_LOOP else n
