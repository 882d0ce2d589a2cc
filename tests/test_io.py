"""Design files: every error located at once, hostile YAML refused, lossless round trip, schema."""

from __future__ import annotations

import pytest

from components.catalogue import KINDS
from designs.io import (
    MAX_FILE_BYTES,
    DesignFileError,
    design_to_data,
    dump_design,
    json_schema,
    load_design,
    parse_design,
)
from designs.library import list_library
from designs.model import Design


def refusal(text: str) -> list:
    with pytest.raises(DesignFileError) as info:
        parse_design(text, "bad.yaml")
    return info.value.problems


FIVE_ERRORS = """\
name: five
workload:
  requests_per_day: -5
components:
  - id: a
    kind: service
  - id: b
    kind: servce
  - id: c
    kind: service
    service_time:
      dist: exponential
      mean_ms: -3
    replicaz: 2
entry: a
flow:
  - {from: a, to: d}
"""


def test_every_error_at_once_with_lines_and_paths():
    problems = refusal(FIVE_ERRORS)
    got = {(p.path, p.line) for p in problems}
    assert got == {
        ("workload.requests_per_day", 3),
        ("components[1].kind", 7),
        ("components[2].service_time.mean_ms", 13),
        ("components[2].replicaz", 14),
        ("flow[0].to", 17),
    }
    by_path = {p.path: p for p in problems}
    assert "found -5; expected greater than or equal to 0.000001" in by_path["workload.requests_per_day"].message
    assert by_path["components[1].kind"].suggestion == "service"
    assert "found -3" in by_path["components[2].service_time.mean_ms"].message
    assert by_path["components[2].replicaz"].suggestion == "replicas"
    assert "'d' is not a component id" in by_path["flow[0].to"].message
    # The formatted error names the file and line of each problem.
    text = str(DesignFileError("bad.yaml", problems))
    assert "bad.yaml:13: error: components[2].service_time.mean_ms: found -3" in text


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_empty_file(text):
    (p,) = refusal(text)
    assert "empty" in p.message


@pytest.mark.parametrize("text, found", [("- a\n- b\n", "list"), ("just text\n", "str"), ("42\n", "int")])
def test_top_level_must_be_a_mapping(text, found):
    (p,) = refusal(text)
    assert "expected a mapping" in p.message and f"found a {found}" in p.message


def test_huge_text_refused_before_parsing():
    (p,) = refusal("name: x\nnotes: " + "y" * (MAX_FILE_BYTES + 10) + "\n")
    assert "larger than 5 MB" in p.message


def test_huge_file_refused_by_size(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(DesignFileError) as info:
        load_design(f)
    assert "larger than 5 MB" in info.value.problems[0].message


@pytest.mark.parametrize(
    "text", ["name: !!python/object:os.system x\n", "name: !!python/object/apply:os.system ['ls']\n", "name: !custom x\n"]
)
def test_yaml_tags_refused(text):
    (p,) = refusal(text)
    assert "tags" in p.message and "not allowed" in p.message
    assert p.line == 1


def test_duplicate_keys_refused():
    (p,) = refusal("name: a\nworkload: {}\nname: b\n")
    assert "duplicate key 'name' (first on line 1)" in p.message
    assert p.line == 3


@pytest.mark.parametrize("text, line", [("name: [a\n", 2), ("name: x\n  bad: indent\n", 2), ("\tname: x\n", 1)])
def test_syntax_errors_located(text, line):
    (p,) = refusal(text)
    assert p.message.startswith("YAML syntax error")
    assert p.line == line


def test_alias_bomb_refused_quickly():
    # Nine aliases per level, nine levels: 9^9 ≈ 387 M values when expanded, with only 72
    # aliases in the file (fewer than the alias-count limit).
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("name: *a8")
    (p,) = refusal("\n".join(lines) + "\n")
    assert "alias bomb" in p.message


def test_many_aliases_refused():
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 500) + "]\n"
    (p,) = refusal(text)
    assert "aliases" in p.message


def test_recursive_alias_refused():
    (p,) = refusal("name: &n [1, *n]\n")
    assert "alias" in p.message


def test_deep_nesting_refused():
    (p,) = refusal("name: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply" in p.message


def test_a_few_aliases_are_fine():
    text = """\
name: anchors
workload: {requests_per_day: 1000}
components:
  - {id: a, kind: service, service_time: &t {dist: exponential, mean_ms: 20}}
  - {id: b, kind: service, service_time: *t}
entry: a
flow: [{from: a, to: b}]
"""
    d = parse_design(text)
    assert d.component("b").service_time.expected() == 20


@pytest.mark.parametrize(
    "name, error",
    [("missing.yaml", "no such file"), ("dir", "is a directory")],
)
def test_file_errors(tmp_path, name, error):
    (tmp_path / "dir").mkdir()
    with pytest.raises(DesignFileError) as info:
        load_design(tmp_path / name)
    assert error in info.value.problems[0].message


def test_not_utf8(tmp_path):
    f = tmp_path / "latin1.yaml"
    f.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(DesignFileError) as info:
        load_design(f)
    assert "not UTF-8" in info.value.problems[0].message


# --- round trip --------------------------------------------------------------------------

# Fields a kind requires beyond id and kind.
REQUIRED = {
    "llm_server": {"model": "llama-3.1-70b", "gpus_per_replica": 2, "precision": "fp8", "replicas": 6},
    "training_job": {"model": "llama-3.1-8b", "tokens": 2e9, "method": "qlora"},
}


def every_kind_design() -> Design:
    """One component per catalogue kind, every distribution shape, loops, fan-out, classes."""
    comps = []
    for i, kind in enumerate(KINDS):
        c = {"id": f"{kind}_{i}", "kind": kind, **REQUIRED.get(kind, {})}
        if i % 3 == 0:
            c["label"] = f'{kind} "{i}" <&>'
            c["notes"] = "line one\nline two: with: colons # and hash"
        comps.append(c)
    comps[0]["service_time"] = {"dist": "lognormal", "mean_ms": 40, "p95_ms": 90}
    comps[0]["timeout_ms"] = 2500
    by_kind = {c["kind"]: c for c in comps}
    by_kind["cache"]["hit_latency"] = {"dist": "uniform", "low_ms": 0.5, "high_ms": 2}
    by_kind["database"]["query_time"] = {"dist": "empirical", "values_ms": [1, 2.5, 4, 40]}
    by_kind["tool"]["latency"] = {"dist": "exponential", "mean_ms": 250}
    by_kind["reranker"]["pairs_per_request"] = {"dist": "uniform", "low": 20, "high": 80}
    by_kind["embedder"]["tokens_per_request"] = {"dist": "empirical", "values": [100, 300, 900]}
    by_kind["llm_api"]["output_tokens_per_s"] = {"dist": "exponential", "mean": 90}
    by_kind["llm_api"]["rpm_limit"] = 500
    ids = [c["id"] for c in comps if c["kind"] != "monitoring"]
    flow = [
        {"from": ids[0], "to": ids[1], "parallel": True},
        {"from": ids[0], "to": ids[2], "parallel": True},
        {"from": ids[1], "to": ids[2]},
        {"from": ids[2], "to": ids[3], "p": 0.9, "label": 'say "hi"'},
    ]
    flow += [{"from": a, "to": b} for a, b in zip(ids[3:], ids[4:])]
    flow.append({"from": ids[-1], "to": ids[3], "p": 0.25, "max_repeats": 3})
    return Design.model_validate({
        "name": "every kind",
        "problem": "Round-trip every kind.\nSecond line.",
        "workload": {
            "requests_per_day": 2_000_000,
            "peak_to_average": 2.5,
            "classes": [
                {"name": "chat", "share": 0.7, "prompt_tokens": {"dist": "lognormal", "mean": 500, "p95": 1500},
                 "output_tokens": {"dist": "fixed", "value": 200}},
                {"name": "rag", "share": 0.3, "prompt_tokens": {"dist": "uniform", "low": 1000, "high": 4000}},
            ],
            "profile_24h": [0.5] * 12 + [1.5] * 12,
            "batch": {"items_per_run": 1e6, "window_hours": 8},
        },
        "slo": {"latency_p95_ms": 1000, "ttft_p95_ms": 300, "availability": 0.999, "daily_budget_usd": 5000},
        "components": comps,
        "entry": ids[0],
        "flow": flow,
        "assumptions": ["peak is 2.5× average", "prices: list, on-demand"],
        "notes": "multi\nline",
    })


def test_every_kind_design_covers_the_catalogue():
    d = every_kind_design()
    assert {c.kind for c in d.components} == set(KINDS)
    assert d.warnings() == []


def test_dump_parse_round_trip_is_equal():
    d = every_kind_design()
    text = dump_design(d)
    back = parse_design(text, "rt.yaml")
    assert back == d
    assert dump_design(back) == text
    # No default is dropped: kind tags survive and defaults are written out.
    data = design_to_data(d)
    assert all("kind" in c for c in data["components"])
    assert data["components"][1]["replicas"] == 1


def test_dump_of_closed_loop_workload_round_trips():
    d = Design.model_validate({
        "name": "closed",
        "workload": {"concurrent_users": 50, "think_time": {"dist": "exponential", "mean_ms": 3000}},
        "components": [{"id": "s", "kind": "service"}],
        "entry": "s",
    })
    assert parse_design(dump_design(d)) == d


def test_json_schema_describes_components_by_kind():
    s = json_schema()
    assert s["$schema"].startswith("https://json-schema.org/")
    assert set(s["required"]) >= {"name", "workload", "components", "entry"}
    items = s["properties"]["components"]["items"]
    mapping = items["discriminator"]["mapping"]
    assert set(mapping) == set(KINDS)
    for kind, ref in mapping.items():
        target = s["$defs"][ref.rsplit("/", 1)[-1]]
        assert target["properties"]["kind"]["const"] == kind
        assert target.get("additionalProperties") is False
    edge = s["$defs"]["Edge"]
    assert "from" in edge["properties"] and "from_" not in edge["properties"]


LIBRARY = [p for _, p, _ in list_library()]


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_design_round_trips(path):
    d = load_design(path)
    text = dump_design(d)
    assert parse_design(text, str(path)) == d
    assert dump_design(parse_design(text)) == text
