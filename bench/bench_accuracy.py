"""The accuracy scoreboard: the LLM model against every published serving row.

    uv run python bench/bench_accuracy.py            # twin and simulated replica, both splits
    uv run python bench/bench_accuracy.py --no-sim   # analytic twin only (minutes)
    uv run python bench/bench_accuracy.py --split held_out --by source,mode
    uv run python bench/bench_accuracy.py --ids 'T-L70-*' --rows

Prints, per split and per group (source, mode, GPU, model family by default) and metric: rows,
rows not modelled, mean absolute percentage error, worst row and the share within ±15 % /
±25 %, for the analytic twin and for one simulated replica. Rows tagged ``fit`` may have set
coefficients; ``held_out`` rows never did (components/data/serving_calibration.csv).
``sdw accuracy`` prints the same table (and ``--json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.llm.accuracy import accuracy_scoreboard, format_accuracy  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-sim", action="store_true", help="analytic twin only")
    ap.add_argument("--split", choices=["fit", "held_out"], default=None)
    ap.add_argument("--by", default="source,mode,gpu,family", help="grouping columns")
    ap.add_argument("--ids", default=None, help="only rows whose id matches this pattern (e.g. 'T-L70-*')")
    ap.add_argument("--rows", action="store_true", help="also print every row")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    board = accuracy_scoreboard(splits=(a.split,) if a.split else ("fit", "held_out"), sim=not a.no_sim,
                       by=tuple(a.by.split(",")), ids=a.ids)
    print(format_accuracy(board, rows=a.rows))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
