"""`sdw size`: the cheapest design that meets every SLO, found by the twin and verified by simulation.

Usage::

    sdw size designs/library/llm_serving.yaml                      # default space, verify the 5 cheapest
    sdw size my.yaml --space space.yaml --n-minus-1 -o sized.yaml  # narrowed space, N−1, write the winner
    sdw size my.yaml --verify 0 --json                             # the twin only, JSON on stdout
    sdw size my.yaml --workers 2                                   # two local processes
    sdw size my.yaml --executor tcp://scheduler:8786               # a Dask cluster

Exit codes: 0 a winner, 1 invalid input or no answer (nothing fits, an SLO no candidate meets,
a budget below the cheapest passing design — each says the closest candidate and its miss),
2 usage error. Progress goes to stderr; Ctrl-C returns the best found so far, marked partial.
"""

from __future__ import annotations

import argparse
import json

from .common import err as _err
from .common import load_or_report as _load
from .common import positive_number, whole_number

__all__ = ["register", "cmd_size", "format_size"]


def _count(text: str) -> int:
    return whole_number(text, minimum=0)


def _workers(text: str) -> int:
    return whole_number(text, minimum=1)


def _positive(text: str) -> float:
    return positive_number(text)


def _headroom(text: str) -> float:
    v = _positive(text)
    if not 1 <= v <= 10:
        raise argparse.ArgumentTypeError(f"headroom is a factor on the peak rate between 1 and 10 (1.2 = 20 % more), got {v}")
    return v


def _money(x: float | None) -> str:
    return "—" if x is None else f"${x:,.0f}"


def _v(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def format_size(r) -> str:
    """The plain-text report of a `SizeResult`."""
    lines = [f"Sizing {r.design}: {r.status}" + (" (PARTIAL: stopped early by " + r.stopped_by + ")" if r.partial else "")]
    lines.append(r.message)
    lines.append(f"  {r.candidates_total:,} candidates: {r.candidates_evaluated:,} sized by the twin "
                 f"({r.twin_evaluations:,} evaluations), {r.candidates_pruned:,} pruned by a cost bound; "
                 f"{r.simulations} simulations; {r.wall_s:.1f} s; objective {r.objective}, headroom {r.headroom:g}"
                 + (", N−1" if r.n_minus_1 else ""))
    if r.baseline is not None:
        b = r.baseline
        lines.append(f"  as given: {', '.join(f'{v} {k}' for k, v in b.replicas.items())} — {_money(b.cost_per_day_usd)}/day, "
                     f"{'meets' if b.meets else 'misses'} its SLOs (twin)")
    w = r.winner
    if w is not None:
        lines.append("")
        lines.append(f"Winner: {w.candidate}")
        counts = w.sim_replicas or w.replicas
        lines.append(f"  replicas: {', '.join(f'{k} {v}' for k, v in counts.items())}")
        per1k = f" (${w.cost_per_1k_requests_usd:.4g} per 1k requests)" if w.cost_per_1k_requests_usd else ""
        lines.append(f"  cost: {_money(w.sim_cost_per_day_usd if w.verified else w.cost_per_day_usd)}/day{per1k}")
        for c in w.sim:
            lines.append(f"  {'PASS' if c.met else 'FAIL'} {c.metric}: {_v(c.value)} (95 % CI upper {_v(c.upper)}) vs {_v(c.target)}")
        if w.n_minus_1_sim:
            lines.append("  one replica down (simulated):")
            for c in w.n_minus_1_sim:
                lines.append(f"    {'PASS' if c.met else 'FAIL'} {c.metric}: upper {_v(c.upper)} vs {_v(c.target)}")
    if r.closest is not None:
        lines.append(f"Closest: {r.closest.candidate} — {', '.join(f'{k} {v}' for k, v in r.closest.replicas.items())}, "
                     f"{_money(r.closest.cost_per_day_usd)}/day")
    if r.frontier:
        lines.append("")
        lines.append("Frontier (twin; * = Pareto on cost vs the binding SLO, ✓/✗ = verified by simulation):")
        head = ("#", "candidate", "replicas", "$/day", "binding SLO", "value", "target", "sim")
        rows = [head]
        for c in r.frontier[:15]:
            sim = "" if c.verified is None else ("✓ " if c.verified else "✗ ") + (
                f"{_money(c.sim_cost_per_day_usd)}" if c.sim_cost_per_day_usd is not None else "")
            rows.append((f"{c.rank}{'*' if c.pareto else ''}", c.candidate, ", ".join(f"{v}" for v in c.replicas.values()),
                         _money(c.cost_per_day_usd), c.binding_metric or "—", _v(c.binding_value), _v(c.binding_target), sim))
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        for n, row in enumerate(rows):
            lines.append("  " + "  ".join(cell.ljust(wd) for cell, wd in zip(row, widths)))
            if n == 0:
                lines.append("  " + "  ".join("-" * wd for wd in widths))
        if len(r.frontier) > 15:
            lines.append(f"  … {len(r.frontier) - 15} more (--json has all)")
    if r.overturned:
        lines.append("")
        lines.append("Overturned by simulation:")
        lines.extend(f"  - {o.candidate}: {o.detail}" for o in r.overturned)
    if r.rejected:
        lines.append("")
        lines.append("Families:")
        lines.extend(f"  - {f.family}: {f.reason}" for f in r.rejected[:30])
        if len(r.rejected) > 30:
            lines.append(f"  … {len(r.rejected) - 30} more (--json has all)")
    if r.warnings:
        lines.append("")
        lines.append("Warnings:")
        lines.extend(f"  - {w}" for w in r.warnings)
    return "\n".join(lines)


def cmd_size(args) -> int:
    design = _load(args.file)
    if design is None:
        return 1
    from designs.io import DesignFileError, dump_design, parse_design

    from sim import ExecutorError, SearchError, size

    from .common import report
    from .sim_cmds import _interruptible, _Progress

    space = None
    if args.space:
        from designs.space import load_space

        try:
            space = load_space(args.space, {c.id: c.kind for c in design.components})
        except DesignFileError as e:
            report(e)
            return 1
    bar = _Progress("size", delay_s=0.5)
    try:
        with _interruptible() as cancel:
            r = size(design, space=space, verify=args.verify, n_minus_1=True if args.n_minus_1 else None,
                     headroom=args.headroom, objective=args.objective, workers=args.workers, executor=args.executor,
                     seed=args.seed, max_seconds=args.max_seconds, progress=bar, cancel=cancel)
    except (SearchError, ExecutorError) as e:
        bar.close()
        _err(f"sdw size: error: {e}")
        return 1
    bar.close()
    if args.output and r.winner_design is not None:
        from designs.model import Design

        text = dump_design(Design.model_validate(r.winner_design))
        parse_design(text, args.output)  # the file we write must load back
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            _err(f"sdw size: error: cannot write {args.output}: {e.strerror or e}")
            return 1
        _err(f"wrote {args.output}")
    if args.json:
        print(json.dumps(r.to_json(), indent=2))
    else:
        print(format_size(r))
    return 0 if r.status == "ok" and r.winner is not None else 1


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "size", help="find the cheapest design meeting every SLO (twin search, verified by simulation)",
        description="Search GPU, precision, TP, batch and replica counts for the cheapest design meeting every "
                    "SLO at peak; the twin sizes every candidate by bisection, the simulator verifies the cheapest.")
    p.add_argument("file", help="design YAML file")
    p.add_argument("--space", metavar="FILE", help="search space file (the fields of a design's search: block)")
    p.add_argument("--verify", type=_count, default=None, metavar="K",
                   help="simulate the K cheapest candidates (default 5, or the search: block's; 0 = twin only)")
    p.add_argument("--n-minus-1", action="store_true", help="every SLO must hold with one replica of each pool down")
    p.add_argument("--headroom", type=_headroom, default=None, metavar="X", help="size for X × the peak rate (default 1)")
    p.add_argument("--objective", choices=("cost_per_day", "cost_per_1k"), default=None, help="what to minimise")
    p.add_argument("--workers", type=_workers, default=None, metavar="N", help="local worker processes (default: the core count)")
    p.add_argument("--executor", metavar="ADDRESS", help="Dask scheduler address, e.g. tcp://scheduler:8786")
    p.add_argument("--seed", type=int, default=0, help="seed of every verification simulation (default 0)")
    p.add_argument("--max-seconds", type=_positive, default=300.0, metavar="S", help="wall budget of the whole search (default 300)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the winning design here (a valid design file)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=cmd_size)
