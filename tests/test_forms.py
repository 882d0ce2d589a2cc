"""Generated forms: fields described from the pydantic models; edits validated or refused."""

import pytest

from components.catalogue import KINDS
from designs.forms import add_component, add_edge, apply_edit, apply_path, describe_component, describe_model, remove_component, remove_edge, unit_of
from designs.io import DesignFileError
from designs.model import SLO, Design, Workload

BASE = {
    "name": "two",
    "workload": {"requests_per_day": 1_000_000},
    "components": [
        {"id": "gw", "kind": "api_gateway"},
        {"id": "llm", "kind": "llm_server", "model": "llama-3.1-8b", "replicas": 4},
    ],
    "entry": "gw",
    "flow": [{"from": "gw", "to": "llm"}],
}


@pytest.fixture
def design():
    return Design.model_validate(BASE)


def test_describe_llm_server(design):
    spec = {f.name: f for f in describe_component(design.component("llm"))}
    assert "id" not in spec and "kind" not in spec
    r = spec["replicas"]
    assert (r.type, r.value, r.min, r.max) == ("int", 4, 1, 10_000)
    assert r.help.startswith("Number of model replicas")
    assert spec["precision"].type == "choice" and "fp8" in spec["precision"].choices
    assert spec["gpu_hourly_usd"].unit == "USD/h" and spec["gpu_hourly_usd"].optional
    assert spec["gpu_hourly_usd"].label == "gpu hourly (USD/h)"
    # a closed lower bound (ge=0.01, the floor that keeps derived KV memory finite) is the widget's minimum
    g = spec["gpu_memory_utilization"]
    assert g.min == 0.01 and not g.min_exclusive and g.widget_min == 0.01 and g.max == 1
    assert "llama-3.1-8b" in spec["model"].choices


def test_distribution_fields():
    specs = {f.name: f for f in describe_model(KINDS["service"], KINDS["service"](id="s"))}
    st = specs["service_time"]
    assert st.type == "distribution" and st.family == "ms" and st.unit == "ms"
    assert set(st.variants) == {"fixed", "exponential", "uniform", "lognormal", "empirical"}
    ln = {f.name: f for f in st.variants["lognormal"]}
    assert ln["mean_ms"].min == 1e-06 and not ln["mean_ms"].min_exclusive and ln["p95_ms"].unit == "ms"
    counts = {f.name: f for f in describe_model(KINDS["reranker"], KINDS["reranker"](id="r"))}
    assert counts["pairs_per_request"].family == "count"


def test_workload_and_slo_specs(design):
    w = {f.name: f for f in describe_model(Workload, design.workload)}
    assert w["requests_per_day"].unit == "requests/day" and w["requests_per_day"].max == 1e10
    assert w["classes"].type == "other"  # lists are edited as YAML
    s = {f.name: f for f in describe_model(SLO, design.slo)}
    assert s["latency_p95_ms"].optional and s["latency_p95_ms"].unit == "ms"


@pytest.mark.parametrize("name,unit", [("latency_p95_ms", "ms"), ("startup_s", "s"), ("storage_gb", "GB"), ("hit_ratio", "fraction 0–1"), ("max_batch", "")])
def test_unit_of(name, unit):
    assert unit_of(name) == unit


def test_apply_edit_returns_validated_copy(design):
    d2 = apply_edit(design, "llm", "replicas", 6)
    assert d2.component("llm").replicas == 6 and design.component("llm").replicas == 4
    d3 = apply_edit(d2, "llm", "gpu_hourly_usd", 2.5)
    assert apply_edit(d3, "llm", "gpu_hourly_usd", None).component("llm").gpu_hourly_usd is None


def test_apply_edit_refuses_out_of_bounds(design):
    with pytest.raises(DesignFileError) as err:
        apply_edit(design, "llm", "replicas", 0)
    p = err.value.problems[0]
    assert p.path == "components[1].replicas" and "greater than or equal to 1" in p.message
    with pytest.raises(DesignFileError):
        apply_edit(design, "nope", "replicas", 2)
    with pytest.raises(DesignFileError):
        apply_edit(design, "llm", "id", "x")


def test_apply_path_workload(design):
    assert apply_path(design, "workload.peak_to_average", 5).workload.peak_to_average == 5
    with pytest.raises(DesignFileError):
        apply_path(design, "workload.peak_to_average", 0.5)


def test_structure_edits(design):
    d = add_component(design, "cache")
    assert d.component("cache").kind == "cache"
    d = add_component(d, "cache")
    assert d.component("cache_2").kind == "cache"
    d = add_edge(d, "llm", "cache", 0.4)
    assert d.flow[-1].p == 0.4
    with pytest.raises(DesignFileError) as err:
        add_edge(d, "llm", "cache_2", 0.8)  # 0.4 + 0.8 > 1
    assert "sum to 1.2" in str(err.value)
    with pytest.raises(DesignFileError):
        add_edge(d, "cache", "gw")  # a cycle without max_repeats
    assert len(remove_edge(d, len(d.flow) - 1).flow) == len(d.flow) - 1
    d2 = remove_component(d, "cache")
    assert "cache" not in d2.by_id() and all("cache" not in (e.from_, e.to) for e in d2.flow)
    with pytest.raises(DesignFileError):
        remove_component(d, "gw")  # the entry
    assert add_component(design, "training_job").component("training_job").tokens > 0


def test_open_lower_bound_moves_the_widget_minimum_inside():
    """A gt=0 bound: the widget's minimum moves inside the open interval."""
    from components.catalogue import LLMApi
    from designs.forms import describe_component

    api = LLMApi(id="api", kind="llm_api", provider_model="gpt-4o-mini")
    t = {f.name: f for f in describe_component(api)}["prompt_cache_ttl_s"]
    assert t.min == 0 and t.min_exclusive and 0 < t.widget_min < 0.01 and t.max == 86_400
