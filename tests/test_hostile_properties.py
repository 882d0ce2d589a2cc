"""Property-based checks over the design model and every CLI command (issue 14).

Generated designs — valid, extreme and invalid — go through `sdw validate`, `estimate`, `run`,
`compare`, `lint`, `doc`, `render`; mutated library files through every command that reads a
file. The properties:

* no traceback and no "internal error" ever; exit codes are 0, 1 or 2;
* `--json` prints exactly one valid JSON object (no NaN/Infinity);
* `--max-seconds` is honoured within a stated factor: wall ≤ 4 × budget + 3 s (start-up,
  the twin and building the result are outside the event loop's checks; the machine is shared);
* validate says ok ⇒ estimate, lint and doc succeed and run either succeeds or refuses
  with a reason (a run may stop mid-way when requests cost far more than the twin predicts);
* a valid design dumps to YAML that loads back equal.

Bounded for CI (about two minutes in all): `max_examples` per property, no per-example
deadline, derandomized so a CI run is reproducible.
"""

from __future__ import annotations

import json
import math
import time

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cli.main import main  # noqa: E402
from designs.io import DesignFileError, dump_design, parse_design  # noqa: E402
from designs.library import library_files  # noqa: E402

RUN_BUDGET_S = 0.5
OVERRUN_FACTOR, OVERRUN_SLACK_S = 4.0, 3.0

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

# Palettes of values at and around the bounds, plus a few out of bounds (validation must say so).
TIMES_MS = [0.0, 1e-6, 0.5, 5.0, 300.0, 1e9]
BAD = [-1.0, 5e-324, 1e308, float("nan"), float("inf")]
RATES = [1e-9, 2e-5, 0.5, 10.0, 200.0, 1e6]


def _dist(draw) -> dict:
    kind = draw(st.sampled_from(["fixed", "exponential", "lognormal", "uniform"]))
    m = draw(st.sampled_from(TIMES_MS[1:] + ([BAD[0], BAD[1]] if draw(st.booleans()) and draw(st.booleans()) else [])))
    if kind == "fixed":
        return {"dist": "fixed", "value_ms": draw(st.sampled_from(TIMES_MS))}
    if kind == "exponential":
        return {"dist": "exponential", "mean_ms": m}
    if kind == "lognormal":
        return {"dist": "lognormal", "mean_ms": m, "p95_ms": m * draw(st.sampled_from([1.0, 1.5, 3.8, 5.0]))}
    lo = draw(st.sampled_from(TIMES_MS))
    return {"dist": "uniform", "low_ms": lo, "high_ms": lo * draw(st.sampled_from([1.0, 2.0]))}


KINDS = ["service", "cache", "guardrail", "queue", "tool", "database", "vector_db", "keyword_search",
         "object_storage", "load_balancer", "api_gateway", "monitoring", "llm_api", "judge", "embedder",
         "reranker", "batch_stage", "llm_server"]


@st.composite
def component(draw, cid: str) -> dict:
    kind = draw(st.sampled_from(KINDS))
    c: dict = {"id": cid, "kind": kind}
    pick = lambda xs: draw(st.sampled_from(xs))  # noqa: E731
    if kind in ("service", "guardrail", "database", "vector_db", "keyword_search", "cache"):
        c["replicas"] = pick([1, 2, 100_000])
        c["concurrency"] = pick([1, 8, 100_000])
    if kind in ("service", "guardrail"):
        c["service_time"] = _dist(draw)
    if kind == "cache":
        c["hit_ratio"] = pick([0.0, 0.3, 1.0])
    if kind == "guardrail":
        c["block_ratio"] = pick([0.0, 0.5, 1.0])
    if kind == "queue":
        c["max_depth"] = pick([None, 1, 10**9])
    if kind == "tool":
        c["latency"] = _dist(draw)
        c["max_concurrency"] = pick([None, 1, 10**7])
    if kind in ("llm_api", "judge"):
        c["rpm_limit"] = pick([None, 1, 600])
        c["tpm_limit"] = pick([None, 1, 10**12])
        c["on_limit"] = pick(["wait", "retry"])
        c["max_retries"] = pick([0, 5, 100])
        c["backoff_ms"] = pick([1e-3, 1000.0, 600_000.0])
    if kind == "embedder":
        c["tokens_per_s_per_replica"] = pick([1e-3, 62_000.0, 1e9] + BAD[:2])
    if kind == "reranker":
        c["pairs_per_s_per_replica"] = pick([1e-3, 1800.0, 1e9] + BAD[:2])
    if kind in ("embedder", "reranker"):
        c["replicas"] = pick([1, 4])
        c["max_batch"] = pick([1, 32, 4096])
    if kind == "llm_server":
        c["model"] = pick(["llama-3.1-8b", "llama-3.1-70b", "mistral-7b"])
        c["gpu"] = pick(["H100-SXM-80GB", "H200-SXM-141GB"])
        c["gpus_per_replica"] = pick([1, 2, 8])
        c["replicas"] = pick([1, 3])
        c["max_batch"] = pick([1, 64, 4096])
        c["precision"] = pick(["bf16", "fp8", "int4"])
    if kind == "batch_stage":
        c["items_per_s_per_worker"] = pick([1e-6, 100.0, 1e9, 1e-9])
        c["workers"] = pick([1, 4, 10**6])
    if draw(st.booleans()) and kind not in ("queue", "monitoring", "batch_stage"):
        c["timeout_ms"] = pick([1e-3, 50.0, 3_600_000.0])
    if draw(st.integers(0, 9)) == 0:
        c["label"] = draw(st.text(max_size=30))
    return c


@st.composite
def design_data(draw) -> dict:
    n = draw(st.integers(1, 5))
    comps = [draw(component(f"c{i}")) for i in range(n)]
    flow: list[dict] = []
    if n >= 3 and draw(st.booleans()):
        flow += [{"from": "c0", "to": "c1", "parallel": True}, {"from": "c0", "to": "c2", "parallel": True}]
        start = 2
    else:
        start = 0
    for i in range(start, n - 1):
        flow.append({"from": f"c{i}", "to": f"c{i + 1}", "p": draw(st.sampled_from([1.0, 0.5, 0.0]))})
    if n >= 2 and draw(st.booleans()):
        flow.append({"from": f"c{n - 1}", "to": f"c{draw(st.integers(0, n - 2))}",
                     "p": draw(st.sampled_from([0.1, 0.5, 1.0])), "max_repeats": draw(st.sampled_from([1, 10, 1000]))})
    if draw(st.booleans()):
        wl: dict = {"arrival_rps": draw(st.sampled_from(RATES + BAD[:2]))}
    elif draw(st.booleans()):
        wl = {"requests_per_day": draw(st.sampled_from([1e-6, 1.0, 1e6, 1e10, 5e-324])),
              "peak_to_average": draw(st.sampled_from([1.0, 3.0, 100.0]))}
    else:
        wl = {"concurrent_users": draw(st.sampled_from([1, 10, 1000, 10**6])),
              "think_time": {"dist": "fixed", "value_ms": draw(st.sampled_from([0.0, 1000.0]))}}
    if draw(st.integers(0, 3)) == 0:
        share = draw(st.sampled_from([1.0, 0.5, 1e-9]))
        wl["classes"] = [{"name": "a", "share": share,
                          "prompt_tokens": {"dist": "fixed", "value": draw(st.sampled_from([1, 500, 10**6]))},
                          "output_tokens": draw(st.sampled_from([
                              {"dist": "fixed", "value": 1}, {"dist": "fixed", "value": 10**5},
                              {"dist": "exponential", "mean": 1e-6}, {"dist": "exponential", "mean": 200.0}]))}]
        if share < 1:
            wl["classes"].append({"name": "b", "share": 1 - share})
    if "concurrent_users" not in wl and draw(st.integers(0, 4)) == 0:
        wl["profile_24h"] = draw(st.sampled_from([[1.0] * 24, [0.0] * 23 + [1.0], [0.0] * 12 + [5.0] * 12]))
    d = {"name": draw(st.text(min_size=1, max_size=20)), "workload": wl, "components": comps, "entry": "c0", "flow": flow}
    if draw(st.booleans()):
        d["slo"] = {"latency_p95_ms": draw(st.sampled_from([1.0, 1000.0])), "availability": 0.99}
    return d


def _yaml(d: dict) -> str:
    return yaml.safe_dump(d, sort_keys=False, allow_unicode=True)


def _cli(capsys, *argv) -> tuple[int, str, str, float]:
    t0 = time.perf_counter()
    code = main([str(a) for a in argv])
    wall = time.perf_counter() - t0
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    return code, out, err, wall


def _json(out: str) -> dict:
    obj = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert isinstance(obj, dict)
    return obj


@settings(max_examples=150, **SETTINGS)
@given(design_data())
def test_model_parses_or_refuses_and_valid_designs_round_trip(d):
    try:
        design = parse_design(_yaml(d), "gen.yaml")
    except DesignFileError as e:
        assert e.problems and all(p.message for p in e.problems)
        return
    assert parse_design(dump_design(design)) == design


@settings(max_examples=35, **SETTINGS)
@given(design_data())
def test_validate_ok_implies_estimate_run_lint_doc_do_not_crash(tmp_path_factory, capsys, d):
    tmp = tmp_path_factory.mktemp("gen")
    f = tmp / "d.yaml"
    f.write_text(_yaml(d), encoding="utf-8")
    code, _, _, _ = _cli(capsys, "validate", f)
    hypothesis.event(f"validate exit {code}")
    if code != 0:
        return
    code, out, err, _ = _cli(capsys, "estimate", f, "--json")
    assert code == 0, err
    est = _json(out)
    assert est["design"] == parse_design(f.read_text()).name
    extra = []
    if "profile_24h" in d["workload"] and "arrival_rps" not in d["workload"]:
        extra = ["--whole-day"]
    elif "classes" in d["workload"]:
        extra = ["--replications", "2"]
    code, out, err, wall = _cli(capsys, "run", f, "--json", "--max-seconds", RUN_BUDGET_S, "--max-requests", 20_000, *extra)
    hypothesis.event(f"run exit {code} {' '.join(extra)}")
    assert wall <= OVERRUN_FACTOR * RUN_BUDGET_S + OVERRUN_SLACK_S, wall
    if code == 0:
        r = _json(out)
        assert r["stopped_by"] in ("precision", "max_requests", "max_seconds", "interrupted", "pipeline")
        p95 = r["latency_ms"]["p95"]
        assert p95 is None or (math.isfinite(p95) and p95 >= 0)
    else:
        assert code == 1 and "refused" in err, err
    code, _, err, _ = _cli(capsys, "lint", f)
    assert code in (0, 1)
    code, _, err, _ = _cli(capsys, "doc", f, "-o", tmp / "doc.md", "--no-sim")
    assert code == 0, err
    assert (tmp / "doc.md").read_text().startswith("# Design doc: ")
    code, out, err, _ = _cli(capsys, "render", f, "-o", "-", "--format", "dot")
    assert code == 0 and out.lstrip().startswith(("digraph", "strict digraph")), err


@st.composite
def mutated_library_text(draw) -> str:
    text = draw(st.sampled_from(library_files())).read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "dup", "swap_num"]))
        i = draw(st.integers(0, max(0, len(text) - 1)))
        if op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 40)):]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(["[", "{", ":", "- ", "\n", "&a ", "*a", "!!str ", "\t", "5e-324",
                                                    "-1", "1e308", "\x85", "'", '"', "~", "{{", "]]"])) + text[i:]
        elif op == "dup":
            j = draw(st.integers(i, min(len(text), i + 200)))
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text.replace(": 1", ": " + draw(st.sampled_from(["0", "-3", "1e12", "5e-324", "nan", "true", "[]"])), 1)
    return text


@settings(max_examples=40, **SETTINGS)
@given(mutated_library_text())
def test_every_command_survives_mutated_files(tmp_path_factory, capsys, text):
    tmp = tmp_path_factory.mktemp("mut")
    f = tmp / "m.yaml"
    f.write_text(text, encoding="utf-8")
    ok = _cli(capsys, "validate", f)[0] == 0
    hypothesis.event(f"mutant valid: {ok}")
    code, out, _, _ = _cli(capsys, "estimate", f, "--json")
    if code == 0:
        _json(out)
    assert not ok or code == 0
    _cli(capsys, "lint", f)
    _cli(capsys, "render", f, "-o", "-", "--format", "dot")
    code, _, _, _ = _cli(capsys, "doc", f, "-o", tmp / "doc.md", "--no-sim")
    assert not ok or code == 0
    code, out, err, wall = _cli(capsys, "compare", f, f, "--json", "--max-seconds", RUN_BUDGET_S, "--max-requests", 20_000)
    assert wall <= 2 * (OVERRUN_FACTOR * RUN_BUDGET_S + OVERRUN_SLACK_S), wall
    if code == 0:
        assert len(_json(out)["designs"]) == 2
    elif ok:
        assert "refused" in err, err


def test_usage_errors_exit_2(capsys):
    assert _cli(capsys, "run")[0] == 2
    assert _cli(capsys, "run", "x.yaml", "--max-seconds", "-1")[0] == 2
    assert _cli(capsys, "estimate", "x.yaml", "--bogus")[0] == 2
    assert _cli(capsys)[0] == 2
