"""Review commands: `sdw lint` and `sdw doc`.

Usage::

    sdw lint designs/library/rag_qa.yaml           # findings with fixes; exit 1 on any error
    sdw lint my.yaml --json                        # a JSON list of findings on stdout
    sdw doc designs/library/llm_serving.yaml -o out/doc.md --html   # doc.md, doc.svg, doc.html
    sdw doc my.yaml -o doc.md --no-sim             # analytic figures only (instant)
    sdw doc a.yaml --variant b.yaml -o doc.md      # "alternatives considered" compares b on the same seed

Exit codes: 0 ok, 1 invalid design, error-level lint findings, or a failed write; 2 usage.
Problems go to stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from components.errors import Refusal

from .common import clobbers_input, positive_number, whole_number, write_output
from .common import err as _err
from .common import load_or_report as _load

__all__ = ["register", "cmd_lint", "cmd_doc"]


def _estimate(design, cmd: str):
    from sim import estimate

    try:
        return estimate(design)
    except Exception as e:  # noqa: BLE001 - a clear line, not a traceback
        _err(f"sdw {cmd}: the analytic model failed on '{design.name}': {e}")
        return None


def cmd_lint(args: argparse.Namespace) -> int:
    from review.lint import lint

    design = _load(args.file)
    if design is None:
        return 1
    est = _estimate(design, "lint")
    findings = lint(design, est)
    errors = sum(f.severity == "error" for f in findings)
    if args.json:
        print(json.dumps([f.model_dump() for f in findings], indent=2))
    else:
        if not findings:
            print(f"ok  {args.file}  (no findings)")
        for f in findings:
            print(f.format())
        warns = sum(f.severity == "warning" for f in findings)
        if findings:
            print(f"{args.file}: {errors} error(s), {warns} warning(s), {len(findings) - errors - warns} info", file=sys.stderr)
    return 1 if errors else 0


def cmd_doc(args: argparse.Namespace) -> int:
    from designs.diagram import to_dot
    from designs.render import RenderError, render
    from review.doc import Variant, annotation_for, render_doc, render_html
    from review.lint import lint

    out = Path(args.output)
    if out.suffix.lower() not in (".md", ".markdown"):
        _err(f"sdw doc: -o must name a Markdown file (doc.md), got '{args.output}'")
        return 2
    outputs = [out, out.with_suffix(".svg")] + ([out.with_suffix(".html")] if args.html else [])
    hit = clobbers_input(outputs, [args.file, *(args.variant or [])])
    if hit:
        _err(f"sdw doc: writing {hit} would overwrite an input design file; choose another -o")
        return 2
    design = _load(args.file)
    if design is None:
        return 1
    est = _estimate(design, "doc")
    if est is None:
        return 1
    from sim import simulate

    result = None
    if not args.no_sim:
        try:
            result = simulate(design, seed=args.seed, max_requests=args.max_requests, max_seconds=args.max_seconds)
        except Refusal as e:  # a worded refusal; anything else is a bug and says so
            _err(f"sdw doc: simulation refused ({e}); writing the analytic figures only")
    variants = []
    for vf in args.variant or []:
        vd = _load(vf)
        if vd is None:
            return 1
        vest = _estimate(vd, "doc")
        if vest is None:
            return 1
        vres = None
        if not args.no_sim:
            try:  # same seed as the main design: common random numbers
                vres = simulate(vd, seed=args.seed, max_requests=args.max_requests, max_seconds=args.max_seconds)
            except Refusal as e:
                _err(f"sdw doc: simulation of variant '{vf}' refused ({e}); its analytic figures are used")
        variants.append(Variant(Path(vf).stem, vd, vest, vres))
    findings = lint(design, est, result)
    svg_name = out.with_suffix(".svg").name
    md = render_doc(design, est, result, findings, variants, diagram=svg_name)
    try:
        svg = render(to_dot(design, annotation_for(design, est, result)), "svg").decode("utf-8")
    except RenderError as e:
        _err(f"sdw doc: diagram not rendered: {e}")
        svg = None
    written = []
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_output(out, md)  # each file atomic: a full disk leaves the old one whole
        written.append(out)
        if svg is not None:
            write_output(out.with_suffix(".svg"), svg)
            written.append(out.with_suffix(".svg"))
        if args.html:
            page = render_html(design, est, result, findings, variants, svg=svg or "")
            write_output(out.with_suffix(".html"), page)
            written.append(out.with_suffix(".html"))
    except OSError as e:
        _err(f"sdw doc: cannot write '{e.filename}': {e.strerror}")
        return 1
    for p in written:
        print(f"wrote {p}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lint", help="review a design: SPOFs, KV fit, rate limits, SLOs, budget, utilisation")
    p.add_argument("file", help="design YAML file")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(handler=cmd_lint)

    p = sub.add_parser("doc", help="write a design doc (Markdown + SVG, optionally HTML)")
    p.add_argument("file", help="design YAML file")
    p.add_argument("-o", "--output", required=True, help="Markdown file to write, e.g. doc.md (the SVG goes beside it)")
    p.add_argument("--html", action="store_true", help="also write an HTML page with the diagram inline")
    p.add_argument("--no-sim", action="store_true", help="analytic figures only; skip the simulation")
    p.add_argument("--variant", action="append", metavar="FILE", help="an alternative design to compare in the doc (repeatable; same seed)")
    p.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    p.add_argument("--max-requests", type=lambda t: whole_number(t, minimum=1), default=200_000, help="simulation budget in requests (default 200,000)")
    p.add_argument("--max-seconds", type=lambda t: positive_number(t, "a number of seconds"), default=30.0, help="simulation budget in wall seconds (default 30)")
    p.set_defaults(handler=cmd_doc)
