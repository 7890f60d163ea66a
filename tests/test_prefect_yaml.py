"""Every deployment in prefect.yaml points at a flow that imports, with parameters it accepts."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import yaml
from prefect import Flow

ROOT = Path(__file__).resolve().parents[1]


def load_entrypoint(entrypoint: str) -> Flow:
    file, name = entrypoint.split(":")
    spec = importlib.util.spec_from_file_location(Path(file).stem + "_entry", ROOT / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def test_deployments_match_their_flows():
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) == {"nightly", "backfill"}
    for name, d in deployments.items():
        flow = load_entrypoint(d["entrypoint"])
        assert isinstance(flow, Flow) and flow.name == name
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(d.get("parameters") or {}) <= accepted, f"{name}: unknown parameters"
        # A scheduled run passes only what the deployment sets: every other parameter needs a default.
        given = set(d.get("parameters") or {})
        required = [p.name for p in inspect.signature(flow.fn).parameters.values() if p.default is inspect.Parameter.empty]
        assert not set(required) - given, f"{name}: a scheduled run would lack {sorted(set(required) - given)}"
        assert d["work_pool"]["name"] == "smallcaps-process"
    nightly = deployments["nightly"]["schedules"]
    assert nightly == [{"cron": "30 18 * * 1-5", "timezone": "America/New_York", "active": True}]
    assert deployments["backfill"]["schedules"] == []
    assert set(inspect.signature(load_entrypoint("flows/backfill.py:backfill").fn).parameters) >= {"start", "end", "source"}
    assert set(inspect.signature(load_entrypoint("flows/nightly.py:nightly").fn).parameters) >= {"as_of", "source"}
