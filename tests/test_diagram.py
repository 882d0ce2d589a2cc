"""Diagrams: DOT structure, safe escaping through a real render, annotations, renderer errors."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from components.catalogue import KINDS, TIERS
from designs import render as render_mod
from designs.diagram import CLIENT, KIND_STYLE, Annotation, quote, to_dot
from designs.io import dump_design, load_design, parse_design
from designs.library import list_library
from designs.model import Design
from designs.render import RenderError, find_renderer, render

from test_io import every_kind_design

NASTY = 'a"b<c>&d\ne'
SVG_NS = "{http://www.w3.org/2000/svg}"
XLINK_TITLE = "{http://www.w3.org/1999/xlink}title"


@pytest.fixture
def pure_only(monkeypatch):
    """Hide a system `dot` so these tests exercise the bundled graphviz-pure."""
    real = shutil.which
    monkeypatch.setattr(render_mod.shutil, "which", lambda name, *a, **k: None if name == "dot" else real(name, *a, **k))
    exe = find_renderer()
    assert exe is not None and "graphviz-pure" in exe
    return exe


def small(**extra) -> Design:
    data = {
        "name": "small",
        "workload": {"requests_per_day": 8_640_000, "peak_to_average": 1},
        "components": [
            {"id": "gw", "kind": "api_gateway"},
            {"id": "cache", "kind": "cache", "hit_ratio": 0.3},
            {"id": "llm", "kind": "llm_server", "model": "llama-3.1-70b", "gpus_per_replica": 2,
             "precision": "fp8", "replicas": 6},
            {"id": "tool", "kind": "tool"},
            {"id": "db", "kind": "database"},
        ],
        "entry": "gw",
        "flow": [
            {"from": "gw", "to": "cache"},
            {"from": "cache", "to": "llm"},
            {"from": "llm", "to": "tool", "p": 0.3},
            {"from": "tool", "to": "llm", "p": 0.6, "max_repeats": 3},
            {"from": "llm", "to": "db", "p": 0.7},
        ],
    }
    data.update(extra)
    return Design.model_validate(data)


def node_attrs(dot: str, cid: str) -> str:
    m = re.search(rf'^\s*{re.escape(quote(cid))} \[(.*)\];$', dot, re.M)
    assert m, f"no node line for {cid}"
    return m.group(1)


def edge_attrs(dot: str, a: str, b: str) -> str:
    m = re.search(rf'^\s*{re.escape(quote(a))} -> {re.escape(quote(b))}(?: \[(.*)\])?;$', dot, re.M)
    assert m, f"no edge {a} -> {b}"
    return m.group(1) or ""


def clusters(dot: str) -> dict[str, list[str]]:
    """Cluster name → ids of the nodes declared inside it."""
    out: dict[str, list[str]] = {}
    for m in re.finditer(r'subgraph "cluster_(\w+)" \{(.*?)\n  \}', dot, re.S):
        out[m.group(1)] = re.findall(r'^    "([^"]+)" \[', m.group(2), re.M)
    return out


def svg_texts(svg: bytes) -> tuple[list[str], list[str], list[str]]:
    """(text lines, <title>s, tooltip attributes) of a parsed SVG."""
    root = ET.fromstring(svg)
    texts = [el.text or "" for el in root.iter(f"{SVG_NS}text")]
    titles = [el.text or "" for el in root.iter(f"{SVG_NS}title")]
    tips = [el.get(XLINK_TITLE) for el in root.iter() if el.get(XLINK_TITLE) is not None]
    return texts, titles, tips


def test_every_kind_has_a_style():
    assert set(KIND_STYLE) == set(KINDS)
    assert KIND_STYLE["database"][0] == "cylinder"
    assert KIND_STYLE["llm_server"][0] in ("box3d", "hexagon")


def test_tiers_are_colours_named_in_a_legend_and_never_clusters():
    """Issue 16: tier clusters reordered the flow; one colour scheme with a legend instead."""
    from designs.diagram import TIER_COLOUR

    d = every_kind_design()
    dot = to_dot(d)
    assert not [c for c in clusters(dot) if c != "legend"]  # the flow alone sets the layout
    for c in d.components:
        assert f'fillcolor="{TIER_COLOUR[type(c).tier]}"' in node_attrs(dot, c.id), c.id
    for tier, title in TIERS.items():
        assert quote(title) in dot  # the legend names every tier present
    assert f'label={quote(d.name)}' in dot.splitlines()[1]
    # The annotated (Capacity) diagram keeps the same fills: utilisation is the border.
    ann = Annotation(utilization={c.id: 0.95 for c in d.components})
    annotated = to_dot(d, ann)
    for c in d.components:
        assert f'fillcolor="{TIER_COLOUR[type(c).tier]}"' in node_attrs(annotated, c.id), c.id
    assert quote("ρ ≥ 0.9") in annotated  # the legend explains the borders


def test_thumbnail_shows_the_shape_not_shrunken_text():
    d = every_kind_design()
    thumb = to_dot(d, thumbnail=True)
    assert "fontsize=\"20\"" in thumb and "·" not in thumb  # big names, no sizing lines
    for c in d.components:
        assert quote(c.id) in thumb


def test_edge_labels_probability_loop_miss_and_fanout():
    dot = to_dot(small())
    assert 'label="30%"' in edge_attrs(dot, "llm", "tool")
    assert 'label="70%"' in edge_attrs(dot, "llm", "db")
    loop = edge_attrs(dot, "tool", "llm")
    assert 'style="dashed"' in loop and 'label="≤3× @60%"' in loop
    assert 'label="miss"' in edge_attrs(dot, "cache", "llm")
    assert "label" not in edge_attrs(dot, "gw", "cache")  # p = 1: no label
    assert 'label="100 rps peak"' in edge_attrs(dot, CLIENT, "gw")  # entry marked by the client
    fan = to_dot(every_kind_design())
    first = every_kind_design().flow[0]
    assert 'style="bold"' in edge_attrs(fan, first.from_, first.to) and "fan-out" in edge_attrs(fan, first.from_, first.to)


def test_node_label_shows_name_kind_and_sizing():
    dot = to_dot(small())
    assert "llm\\nllm_server\\nllama-3.1-70b · 2×H100 FP8 · 6 replicas" in node_attrs(dot, "llm")
    assert "hit 30%" in node_attrs(dot, "cache")
    assert 'shape="box3d"' in node_attrs(dot, "llm")


def test_unreachable_nodes_are_dashed():
    d = small(flow=[{"from": "gw", "to": "cache"}])
    dot = to_dot(d)
    assert "dashed" in node_attrs(dot, "db") and "(unreachable)" in node_attrs(dot, "db")
    assert "dashed" not in node_attrs(dot, "cache")


def test_output_is_deterministic():
    d = every_kind_design()
    assert to_dot(d) == to_dot(d)
    assert to_dot(parse_design(dump_design(d))) == to_dot(d)


def test_quote_escapes():
    assert quote('a"b') == r'"a\"b"'
    assert quote("a\\N") == r'"a\\N"'
    assert quote("x\ny") == r'"x\ny"'
    assert quote("&lt;") == '"&amp;lt;"'
    assert quote("bell\x07tab\tcr\r\n") == r'"bell tab cr\n"'


def test_nasty_labels_render_to_valid_svg(pure_only):
    d = small(name=f"design {NASTY}")
    data = d.model_dump(by_alias=True)
    data["components"][0]["label"] = NASTY
    data["components"][0]["notes"] = NASTY
    data["components"][1]["label"] = r"lit \N and &lt; and \l"
    data["flow"][0]["label"] = NASTY
    d = Design.model_validate(data)
    svg = render(to_dot(d), "svg")
    texts, titles, tips = svg_texts(svg)  # raises if the SVG is not well-formed XML
    assert 'a"b<c>&d' in texts and "e" in texts  # the label's two lines, verbatim
    assert r"lit \N and &lt; and \l" in texts  # no Graphviz escapes, no entity decoding
    assert any(NASTY in t for t in tips)  # notes → tooltip, newline preserved
    assert any(t.startswith('design a"b<c>&d') for t in texts)  # graph label
    assert {c.id for c in d.components} <= set(titles)


def test_every_kind_renders_with_every_id(pure_only):
    d = every_kind_design()
    svg = render(to_dot(d), "svg")
    _, titles, _ = svg_texts(svg)
    assert {c.id for c in d.components} | {CLIENT} <= set(titles)


def test_annotation_colours_utilisation_and_bottleneck():
    ann = Annotation(
        node_rps={"llm": 123.0},
        edge_rps={("cache", "llm"): 123.0, (CLIENT, "gw"): 100.0},
        utilization={"gw": 0.2, "cache": 0.8, "llm": 0.97},
        bottleneck="llm",
    )
    dot = to_dot(small(), ann)
    llm = node_attrs(dot, "llm")
    assert "ρ 0.97 · 123 rps" in llm and "bottleneck" in llm
    assert 'penwidth="3"' in llm and 'color="#d32f2f"' in llm and "bold" in llm
    # Utilisation bands are the border colour; the fill stays the tier colour.
    assert 'color="#ef6c00"' in node_attrs(dot, "cache")  # amber band
    assert 'color="#2e7d32"' in node_attrs(dot, "gw")  # green band
    for other in ("tool", "db"):  # no utilisation figure: no border
        assert "penwidth" not in node_attrs(dot, other)
    assert "123 rps" in edge_attrs(dot, "cache", "llm")
    assert 'label="100 rps"' in edge_attrs(dot, CLIENT, "gw")
    # Without an annotation none of this appears.
    plain = to_dot(small())
    assert "ρ" not in plain and "bottleneck" not in plain and "#d32f2f" not in plain


def test_render_png_magic(pure_only):
    png = render(to_dot(small()), "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_errors(monkeypatch, pure_only):
    with pytest.raises(RenderError, match="unsupported format 'pdf'"):
        render("digraph {}", "pdf")  # type: ignore[arg-type]
    with pytest.raises(RenderError, match="failed"):
        render("digraph { a -> ", "svg")
    monkeypatch.setattr(render_mod, "find_renderer", lambda: None)
    with pytest.raises(RenderError, match="no Graphviz renderer found"):
        render("digraph {}", "svg")


def test_real_dot_is_preferred(monkeypatch, tmp_path):
    fake = tmp_path / "dot"
    monkeypatch.setattr(render_mod.shutil, "which", lambda name, *a, **k: str(fake) if name == "dot" else None)
    assert find_renderer() == str(fake)


def test_every_kind_has_a_sizing_line():
    from designs.diagram import sizing

    for c in every_kind_design().components:
        assert sizing(c), f"no sizing line for kind {c.kind}"


LIBRARY = [p for _, p, _ in list_library()]


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_design_renders_with_every_id_visible(path, pure_only):
    d = load_design(path)
    texts, titles, _ = svg_texts(render(to_dot(d), "svg"))
    visible = "\n".join(texts)
    for c in d.components:
        assert c.id in titles
        assert c.id in visible, f"{c.id} not in the visible text of {path.name}"
