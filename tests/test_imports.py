"""Imports run one way: ground <- mid (sources, transforms, expectations, warehouse) <- pipeline <- top.

The layer map below places every module of the project's packages. The walk reads each module with
`ast`, so it sees every import wherever it is written (inside a function, under TYPE_CHECKING, or
as `importlib.import_module("...")` with a literal name): an import kept lazy to dodge a cycle
still counts. The README's layout section explains the layers and why the ground and the report
sit where they do.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS = ("ground", "mid", "pipeline", "top")
RANK = {name: i for i, name in enumerate(LAYERS)}

# Every top-level package of the project and its layer; every module of a package lies in its layer.
PACKAGE_LAYER = {
    # The ground: what every package may import, and which imports no other package of the project
    # (settings, the NYSE calendar, crash points, the dataset registry, the frame schemas).
    "ground": "ground",
    "sources": "mid",
    "transforms": "mid",
    "expectations": "mid",
    "warehouse": "mid",
    # The pipeline: a night's steps in order (pipeline/), the flows that run them under Prefect, and
    # the report the nightly flow writes after it publishes (the CLI writes it on demand too).
    "pipeline": "pipeline",
    "flows": "pipeline",
    "report": "pipeline",
    # The top: the CLI and what only it uses (queries, status, data quality, output formats).
    "smallcaps": "top",
}

PACKAGES = tuple(PACKAGE_LAYER)
# Folders at the root holding Python that are not packages of the product.
NOT_PACKAGES = {"tests", "bench"}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    path: str = ""  # the importer's file, relative to the repository

    def where(self) -> str:
        return f"{self.path or self.importer.replace('.', '/') + '.py'} line {self.line}"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def _resolve(name: str, known: set[str]) -> str | None:
    """The project module an imported dotted name lands in (the longest known prefix), or None
    for a third-party or standard-library name."""
    if name.split(".")[0] not in PACKAGES:
        return None
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in known:
            return candidate
    return name  # a project name with no module behind it: violations() names it


def _literal_import_call(node: ast.Call) -> str | None:
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if called in ("import_module", "__import__") and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def imports_of(module: str, source: str, known: set[str], *, is_package: bool = False, path: str = "") -> list[Import]:
    """Every project import in `source`, at any depth of the module."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from ground import calendar` imports the module ground.calendar.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif isinstance(node, ast.Call):
            literal = _literal_import_call(node)
            names = [literal] if literal else []
        for name in names:
            target = _resolve(name, known)
            imp = Import(module, target, node.lineno, path) if target is not None and target != module else None
            if imp is not None and imp not in found:  # `from m import a, b` is one import of m
                found.append(imp)
    return found


def layer_of(module: str) -> str | None:
    return PACKAGE_LAYER.get(module.split(".")[0])


def part_of(module: str) -> str:
    """The unit of the cycle check: a top-level package."""
    return module.split(".")[0]


def walk(root: Path) -> list[Import]:
    modules = project_modules(root)
    known = set(modules)
    out = []
    for name, path in modules.items():
        text = path.read_text(encoding="utf-8")
        out += imports_of(name, text, known, is_package=path.name == "__init__.py", path=path.relative_to(root).as_posix())
    return out


def violations(root: Path) -> list[str]:
    """Every broken rule, each naming the module, the line and the import."""
    modules = project_modules(root)
    problems = [
        f"{folder.name}/ has no layer: place the package in PACKAGE_LAYER of tests/test_imports.py"
        for folder in sorted(root.iterdir())
        if (folder / "__init__.py").is_file() and folder.name not in PACKAGE_LAYER and folder.name not in NOT_PACKAGES
    ]
    edges: dict[str, dict[str, Import]] = {}
    for imp in walk(root):
        low, high = layer_of(imp.importer), layer_of(imp.imported)
        if low is None or high is None:
            if imp.imported not in modules:
                problems.append(f"{imp.where()}: imports {imp.imported}, which is no module of the project")
            continue
        if RANK[high] > RANK[low]:
            problems.append(
                f"{imp.where()}: upward import, {imp.importer} ({low}) imports {imp.imported} ({high}); "
                f"pass what it needs in from above, or move the shared piece down to the ground"
            )
        elif low == high == "mid" and part_of(imp.importer) != part_of(imp.imported):
            problems.append(
                f"{imp.where()}: sideways import between mid-level packages, {imp.importer} imports "
                f"{imp.imported}; what two of them share belongs in the ground"
            )
        a, b = part_of(imp.importer), part_of(imp.imported)
        if a != b:
            edges.setdefault(a, {}).setdefault(b, imp)
    problems += [f"cycle between packages {cycle}" for cycle in package_cycles(edges)]
    return problems


def package_cycles(edges: dict[str, dict[str, Import]]) -> list[str]:
    """One cycle per knot of the package graph (a strongly connected group of two or more parts),
    as `a -> b -> a` with the import behind every arrow. Listing every simple cycle instead would
    bury the first fix under dozens of lines."""
    nodes = sorted(set(edges) | {b for out in edges.values() for b in out})

    def reach(start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges.get(todo.pop(), {}):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reachable = {n: reach(n) for n in nodes}
    knots = []
    for n in nodes:
        knot = sorted(m for m in reachable[n] if n in reachable[m])
        if len(knot) > 1 and knot not in knots:
            knots.append(knot)
    cycles = []
    for knot in knots:
        # The shortest way from the knot's first part back to itself, breadth first, inside the knot.
        start = knot[0]
        came_from: dict[str, str] = {}
        frontier, last = [start], None
        while last is None:
            following = []
            for node in frontier:
                targets = edges.get(node, {})
                if start in targets:
                    last = node
                    break
                for nxt in sorted(t for t in targets if t in knot and t not in came_from):
                    came_from[nxt] = node
                    following.append(nxt)
            frontier = following
        path = [last]
        while path[-1] != start:
            path.append(came_from[path[-1]])
        path = path[::-1] + [start]
        steps = [f"{x} -> {y} ({edges[x][y].where()}: import {edges[x][y].imported})" for x, y in zip(path, path[1:])]
        cycles.append(f"{{{', '.join(knot)}}}: " + "; ".join(steps))
    return cycles


def test_imports_run_one_way():
    problems = violations(ROOT)
    assert not problems, "imports that break the layers (see the README's layout):\n" + "\n".join(problems)


def test_the_wheel_ships_exactly_the_placed_packages():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert sorted(project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]) == sorted(PACKAGE_LAYER)
    assert all((ROOT / pkg / "__init__.py").is_file() for pkg in PACKAGE_LAYER)


def test_the_walk_counts_lazy_relative_and_literal_dynamic_imports():
    known = {"ground", "ground.settings", "ground.registry", "smallcaps", "smallcaps.cli", "pipeline", "pipeline.steps", "warehouse", "warehouse.db"}
    source = (
        "import importlib\n"
        "from . import settings\n"
        "def f():\n"
        "    from smallcaps.cli import app\n"
        "    import warehouse.db as db\n"
        "    return importlib.import_module('pipeline.steps')\n"
        "def g(name):\n"
        "    return importlib.import_module(name)\n"  # not a literal: nothing to check
    )
    found = {(i.imported, i.line) for i in imports_of("ground.registry", source, known)}
    assert found == {("ground.settings", 2), ("smallcaps.cli", 4), ("warehouse.db", 5), ("pipeline.steps", 6)}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # A lazy import from the ground up to the mid layer: the old settings -> suites shape.
        (
            {"ground/settings.py": "def check():\n    from expectations.suites import names\n",
             "expectations/suites.py": "from ground.settings import Settings\n"},
            ["ground/settings.py line 2: upward import, ground.settings (ground) imports expectations.suites (mid)",
             "cycle between packages {expectations, ground}: expectations -> ground "
             "(expectations/suites.py line 1: import ground.settings); ground -> expectations "
             "(ground/settings.py line 2: import expectations.suites)"],
        ),
        (
            {"warehouse/db.py": "from sources.base import BOOKKEEPING_COLUMNS\n", "sources/base.py": ""},
            ["warehouse/db.py line 1: sideways import between mid-level packages, warehouse.db imports sources.base"],
        ),
        (
            {"pipeline/loading.py": "import flows.run\n", "flows/run.py": "from pipeline import loading\n"},
            ["cycle between packages {flows, pipeline}: flows -> pipeline (flows/run.py line 1: import pipeline.loading); "
             "pipeline -> flows (pipeline/loading.py line 1: import flows.run)"],
        ),
        ({"newthing/__init__.py": ""}, ["newthing/ has no layer"]),
    ],
    ids=["lazy-upward", "sideways", "cycle-within-a-layer", "unplaced"],
)
def test_a_broken_rule_is_named_with_its_module_and_import(tmp_path, files, expected):
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text(text)
    problems = violations(tmp_path)
    for want in expected:
        assert any(p.startswith(want) for p in problems), f"expected {want!r} among {problems}"
    assert len(problems) == len(expected), problems
