"""diff_designs: readable lines naming exactly what changed."""

from designs.diff import diff_designs
from designs.forms import add_component, add_edge, apply_edit, apply_path
from designs.model import Design

BASE = {
    "name": "two",
    "workload": {"requests_per_day": 1_000_000, "peak_to_average": 2.0},
    "components": [
        {"id": "gw", "kind": "api_gateway"},
        {"id": "svc", "kind": "service", "replicas": 4, "service_time": {"dist": "exponential", "mean_ms": 20}},
    ],
    "entry": "gw",
    "flow": [{"from": "gw", "to": "svc"}],
}


def test_identical_designs_have_no_diff():
    a = Design.model_validate(BASE)
    assert diff_designs(a, Design.model_validate(BASE)) == []


def test_field_changes_are_named():
    a = Design.model_validate(BASE)
    b = apply_edit(a, "svc", "replicas", 6)
    b = apply_edit(b, "svc", "service_time", {"dist": "exponential", "mean_ms": 25})
    b = apply_path(b, "workload.requests_per_day", 2_000_000)
    lines = diff_designs(a, b)
    assert "svc.replicas: 4 → 6" in lines
    assert "svc.service_time.mean_ms: 20 → 25" in lines
    assert "workload.requests_per_day: 1e+06 → 2e+06" in lines
    assert len(lines) == 3


def test_added_components_and_edges():
    a = Design.model_validate(BASE)
    b = add_component(a, "cache", "c")
    b = add_edge(b, "svc", "c", 0.5)
    lines = diff_designs(a, b)
    assert "+ component c (cache)" in lines
    assert "+ edge svc → c (p 0.5)" in lines
    assert diff_designs(b, a) == ["- component c (cache)", "- edge svc → c"]


def test_distribution_shape_change_is_one_line():
    a = Design.model_validate(BASE)
    b = apply_edit(a, "svc", "service_time", {"dist": "fixed", "value_ms": 20})
    assert diff_designs(a, b) == ["svc.service_time: {dist: exponential, mean_ms: 20} → {dist: fixed, value_ms: 20}"]


def test_request_classes_are_matched_by_name():
    data = dict(BASE, workload={"requests_per_day": 1e6, "classes": [
        {"name": "chat", "share": 0.8, "prompt_tokens": {"dist": "fixed", "value": 500}},
        {"name": "batch", "share": 0.2},
    ]})
    a = Design.model_validate(data)
    b = apply_path(a, "workload.classes", [
        {"name": "chat", "share": 0.7, "prompt_tokens": {"dist": "fixed", "value": 800}},
        {"name": "agent", "share": 0.3},
    ])
    lines = diff_designs(a, b)
    assert "workload.classes.chat.share: 0.8 → 0.7" in lines
    assert "workload.classes.chat.prompt_tokens.value: 500 → 800" in lines
    assert "- workload.classes batch" in lines and "+ workload.classes agent" in lines
