"""Design model: every validation rule fails with its own message; the minimal M/M/10 file means what it says."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from designs.io import DesignFileError, parse_design
from designs.model import Design


def base() -> dict:
    """Three services in a chain plus monitoring: valid, no warnings."""
    return {
        "name": "t",
        "workload": {"requests_per_day": 864_000, "peak_to_average": 1.0},
        "components": [
            {"id": "a", "kind": "service"},
            {"id": "b", "kind": "service"},
            {"id": "c", "kind": "service"},
            {"id": "mon", "kind": "monitoring"},
        ],
        "entry": "a",
        "flow": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}],
    }


def problems(data: dict):
    """Every problem `parse_design` reports for this data (empty when it is valid)."""
    try:
        parse_design(yaml.safe_dump(data, sort_keys=False), "t.yaml")
    except DesignFileError as e:
        return e.problems
    return []


def only(data: dict):
    ps = problems(data)
    assert len(ps) == 1, [p.format() for p in ps]
    return ps[0]


def with_flow(*edges: dict) -> dict:
    d = base()
    d["flow"] = list(edges)
    return d


def test_base_is_valid_without_warnings():
    d = Design.model_validate(base())
    assert d.warnings() == []
    assert problems(base()) == []


def test_unknown_id_in_edge_suggests_the_close_one():
    p = only(with_flow({"from": "a", "to": "bb"}))
    assert p.path == "flow[0].to"
    assert "'bb' is not a component id" in p.message
    assert p.suggestion == "b"
    assert "did you mean 'b'?" in p.format()


def test_entry_must_be_a_component_id():
    d = base()
    d["entry"] = "x"
    p = only(d)
    assert p.path == "entry"
    assert "'x' is not a component id" in p.message


def test_duplicate_ids():
    d = base()
    d["components"][2]["id"] = "b"
    d["flow"] = [{"from": "a", "to": "b"}]
    p = only(d)
    assert p.path == "components[2].id"
    assert "duplicate id 'b'" in p.message


def test_branch_probabilities_must_not_exceed_one():
    p = only(with_flow({"from": "a", "to": "b", "p": 0.7}, {"from": "a", "to": "c", "p": 0.5}))
    assert "branch probabilities from 'a' sum to 1.2" in p.message
    assert "at most 1" in p.message


def test_branch_probabilities_below_one_are_fine():
    assert problems(with_flow({"from": "a", "to": "b", "p": 0.7}, {"from": "a", "to": "c", "p": 0.3})) == []


def test_mixed_parallel_and_branch_edges():
    p = only(with_flow({"from": "a", "to": "b", "parallel": True}, {"from": "a", "to": "c"}))
    assert "mix parallel and branch edges" in p.message


def test_parallel_edges_need_p_one():
    p = only(with_flow({"from": "a", "to": "b", "parallel": True, "p": 0.5}, {"from": "a", "to": "c", "parallel": True}))
    assert p.path == "flow[0].p"
    assert "p must be 1" in p.message


def test_cycle_names_its_path():
    p = only(with_flow({"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "a"}))
    assert p.path == "flow"
    assert "cycle a → b → c → a" in p.message
    assert "max_repeats" in p.message


def test_back_edge_must_go_back():
    p = only(with_flow({"from": "a", "to": "b"}, {"from": "a", "to": "c", "max_repeats": 3, "p": 0.5}))
    assert p.path == "flow[1].to"
    assert "must come before 'a'" in p.message


def test_back_edge_that_goes_back_is_a_loop_not_a_cycle():
    d = Design.model_validate(with_flow({"from": "a", "to": "b"}, {"from": "b", "to": "c"},
                                        {"from": "c", "to": "a", "max_repeats": 3, "p": 0.6}))
    assert [e.is_loop for e in d.flow] == [False, False, True]
    assert d.loop_edges("c")[0].max_repeats == 3


def test_self_edge():
    p = only(with_flow({"from": "a", "to": "a"}))
    assert p.path == "flow[0]"
    assert "to itself" in p.message


def test_unreachable_component_is_a_warning_and_monitoring_is_exempt():
    d = Design.model_validate(with_flow({"from": "a", "to": "b"}))
    warns = d.warnings()
    assert [(w.path, w.severity) for w in warns] == [("components[2]", "warning")]
    assert "'c' is not reachable from entry 'a'" in warns[0].message
    assert not any("mon" in w.message for w in warns)


def test_class_shares_must_sum_to_one():
    d = base()
    d["workload"]["classes"] = [{"name": "chat", "share": 0.5}, {"name": "rag", "share": 0.3}]
    p = only(d)
    assert p.path == "workload"
    assert "class shares sum to 0.8; expected 1" in p.message


def test_lognormal_p95_must_exceed_mean():
    d = base()
    d["components"][1]["service_time"] = {"dist": "lognormal", "mean_ms": 10, "p95_ms": 8}
    p = only(d)
    assert p.path == "components[1].service_time"
    assert "p95_ms (8) must be above mean_ms (10)" in p.message


def test_uniform_high_below_low():
    d = base()
    d["components"][0]["service_time"] = {"dist": "uniform", "low_ms": 10, "high_ms": 5}
    p = only(d)
    assert p.path == "components[0].service_time"
    assert "high_ms (5.0) must be at least low_ms (10.0)" in p.message


def test_unknown_field_with_suggestion():
    d = base()
    d["components"][1]["replicaz"] = 2
    p = only(d)
    assert p.path == "components[1].replicaz"
    assert "unknown field 'replicaz'" in p.message
    assert p.suggestion == "replicas"


def test_unknown_top_level_field_with_suggestion():
    d = base()
    d["flwo"] = []
    p = only(d)
    assert p.path == "flwo" and p.suggestion == "flow"


def test_unknown_kind_with_suggestion():
    d = base()
    d["components"][0]["kind"] = "servise"
    p = only(d)
    assert p.path == "components[0].kind"
    assert "unknown kind 'servise'" in p.message
    assert "llm_server" in p.message  # lists what is expected
    assert p.suggestion == "service"


@pytest.mark.parametrize(
    "where, value, path, found, expected",
    [
        (("components", 0, "replicas"), 0, "components[0].replicas", "found 0", "greater than or equal to 1"),
        (("components", 0, "service_time"), {"dist": "fixed", "value_ms": -5},
         "components[0].service_time.value_ms", "found -5", "greater than or equal to 0"),
        (("components", 1, "service_time"), {"dist": "exponential", "mean_ms": -1},
         "components[1].service_time.mean_ms", "found -1", "greater than or equal to 0.000001"),
        (("workload", "requests_per_day"), 1e12, "workload.requests_per_day", "found 1000000000000.0",
         "less than or equal to 10000000000"),
        (("workload", "peak_to_average"), 0.5, "workload.peak_to_average", "found 0.5", "greater than or equal to 1"),
    ],
)
def test_bounds(where, value, path, found, expected):
    d = base()
    target = d
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    p = only(d)
    assert p.path == path
    assert found in p.message and expected in p.message
    with pytest.raises(ValidationError):
        Design.model_validate(d)


def test_graph_errors_raise_through_model_validate_too():
    with pytest.raises(ValidationError, match="not a component id"):
        Design.model_validate(with_flow({"from": "a", "to": "zz"}))


def _diamond(parallel: bool = True) -> Design:
    d = base()
    d["components"].append({"id": "d", "kind": "service"})
    d["flow"] = [
        {"from": "a", "to": "b", "parallel": parallel},
        {"from": "a", "to": "c", "parallel": parallel},
        {"from": "b", "to": "d"},
        {"from": "c", "to": "d"},
    ]
    return Design.model_validate(d)


def test_join_of_a_diamond_fan_out_is_where_branches_meet():
    d = _diamond()
    assert d.is_fanout("a")
    assert d.join_of("a") == "d"


def test_join_of_branches_that_never_meet_is_none():
    d = Design.model_validate(with_flow({"from": "a", "to": "b", "parallel": True}, {"from": "a", "to": "c", "parallel": True}))
    assert d.is_fanout("a")
    assert d.join_of("a") is None


def test_join_prefers_the_nearest_common_component():
    # b → c → d and c → d: both branches reach c and d; c is nearer.
    d = base()
    d["components"].append({"id": "d", "kind": "service"})
    d["flow"] = [
        {"from": "a", "to": "b", "parallel": True},
        {"from": "a", "to": "c", "parallel": True},
        {"from": "b", "to": "c"},
        {"from": "c", "to": "d"},
    ]
    assert Design.model_validate(d).join_of("a") == "c"


MMC = """\
name: mmc
workload: {requests_per_day: 8640000, peak_to_average: 1.0}
components:
  - {id: svc, kind: service, replicas: 1, concurrency: 10,
     service_time: {dist: exponential, mean_ms: 83.33}}
entry: svc
flow: []
slo: {latency_p95_ms: 1000}
"""


def test_minimal_mmc_file_means_mm10_at_100_rps():
    d = parse_design(MMC, "mmc.yaml")
    svc = d.component("svc")
    assert d.workload.peak_rps == pytest.approx(100.0)
    assert svc.servers == 10
    assert svc.service_time.dist == "exponential"
    assert svc.service_time.expected() == pytest.approx(83.33)
    assert svc.service_time.scv() == pytest.approx(1.0)  # the M in M/M/10
    # offered load 100 × 0.08333 = 8.33 erlangs on 10 servers
    assert d.workload.peak_rps * svc.service_time.expected() / 1000 / svc.servers == pytest.approx(0.8333)
    assert d.slo.latency_p95_ms == 1000
    assert d.warnings() == []


def test_garbage_edge_fields_are_field_errors_not_crashes():
    # The graph checks run on raw data when a field fails; a non-number p must not crash them.
    ps = problems(with_flow({"from": "a", "to": "b", "parallel": True, "p": "x"}, {"from": "a", "to": "c", "parallel": True}))
    assert [p.path for p in ps] == ["flow[0].p"]
    assert "found 'x'" in ps[0].message


def test_id_with_a_space_says_what_an_id_may_contain():
    d = base()
    d["components"][0]["id"] = "a b"
    d["entry"] = "a b"
    d["flow"] = []
    ps = problems(d)
    assert ps[0].path == "components[0].id"
    assert "letters, digits, '_' and '-'" in ps[0].message
