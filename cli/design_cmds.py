"""Design commands: `sdw validate`, `sdw render`, `sdw schema`, `sdw list`.

Usage::

    sdw validate designs/library/*.yaml         # ok/invalid per file; exit 1 if any invalid
    sdw render designs/library/rag_qa.yaml -o rag.svg     # .svg, .png or .dot (or --format)
    sdw render my.yaml -o - --format dot        # DOT (or SVG) on stdout
    sdw schema > design.schema.json             # JSON Schema for editors
    sdw list [--models | --gpus]                # the library, or the hardware catalogue

Exit codes: 0 ok, 1 invalid input or a failed render/write, 2 usage error. Problems go to
stderr, one located finding per line; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# The designs/sim imports live in the handlers: registering the commands (all `sdw --help`
# needs) must not load the pydantic catalogue.

from .common import clobbers_input, write_output
from .common import err as _err
from .common import report as _report

__all__ = ["register", "cmd_validate", "cmd_render", "cmd_schema", "cmd_list", "FORMAT_BY_SUFFIX"]

FORMAT_BY_SUFFIX = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}


# --- validate ----------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from designs.io import DesignFileError, load_design, locate, read_text_limited
    from sim import validation_problems

    bad = 0
    for f in args.files:
        try:
            d = load_design(f)
            # A well-formed file can still describe hardware that cannot run it (a model
            # that does not fit its GPUs), or work no run could do (loops of 10^5 visits per
            # request, rates too high or too low): every check `estimate` and `run` would
            # refuse on is a validation error too, so "ok" means they will not refuse.
            problems = validation_problems(d)
            if problems:
                raise DesignFileError(str(f), locate(problems, read_text_limited(f)))
        except DesignFileError as e:
            _report(e)
            bad += 1
            continue
        warns = d.warnings()
        n = len(d.components)
        facts = [f"{n} component{'s' if n != 1 else ''}"]
        if warns:
            facts.append(f"{len(warns)} warning{'s' if len(warns) != 1 else ''}")
        print(f"ok  {f}  ({', '.join(facts)})")
        for w in warns:
            print("  " + w.format(f))
    if len(args.files) > 1:
        print(f"{len(args.files) - bad} of {len(args.files)} valid", file=sys.stderr if bad else sys.stdout)
    return 1 if bad else 0


# --- render ------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    from designs.diagram import to_dot
    from designs.io import DesignFileError, load_design
    from designs.render import RenderError, render

    out: str = args.output
    fmt = args.format
    if fmt is None:
        if out == "-":
            fmt = "svg"
        else:
            fmt = FORMAT_BY_SUFFIX.get(Path(out).suffix.lower())
            if fmt is None:
                _err(
                    f"sdw render: cannot tell the format from '{out}'; "
                    f"use a {', '.join(FORMAT_BY_SUFFIX)} file or --format svg|png|dot"
                )
                return 2
    if out == "-" and fmt == "png":
        _err("sdw render: PNG is binary; write it to a file (-o out.png)")
        return 2
    if out != "-" and clobbers_input([out], [args.file]):
        _err(f"sdw render: -o {out} is the input design file; refusing to overwrite it")
        return 2
    try:
        design = load_design(args.file)
    except DesignFileError as e:
        _report(e)
        return 1
    dot = to_dot(design)
    try:
        data = dot.encode("utf-8") if fmt == "dot" else render(dot, fmt)
    except RenderError as e:
        _err(f"sdw render: {e}")
        return 1
    if out == "-":
        sys.stdout.write(data.decode("utf-8"))
        sys.stdout.flush()
        return 0
    try:
        write_output(out, data)  # atomic: a failed write leaves the old file whole
    except OSError as e:
        _err(f"sdw render: cannot write {out}: {e.strerror or e}")
        return 1
    print(f"wrote {out} ({fmt}, {len(data):,} bytes, {len(design.components)} components)")
    return 0


# --- schema ------------------------------------------------------------------------------


def cmd_schema(args: argparse.Namespace) -> int:
    from designs.io import json_schema

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


# --- list --------------------------------------------------------------------------------


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _g(x: float | None) -> str:
    return "—" if x is None else f"{x:g}"


def _list_models() -> int:
    from components.hardware import get_model, model_names

    rows = [["model", "params_b", "active_b", "layers", "hidden", "heads", "kv_heads", "context", "kv_kb_per_token_bf16"]]
    for n in model_names():
        m = get_model(n)
        rows.append([
            m.name, _g(m.params_total_b), _g(m.params_active_b), str(m.layers), str(m.hidden),
            str(m.q_heads), str(m.kv_heads), f"{m.max_context_tokens:,}", f"{m.kv_bytes_per_token(2) / 1024:g}",
        ])
    print(_table(rows))
    return 0


def _list_gpus() -> int:
    from components.hardware import get_gpu, gpu_names

    rows = [["gpu", "bf16_tflops", "fp8_tflops", "hbm_gb", "hbm_tb_per_s", "usd_per_hour"]]
    for n in gpu_names():
        g = get_gpu(n)
        rows.append([g.name, _g(g.bf16_tflops), _g(g.fp8_tflops), _g(g.hbm_gb), _g(g.hbm_bandwidth_tbps), f"{g.gpu_hourly_usd:.2f}"])
    print(_table(rows))
    print("(dense peak figures; each row's source is in components/data/gpus.csv)", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from designs.library import library_dir, list_library

    if args.models:
        return _list_models()
    if args.gpus:
        return _list_gpus()
    entries = list_library()
    if not entries:
        _err(f"no designs in {library_dir()}")
        return 0
    cwd = Path.cwd()
    rows = [["name", "file", "problem"]]
    for name, path, problem in entries:
        try:
            shown = str(path.relative_to(cwd))
        except ValueError:
            shown = str(path)
        rows.append([name, shown, problem if len(problem) <= 100 else problem[:97] + "..."])
    print(_table(rows))
    return 0


# --- registration ------------------------------------------------------------------------


def register(subparsers) -> None:
    p = subparsers.add_parser("validate", help="check design files; print every located problem")
    p.add_argument("files", nargs="+", metavar="FILE", help="design YAML files")
    p.set_defaults(handler=cmd_validate)

    p = subparsers.add_parser("render", help="draw a design as SVG, PNG or DOT")
    p.add_argument("file", metavar="FILE", help="design YAML file")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file (.svg, .png, .dot) or - for stdout (svg or dot)")
    p.add_argument("--format", choices=("svg", "png", "dot"), help="output format; default from the suffix")
    p.set_defaults(handler=cmd_render)

    p = subparsers.add_parser("schema", help="print the JSON Schema of design files")
    p.set_defaults(handler=cmd_schema)

    p = subparsers.add_parser("list", help="list the library designs (or --models / --gpus)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--models", action="store_true", help="list the model catalogue")
    g.add_argument("--gpus", action="store_true", help="list the GPU catalogue")
    p.set_defaults(handler=cmd_list)
