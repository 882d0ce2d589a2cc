"""Hostile input (issue 14): the reproducers of the fuzzing campaign, kept as regression tests.

Parsing: every refusal is a located `DesignFileError`, never a hang or a traceback; the
timing bounds live in bench/bench_hostile.py (parse time per MB), not here.
"""

from __future__ import annotations

import os

import pytest

from designs.io import MAX_DEPTH, MAX_FILE_BYTES, MAX_PROBLEMS, MAX_TOKENS, DesignFileError, load_design, parse_design


def refusal(text: str) -> list:
    with pytest.raises(DesignFileError) as info:
        parse_design(text, "bad.yaml")
    return info.value.problems


def _service_chain(n: int) -> str:
    comps = "".join(f"  - {{id: s{i}, kind: service}}\n" for i in range(n))
    flow = "".join(f"  - {{from: s{i}, to: s{i + 1}}}\n" for i in range(n - 1))
    return f"name: chain\nworkload: {{}}\ncomponents:\n{comps}entry: s0\nflow:\n{flow}"


def test_sixteen_thousand_unknown_keys_stop_after_n_problems_and_say_how_many_more():
    keys = "".join(f"  k{i}: 1\n" for i in range(16_000))
    problems = refusal("name: x\nworkload:\n" + keys + "components:\n  - {id: a, kind: service}\nentry: a\n")
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0].path == "workload.k0" and problems[0].line == 3
    assert problems[MAX_PROBLEMS - 1].path == f"workload.k{MAX_PROBLEMS - 1}"
    assert problems[MAX_PROBLEMS - 1].line == 3 + MAX_PROBLEMS - 1
    assert f"{16_000 - MAX_PROBLEMS:,} more problems" in problems[-1].message


def test_a_thousand_edges_to_misspelt_ids_are_capped_with_suggestions_for_the_first():
    comps = "".join(f"  - {{id: c{i}, kind: service}}\n" for i in range(500))
    edges = "".join(f"  - {{from: cx{i}, to: cy{i}}}\n" for i in range(1000))
    problems = refusal("name: x\nworkload: {}\ncomponents:\n" + comps + "entry: c0\nflow:\n" + edges)
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0].path == "flow[0].from" and problems[0].suggestion == "c0" and problems[0].line == 506
    assert "2,000" in problems[-1].message or f"{2000 - MAX_PROBLEMS:,} more" in problems[-1].message


@pytest.mark.parametrize("text", [
    "name: " + "[" * 16_000 + "]" * 16_000 + "\n",                    # the campaign's 32 KB bomb
    "name: " + "[a, " * 2_000 + "]" * 2_000 + "\n",                    # openers with content between
    "".join(" " * (2 * i) + f"k{i}:\n" for i in range(MAX_DEPTH + 5)) + " " * 200 + "x: 1\n",  # block style
])
def test_deep_nesting_refused_before_parsing(text):
    (p,) = refusal(text)
    assert "nested too deeply" in p.message and f"more than {MAX_DEPTH} levels" in p.message


def test_token_cap_refuses_a_dense_file_under_the_byte_cap():
    text = "name: x\nassumptions: [" + "1," * (MAX_TOKENS // 2 + 10) + "1]\n"
    assert len(text.encode()) < MAX_FILE_BYTES
    (p,) = refusal(text)
    assert f"more than {MAX_TOKENS:,} YAML tokens" in p.message and p.line == 2


def test_thousand_service_chain_says_at_most_500_not_recursion_error():
    problems = refusal(_service_chain(1000))
    msgs = {p.path: p.message for p in problems}
    assert msgs["components"] == "1,000 items; expected at most 500"


def test_a_500_service_chain_still_loads():
    d = parse_design(_service_chain(500))
    assert len(d.components) == 500 and len(d.flow) == 499


def test_dev_zero_is_refused_as_a_device_without_reading_it():
    with pytest.raises(DesignFileError) as info:
        load_design("/dev/zero")
    assert "is a device" in str(info.value)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "d.yaml"
    os.mkfifo(fifo)
    with pytest.raises(DesignFileError) as info:
        load_design(fifo)  # no writer: a blocking open would hang here forever
    assert "is a FIFO" in str(info.value)


def test_byte_limit_counts_bytes_read_not_st_size(tmp_path, monkeypatch):
    import designs.io as io

    f = tmp_path / "d.yaml"
    f.write_text("name: x\n" + "#" * 5000 + "\n")
    with pytest.raises(DesignFileError) as info:
        io.read_text_limited(f, limit=1000)
    assert "larger than" in str(info.value)
    assert io.read_text_limited(f, limit=6000).startswith("name: x")


# --- validate says ok ⇒ estimate / run / doc do not crash ---------------------------------------

_BASE = {"name": "x", "components": [{"id": "s", "kind": "service"}], "entry": "s"}


@pytest.mark.parametrize("patch, path", [
    ({"workload": {"requests_per_day": 5e-324}}, "workload.requests_per_day"),
    ({"workload": {"arrival_rps": 5e-324}}, "workload.arrival_rps"),
    ({"workload": {"concurrent_users": 10}, "components": [{"id": "s", "kind": "reranker", "pairs_per_s_per_replica": 5e-324}]},
     "components[0].pairs_per_s_per_replica"),
    ({"workload": {}, "components": [{"id": "s", "kind": "service", "service_time": {"dist": "exponential", "mean_ms": 5e-324}}]},
     "components[0].service_time.mean_ms"),
    ({"workload": {"arrival_rps": 10}, "components": [{"id": "s", "kind": "batch_stage", "items_per_s_per_worker": 1e-9}]},
     "components[0].items_per_s_per_worker"),
])
def test_values_whose_derived_rates_underflow_are_refused_by_validation(patch, path):
    import yaml

    problems = refusal(yaml.safe_dump(_BASE | patch))
    assert [p.path for p in problems] == [path]
    assert "greater than or equal to" in problems[0].message


def test_rates_too_low_to_simulate_are_reported_by_validate(tmp_path, capsys):
    from cli.main import main

    f = tmp_path / "slow.yaml"
    f.write_text("name: slow\nworkload: {requests_per_day: 1.0e-6}\ncomponents: [{id: s, kind: service}]\nentry: s\n")
    assert main(["validate", str(f)]) == 1
    err = capsys.readouterr().err
    assert "slow.yaml:2: error: workload.requests_per_day: peak rate" in err and "too low to simulate" in err
    assert main(["estimate", str(f), "--json"]) == 0  # the twin still answers: the no-load latency


def test_slowest_batch_stage_on_a_request_path_runs_without_a_raw_pydantic_error():
    from sim import estimate, simulate

    d = parse_design("name: b\nworkload: {arrival_rps: 0.001}\ncomponents:\n"
                     "  - {id: b, kind: batch_stage, items_per_s_per_worker: 1.0e-6, workers: 1000000}\nentry: b\n")
    est = estimate(d)
    assert est.latency_ms_mean == pytest.approx(1e9)  # one item at 1e-6 items/s: 10^6 s
    r = simulate(d, seed=1, max_seconds=5)
    assert r.latency_ms.p95 == pytest.approx(1e9)


def test_only_deliberate_refusals_are_user_errors(monkeypatch, capsys, tmp_path):
    import cli.sim_cmds as sc
    from cli.main import main
    from components.errors import Refusal

    f = tmp_path / "ok.yaml"
    f.write_text("name: ok\nworkload: {}\ncomponents: [{id: s, kind: service}]\nentry: s\n")

    def bug(args):
        raise ValueError("cannot convert float NaN to integer")

    monkeypatch.setattr(sc, "cmd_estimate", bug)
    monkeypatch.delenv("SDW_DEBUG", raising=False)
    assert main(["estimate", str(f)]) == 1
    err = capsys.readouterr().err
    assert "internal error: ValueError: cannot convert float NaN to integer" in err and "SDW_DEBUG=1" in err

    def refuse(args):
        raise Refusal("workload: the budget cannot hold one batch")

    monkeypatch.setattr(sc, "cmd_estimate", refuse)
    assert main(["estimate", str(f)]) == 1
    err = capsys.readouterr().err
    assert "sdw estimate: error: workload: the budget cannot hold one batch" in err and "internal" not in err


# --- security: user text in the Markdown design doc -----------------------------------------


def test_markdown_doc_escapes_user_text_so_nothing_runs_once_rendered():
    # The campaign ran four scripts in Chromium after Python-Markdown rendered the doc: the
    # name, a label, an assumption and the notes were embedded verbatim.
    markdown = pytest.importorskip("markdown")
    from designs.model import Design
    from review.doc import render_doc, render_html
    from review.lint import lint
    from sim import estimate

    evil = "<script>alert(1)</script>"
    link = "[click](javascript:alert(2))"
    attrs = "{: onclick=\"alert(3)\" }"
    d = Design.model_validate({
        "name": f"x {evil}", "problem": f"P {link} <img src=x onerror=alert(4)>", "workload": {"arrival_rps": 10},
        "components": [{"id": "svc", "kind": "service", "label": f"L {evil} {link}", "notes": evil}],
        "entry": "svc", "assumptions": [evil, link, "![i](javascript:alert(5))"],
        "notes": f"{attrs}\n\n`{evil}` \\[{link}"})
    est = estimate(d)
    md = render_doc(d, est, None, lint(d, est), diagram="d.svg")
    html = markdown.markdown(md, extensions=["tables", "attr_list"])
    tags = _tags(html)
    assert "script" not in {t for t, _ in tags}
    for t, attrs in tags:
        for k, v in attrs:
            assert not k.startswith("on"), (t, k, v)
            assert not (v or "").strip().lower().startswith("javascript"), (t, k, v)
    assert [t for t, _ in tags if t == "img"] == ["img"]  # only our own diagram
    # The text itself survives, shown literally.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "[click](javascript:alert(2))" in html
    assert "<img alt=\"diagram\" src=\"d.svg\"" in html  # our own image still renders
    # HTML export is unchanged: every piece of text escaped exactly once.
    page = render_html(d, est, None, [])
    assert "<script" not in page.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Confirm: [click](javascript:alert(2))" in page  # no Markdown escapes leak into the HTML view


def _tags(html: str) -> list[tuple[str, list]]:
    """Every start tag of `html` with its attributes (what a browser would act on)."""
    from html.parser import HTMLParser

    out: list[tuple[str, list]] = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            out.append((tag, attrs))

    P().feed(html)
    return out
