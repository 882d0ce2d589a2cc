"""The accuracy scoreboard: the LLM model against every published serving row.

    uv run python bench/bench_accuracy.py            # twin and simulated replica, both splits
    uv run python bench/bench_accuracy.py --no-sim   # analytic twin only (seconds)
    uv run python bench/bench_accuracy.py --split held_out --by source,mode

Prints, per split and per group (source, mode, GPU, model family by default) and metric: rows,
rows not modelled, mean absolute percentage error, worst row and the share within ±15 % /
±25 %, for the analytic twin and for one simulated replica. Rows tagged ``fit`` may have set
coefficients; ``held_out`` rows never did (components/data/serving_calibration.csv).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.llm.accuracy import format_groups, score_rows, summarise  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-sim", action="store_true", help="analytic twin only")
    ap.add_argument("--split", choices=["fit", "held_out"], default=None)
    ap.add_argument("--by", default="source,mode,gpu,family", help="grouping columns")
    ap.add_argument("--rows", action="store_true", help="also print every row")
    a = ap.parse_args(argv)
    by = tuple(a.by.split(","))
    t0 = time.perf_counter()
    sim = not a.no_sim
    for split in ([a.split] if a.split else ["fit", "held_out"]):
        scores = score_rows(split=split, sim=sim)
        print(f"\n## {split}: {len(scores)} rows, {sum(1 for s in scores if s.not_modelled)} not modelled\n")
        print(format_groups(summarise(scores, by=by), by, sim=sim))
        print(f"\n### {split}, overall by mode and family\n")
        print(format_groups(summarise(scores, by=("mode", "family")), ("mode", "family"), sim=sim))
        if a.rows:
            print()
            for s in scores:
                errs = " ".join(f"{m}: twin {s.err('twin', m) if s.err('twin', m) is None else format(s.err('twin', m), '+.1%')}"
                                f" sim {s.err('sim', m) if s.err('sim', m) is None else format(s.err('sim', m), '+.1%')}"
                                for m in s.measured)
                print(f"{s.id:28} {s.not_modelled or errs}")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
