"""`sdw accuracy`: the LLM model against every published serving measurement (the scoreboard).

Usage::

    sdw accuracy                                   # twin and simulated replica, both splits (slow)
    sdw accuracy --no-sim --split held_out         # analytic twin only, held-out rows
    sdw accuracy --no-sim --ids 'S*' --rows --json # the five original calibration rows, as JSON

Prints the same table as ``uv run python bench/bench_accuracy.py``: per split (``fit`` rows may
have set coefficients, ``held_out`` never did) and group, rows, not-modelled rows, mean absolute
percentage error, worst row and the share within ±15 % / ±25 %, for the analytic twin and the
simulated replica. Exit codes: 0 printed, 1 no row matches ``--ids``, 2 usage error.
"""

from __future__ import annotations

import argparse
import json

from .common import err as _err

__all__ = ["register", "cmd_accuracy"]

_COLUMNS = ("split", "source", "mode", "gpu", "family", "tp")  # = sim.llm.accuracy.GROUP_COLUMNS


def _by(text: str) -> tuple[str, ...]:
    cols = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in cols if c not in _COLUMNS]
    if not cols or bad:
        what = f"unknown grouping column {bad[0]!r}" if bad else "expected at least one column"
        raise argparse.ArgumentTypeError(f"{what}; use a comma-separated list of {', '.join(_COLUMNS)}")
    return cols


def register(sub) -> None:
    p = sub.add_parser("accuracy", help="the LLM model against published serving measurements",
                       description=__doc__.splitlines()[0])
    p.add_argument("--no-sim", action="store_true", help="analytic twin only (minutes instead of ~20)")
    p.add_argument("--split", choices=["fit", "held_out"], default=None, help="one split (default both)")
    p.add_argument("--by", type=_by, default=("source", "mode", "gpu", "family"),
                   help="grouping columns, comma-separated (default source,mode,gpu,family)")
    p.add_argument("--ids", default=None, help="only rows whose id matches this pattern, e.g. 'T-L70-*'")
    p.add_argument("--rows", action="store_true", help="also print every row's errors")
    p.add_argument("--json", action="store_true", help="the scoreboard as JSON on stdout")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated replicas (default 0)")
    p.set_defaults(handler=cmd_accuracy)


def cmd_accuracy(args) -> int:
    from sim import accuracy_scoreboard, format_accuracy

    board = accuracy_scoreboard(splits=(args.split,) if args.split else ("fit", "held_out"),
                                sim=not args.no_sim, by=args.by, ids=args.ids, seed=args.seed)
    if not any(sb["rows"] for sb in board["splits"].values()):
        _err(f"sdw accuracy: error: no row of components/data/serving_calibration.csv matches --ids {args.ids!r}"
             + (f" in split {args.split}" if args.split else "") + " (row ids look like S1, T-L70-H100-128-128, N-L70-…)")
        return 1
    if args.json:
        print(json.dumps(board, indent=2, allow_nan=False))
    else:
        print(format_accuracy(board, rows=args.rows))
    return 0
