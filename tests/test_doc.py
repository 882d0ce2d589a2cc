"""Design-doc export: every library design's doc has its diagram, SLO verdict and cost; HTML is escaped."""

from __future__ import annotations

import pytest

from cli.main import main
from designs.io import load_design
from designs.library import library_files
from designs.model import Design
from review.doc import Variant, render_doc, render_html, sanitize_svg, verdict_line
from review.lint import lint

analytic = pytest.importorskip("sim.twin.analytic")
engine = pytest.importorskip("sim.des.engine")

LIBRARY = library_files()


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_doc_has_diagram_verdict_and_cost(path):
    d = load_design(path)
    est = analytic.estimate(d)
    result = engine.simulate(d, seed=1, max_requests=3000, max_seconds=5)
    md = render_doc(d, est, result, lint(d, est, result), diagram=f"{path.stem}.svg")
    assert f"![diagram]({path.stem}.svg)" in md
    verdict = verdict_line(est, result)
    assert verdict.startswith("SLO verdict: ") and verdict in md
    assert f"${result.cost_per_day_usd:,.2f}" in md
    for line in result.cost_breakdown:
        assert line.id in md
    for cid in est.stations:
        assert cid in md
    if result.pipeline is None:  # the p95 and its confidence interval are printed
        lo, hi = result.latency_ms_ci95.p95
        assert f"| Latency (ms) | p95 | {_fmt(result.latency_ms.p95)} | [{_fmt(lo)}, {_fmt(hi)}] |" in md


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}" if abs(x) >= 10 else f"{x:.3g}"


def test_html_escapes_user_text_and_inlines_svg():
    evil = "<script>alert('x')</script>"
    d = Design.model_validate({
        "name": "evil", "problem": f"Problem {evil}", "workload": {"arrival_rps": 10},
        "components": [{"id": "svc", "kind": "service", "label": evil, "replicas": 2, "notes": evil}],
        "entry": "svc", "assumptions": [evil], "notes": f"trade-off {evil}"})
    est = analytic.estimate(d)
    page = render_html(d, est, None, lint(d, est), variants=[Variant("same <b>again</b>", d, est)])
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "same &lt;b&gt;again&lt;/b&gt;" in page
    assert "<svg" in page  # rendered and inlined
    md = render_doc(d, est, None, [], diagram="evil.svg")
    assert "Not simulated" in md and "![diagram](evil.svg)" in md


def test_sanitize_svg_drops_scripts_and_handlers():
    svg = '<?xml version="1.0"?><!DOCTYPE svg><svg onload="x()"><script>bad()</script><a xlink:href="javascript:x"><text>ok</text></a></svg>'
    out = sanitize_svg(svg)
    assert "script" not in out and "onload" not in out and "javascript" not in out and "<text>ok</text>" in out


def test_cli_doc_writes_md_svg_html(tmp_path, capsys):
    path = LIBRARY[0]
    out = tmp_path / "sub" / "doc.md"
    assert main(["doc", str(path), "-o", str(out), "--html", "--no-sim"]) == 0
    md = out.read_text()
    assert "![diagram](doc.svg)" in md and "SLO verdict:" in md
    assert (tmp_path / "sub" / "doc.svg").read_text().lstrip().startswith(("<svg", "<?xml", "<!DOCTYPE"))
    assert "<svg" in (tmp_path / "sub" / "doc.html").read_text()
    # Alternatives considered: a second design, compared in the table.
    assert main(["doc", str(path), "-o", str(tmp_path / "v.md"), "--no-sim", "--variant", str(LIBRARY[1])]) == 0
    v = (tmp_path / "v.md").read_text()
    assert f"| {LIBRARY[1].stem} |" in v and "(this design)" in v
    assert main(["doc", str(path), "-o", str(tmp_path / "doc.txt")]) == 2
    assert main(["doc", str(tmp_path / "missing.yaml"), "-o", str(out)]) == 1
    assert "no such file" in capsys.readouterr().err
