"""The committed benchmark tables are what their committed JSON renders to (nobody edited a figure
by hand, and the renderers still read the results they wrote)."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script, name", [("incumbents", "incumbents"), ("network_limits", "network_limits"),
                                          ("network_limits", "network_limits_800k"), ("training_scale", "training_scale"),
                                          ("online_ab", "online_ab"), ("serving", "serving"), ("serving", "serving_http")])
def test_committed_markdown_is_rendered_from_the_committed_json(script, name):
    payload = json.loads((BENCHMARKS / "results" / f"{name}.json").read_text())
    assert _module(script).markdown(payload) == (BENCHMARKS / "results" / f"{name}.md").read_text()
