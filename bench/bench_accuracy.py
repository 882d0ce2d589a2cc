"""The accuracy scoreboard: the LLM model against every published serving row.

    uv run python bench/bench_accuracy.py            # twin and simulated replica, both splits
    uv run python bench/bench_accuracy.py --no-sim   # analytic twin only (seconds)
    uv run python bench/bench_accuracy.py --split held_out --by source,mode
    uv run python bench/bench_accuracy.py --ids 'T-L70-*' --rows
    uv run python bench/bench_accuracy.py --gap      # where the twin and the simulation differ

Prints, per split and per group (source, mode, GPU, model family by default) and metric: rows,
rows not modelled, mean absolute percentage error, worst row and the share within ±15 % /
±25 %, for the analytic twin and for one simulated replica. Rows tagged ``fit`` may have set
coefficients; ``held_out`` rows never did (components/data/serving_calibration.csv).
``sdw accuracy`` prints the same table (and ``--json``). ``--gap`` prints instead how far the
simulated replica lands from the twin on the max-throughput rows (mean |sim/twin − 1| by model
family, and the signed mean by how many waves of admitted sequences the run's requests make).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.llm.accuracy import accuracy_scoreboard, format_accuracy, score_rows  # noqa: E402


def gap_report(ids: str | None = None) -> str:
    """Twin vs simulated replica on the max-throughput rows (both splits: no fitting here)."""
    from fnmatch import fnmatch

    from components.hardware import calibration_rows
    from sim.llm.accuracy import run_shape

    rows = {r["id"]: r for r in calibration_rows() if r["mode"] == "max_throughput" and (not ids or fnmatch(r["id"], ids))}
    fam, waves = {}, {}
    for sc in score_rows(list(rows.values()), sim=True):
        t, m = sc.twin.get("throughput"), sc.sim.get("throughput")
        if not t or not m:
            continue
        r = rows[sc.id]
        n, cap = run_shape(r)
        n_over_s = n / cap.sh.seqs
        g = m / t - 1
        family = "MoE" if r.get("arch") == "moe" else "dense"
        fam.setdefault(family, []).append(g)
        key = "< 2 waves" if n_over_s < 2 else "2-5 waves" if n_over_s <= 5 else "> 5 waves"
        waves.setdefault((family, key), []).append(g)
    out = ["family | rows | mean abs(sim/twin - 1)", "---|---|---"]
    out += [f"{k} | {len(v)} | {100 * sum(map(abs, v)) / len(v):.1f} %" for k, v in sorted(fam.items())]
    out += ["", "family | requests / admitted sequences | rows | mean sim/twin - 1", "---|---|---|---"]
    out += [f"{f} | {w} | {len(v)} | {100 * sum(v) / len(v):+.1f} %" for (f, w), v in sorted(waves.items())]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-sim", action="store_true", help="analytic twin only")
    ap.add_argument("--split", choices=["fit", "held_out"], default=None)
    ap.add_argument("--by", default="source,mode,gpu,family", help="grouping columns")
    ap.add_argument("--ids", default=None, help="only rows whose id matches this pattern (e.g. 'T-L70-*')")
    ap.add_argument("--rows", action="store_true", help="also print every row")
    ap.add_argument("--gap", action="store_true", help="twin vs simulated replica on max-throughput rows")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    if a.gap:
        print(gap_report(a.ids))
        print(f"\n({time.perf_counter() - t0:.0f} s)")
        return 0
    board = accuracy_scoreboard(splits=(a.split,) if a.split else ("fit", "held_out"), sim=not a.no_sim,
                       by=tuple(a.by.split(",")), ids=a.ids)
    print(format_accuracy(board, rows=a.rows))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
