"""`size(design)`: the cheapest design that meets every SLO — the twin searches, the simulator verifies.

1. **Space** (``sim.search.space``): the discrete candidates; families that cannot hold the
   model are rejected with their numbers.
2. **Twin** (``sim.search.sizing``): candidates in order of a cheap cost lower bound
   (``sim.search.bounds``), in rounds of `ROUND` (a fixed size, so the set evaluated never
   depends on the number of workers); each is sized by bisection on its replica counts. A
   candidate whose lower bound already exceeds the budget, or the K-th cheapest passing cost
   found so far, cannot be among the K cheapest and is skipped ("pruned").
3. **Verify** (``sim.search.verify``): the K cheapest passing candidates, simulated on the
   same seed, longest runs first; each one's largest-cost component is adjusted up until the
   CI's upper ends meet every SLO, then down only where one fewer could beat the cheapest
   verified cost (`_verify_top`). The winner is the cheapest verified candidate; candidates
   whose count or rank the simulation changed are reported as overturned. With `n_minus_1`
   the winner is simulated once more with one replica of that component down, and gets one
   more replica if that misses (`_n_minus_1`).

Usage::

    >>> from designs.io import load_design
    >>> from sim import size
    >>> # r = size(load_design("designs/library/llm_serving.yaml"), verify=5, seed=0)
    >>> # r.winner.candidate, r.winner.replicas, r.winner.cost_per_day_usd, r.status

Stops early on `cancel` (a `threading.Event`) or after `max_seconds`, and says so
(``partial``, ``stopped_by``) with the best found so far.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

from designs.model import Design

from .bounds import cost_lower_bound
from .executor import Executor, make_executor
from .records import Baseline, Choice, Overturned, RejectedFamily, SimCheck, SizeResult
from .sizing import Sized, TwinEvaluator, size_candidate
from .space import Candidate, Space, SpaceError, resolve
from .verify import SIM_PRECISION, verify_candidate

__all__ = ["size", "SearchError", "ROUND"]

ROUND = 16
"""Candidates sized per round between pruning decisions (fixed: results never depend on workers)."""


class SearchError(ValueError):
    """The search cannot run as asked (too many candidates, a bad executor); the message says why."""


# --- tasks (module level: they travel to worker processes and Dask workers) ----------------

_EVALUATORS: dict = {}


def _evaluator(design_json: str, headroom: float) -> TwinEvaluator:
    # One evaluator per thread: Dask thread workers share this process, and an evaluator's
    # memo and evaluation counter are not safe to share (a shared counter made each thread's
    # per-candidate count include the other thread's evaluations).
    key = (threading.get_ident(), hash(design_json), headroom)
    ev = _EVALUATORS.get(key)
    if ev is None:
        if len(_EVALUATORS) > 8:
            _EVALUATORS.clear()
        ev = _EVALUATORS[key] = TwinEvaluator(Design.model_validate_json(design_json), headroom)
    return ev


def _size_task(payload: tuple) -> list[Sized]:
    design_json, headroom, sized, n1, cands = payload
    ev = _evaluator(design_json, headroom)
    return [size_candidate(ev, c, sized, n_minus_1=n1) for c in cands]


def _verify_task(payload: tuple) -> dict:
    design_json, cand, counts, adjust, kw = payload
    kw = dict(kw)
    d = _with_headroom(Design.model_validate_json(design_json), kw.pop("headroom", 1.0))
    return verify_candidate(d, cand, counts, adjust, **kw)


def _expected_work(design: Design, s: Sized, counts: dict[str, int], headroom: float) -> int:
    """Requests the first verification run of `s` at `counts` will simulate (warm-up and the
    minimum batches of `sim.des.engine`'s plan): the order in which runs are handed to workers."""
    from .verify import expected_requests

    return expected_requests(_with_headroom(s.candidate.apply(design, counts), headroom))


def _with_headroom(design: Design, headroom: float) -> Design:
    """The design simulated at headroom × its peak rate (what the twin sized for)."""
    if headroom == 1.0:
        return design
    wl = design.workload
    if wl.closed_loop or wl.batch is not None:
        return design
    if wl.arrival_rps is not None:
        upd = {"arrival_rps": wl.arrival_rps * headroom}
    else:
        upd = {"peak_to_average": min(100.0, wl.peak_to_average * headroom)}
    return design.model_copy(update={"workload": wl.model_copy(update=upd)})


# --- helpers ---------------------------------------------------------------------------------


def _per_1k(design: Design, usd_day: float) -> float | None:
    rpd = design.workload.requests_per_day
    return usd_day / (rpd / 1000) if design.workload.batch is None and rpd > 0 else None


def _choice(design: Design, s: Sized, rank: int = 0) -> Choice:
    p = s.point
    counts = s.counts or (p.counts if p else {})
    b = p.binding if p else None
    return Choice(
        candidate=s.candidate.label(), family=s.candidate.family(),
        settings={cid: dict(v) for cid, v in s.candidate.settings}, replicas=dict(counts),
        cost_per_day_usd=s.cost_per_day_usd, cost_per_1k_requests_usd=_per_1k(design, s.cost_per_day_usd),
        twin={m: v for m, v in (p.values.items() if p else [])}, binding_metric=b,
        binding_value=p.values.get(b) if p and b else None, binding_target=p.targets.get(b) if p and b else None,
        rank=rank)


def _pareto(frontier: list[Choice]) -> None:
    """Mark the candidates no other beats on both cost and the binding metric's share of its target."""
    best = math.inf
    for c in sorted(frontier, key=lambda c: (c.cost_per_day_usd, c.rank)):
        r = (c.binding_value / c.binding_target) if c.binding_value is not None and c.binding_target else 0.0
        if r < best - 1e-12:
            c.pareto = True
            best = r


def _ordinal(n: int) -> str:
    return f"{n}{'tsnrhtdd'[(n // 10 % 10 != 1) * (n % 10 < 4) * n % 10::4]}"


def _adjust_component(design: Design, choice: Choice) -> str | None:
    """The sized component with the largest share of the cost (the one simulation adjusts)."""
    from sim.cost import daily_cost

    if not choice.replicas:
        return None
    _, lines = daily_cost(design)
    by_id = {ln.id: ln.usd_per_day for ln in lines}
    return max(choice.replicas, key=lambda cid: (by_id.get(cid, 0.0), cid))


def _baseline(ev: TwinEvaluator, design: Design, sp: Space) -> Baseline:
    counts = {cid: getattr(design.component(cid), fld) for cid, (fld, _, _) in sp.sized.items()}
    p = ev.evaluate(Candidate(-1, ()), counts)
    over = design.slo.daily_budget_usd is not None and p.cost_per_day_usd > design.slo.daily_budget_usd
    return Baseline(replicas=counts, cost_per_day_usd=p.cost_per_day_usd, meets=p.meets and not over)


def _winner_design(design: Design, cand: Candidate, counts: dict[str, int], note: str) -> dict:
    from designs.io import design_to_data

    d = cand.apply(design, counts)
    data = design_to_data(d)
    data["assumptions"] = list(data.get("assumptions", [])) + [note]
    Design.model_validate(data)  # the winner must be a valid design file
    return data


# --- the search -------------------------------------------------------------------------------


def size(design: Design, *, space=None, verify: int | None = None, n_minus_1: bool | None = None,
         headroom: float | None = None, objective: str | None = None, workers: int | None = 1,
         executor: Executor | str | None = None, seed: int = 0, max_seconds: float = 300.0,
         sim_precision: float = SIM_PRECISION, progress: Callable[[float, str], None] | None = None,
         cancel=None) -> SizeResult:
    """Search `design`'s space for the cheapest design meeting every SLO (module docstring).

    `space` is a `designs.space.SearchSpace` (default: the design's `search:` block, else the
    default space); `verify`, `n_minus_1`, `headroom`, `objective` override the block's
    options. `executor` is an `Executor`, a Dask address, or None for `workers` local
    processes. Raises `SearchError` for a space too large to search; every other outcome,
    including "nothing fits", is a `SizeResult` with its `status` and `message`.
    """
    t0 = time.perf_counter()
    deadline = t0 + max_seconds
    say = progress or (lambda f, m: None)
    try:
        sp = resolve(design, space, n_minus_1=n_minus_1, headroom=headroom, objective=objective, verify=verify)
    except SpaceError as e:
        if "max_candidates" in str(e):
            raise SearchError(str(e)) from None
        return SizeResult(design=design.name, status="nothing_fits", message=str(e),
                          objective=(space or design.search).objective if (space or design.search) else "cost_per_day",
                          headroom=headroom or 1.0, n_minus_1=bool(n_minus_1), seed=seed, winner=None,
                          wall_s=time.perf_counter() - t0)
    opts = sp.options
    n1, K = opts.n_minus_1, opts.verify
    budget = design.slo.daily_budget_usd
    design_json = design.model_dump_json(by_alias=True)
    ev = TwinEvaluator(design, opts.headroom)
    res = SizeResult(design=design.name, status="ok", message="", objective=opts.objective, headroom=opts.headroom,
                     n_minus_1=n1, seed=seed, winner=None, candidates_total=len(sp.candidates),
                     rejected=[RejectedFamily(family=r.family, reason=r.reason) for r in sp.rejected])
    if design.slo.availability is not None and not n1 and design.workload.batch is None:
        res.warnings.append(f"availability {design.slo.availability:.4%} is stated; the twin cannot judge it — "
                            "--n-minus-1 sizes for one replica of each pool down")
    res.baseline = _baseline(ev, design, sp)
    if opts.headroom != 1.0 and not ev.fast:
        res.warnings.append("headroom applies to open-loop traffic only; this design (a pipeline or a closed loop) "
                            "is sized at its own load")

    own = executor if isinstance(executor, Executor) else None
    ex = own or make_executor(executor if isinstance(executor, str) else None, workers)
    try:
        return _search(design, design_json, sp, ev, ex, res, K=K, n1=n1, budget=budget, seed=seed,
                       deadline=deadline, t0=t0, sim_precision=sim_precision, say=say, cancel=cancel)
    finally:
        if own is None:
            ex.close()


def _stop_reason(cancel, deadline: float) -> str | None:
    if cancel is not None and cancel.is_set():
        return "interrupted"
    if time.perf_counter() > deadline:
        return "max_seconds"
    return None


def _search(design, design_json, sp, ev, ex, res: SizeResult, *, K, n1, budget, seed, deadline, t0,
            sim_precision, say, cancel) -> SizeResult:
    # --- 2. the twin, cheapest bound first --------------------------------------------------
    bounds = []
    for c in sp.candidates:
        lb, lbc = cost_lower_bound(ev, c, sp.sized, n1)
        bounds.append((lb, c.index, c, lbc))
    bounds.sort(key=lambda t: (t[0], t[1]))
    done: list[Sized] = []
    pruned: dict[str, tuple[int, float, str]] = {}  # family -> (count, lowest bound, why)
    keep = max(K, 1)
    over_budget = None  # (bound, candidate, counts) of the cheapest candidate pruned by the budget
    i = 0
    while i < len(bounds):
        stop = _stop_reason(cancel, deadline)
        if stop:
            res.stopped_by, res.partial = stop, True
            break
        passing = sorted(s.cost_per_day_usd for s in done if s.meets and (budget is None or s.cost_per_day_usd <= budget))
        threshold = passing[keep - 1] if len(passing) >= keep else math.inf
        batch = []
        while i < len(bounds) and len(batch) < ROUND:
            lb, _, c, lbc = bounds[i]
            i += 1
            why = None
            if budget is not None and lb > budget * (1 + 1e-9):
                why = f"needs at least ${lb:,.0f}/day for throughput alone > ${budget:,.0f}/day budget"
                if over_budget is None or lb < over_budget[0]:
                    over_budget = (lb, c, lbc)
            elif lb > threshold * (1 + 1e-9):
                why = f"at least ${lb:,.0f}/day for throughput alone, above the {_ordinal(keep)} cheapest passing (${threshold:,.0f}/day)"
            if why:
                n, low, w = pruned.get(c.family(), (0, math.inf, why))
                pruned[c.family()] = (n + 1, min(low, lb), w if low <= lb else why)
                res.candidates_pruned += 1
                continue
            batch.append(c)
        if not batch:
            continue
        chunks = [batch[j::ex.workers] for j in range(min(ex.workers, len(batch)))]
        for out in ex.submit_all(_size_task, [(design_json, sp.options.headroom, sp.sized, n1, ch) for ch in chunks],
                                 cancel=cancel):
            done.extend(out)
        res.candidates_evaluated = len(done)
        say(0.5 * i / len(bounds), f"twin: {len(done):,} sized, {res.candidates_pruned:,} pruned of {len(bounds):,}")
    done.sort(key=lambda s: s.candidate.index)
    res.twin_evaluations = sum(s.evaluations for s in done)

    meets = [s for s in done if s.meets]
    ok = [s for s in meets if budget is None or s.cost_per_day_usd <= budget * (1 + 1e-9)]
    ok.sort(key=lambda s: (s.cost_per_day_usd, s.candidate.index))
    res.frontier = [_choice(design, s, rank=k + 1) for k, s in enumerate(ok)]
    _pareto(res.frontier)
    _families(res, done, ok, pruned, budget)
    if not ok:
        return _no_answer(design, res, done, meets, budget, t0, over_budget)

    # --- 3. verify the cheapest K by simulation ------------------------------------------------
    top = res.frontier[:K]
    by_label = {s.candidate.label(): s for s in ok}
    if top and not _stop_reason(cancel, deadline):
        _verify_top(design, design_json, sp, ev, ex, res, top, by_label, n1=n1, seed=seed, deadline=deadline,
                    sim_precision=sim_precision, say=say, cancel=cancel)
    verified = [c for c in top if c.verified]
    win = None
    if n1 and verified and not _stop_reason(cancel, deadline):
        # --- N−1 by simulation: the cheapest verified candidate whose N−1 holds ---------------
        win = _n_minus_1(design, sp, res, verified, by_label, seed=seed, sim_precision=sim_precision,
                         deadline=deadline, cancel=cancel)
    elif verified:
        win = _cheapest(verified)
    if win is None:
        win = res.frontier[0]
        if K:
            res.warnings.append("no candidate met every SLO in simulation within the time allowed; "
                                "the winner is the twin's cheapest, unverified")
    twin_first = res.frontier[0]
    if win is not twin_first and twin_first.verified is not None:
        res.warnings.append(f"the simulation reordered the candidates: the twin's cheapest ({twin_first.candidate}, "
                            f"${twin_first.cost_per_day_usd:,.0f}/day) is not the verified cheapest ({win.candidate}, "
                            f"twin rank {win.rank})")
    counts = win.sim_replicas or win.replicas

    res.winner = win
    cost = win.sim_cost_per_day_usd if win.verified else win.cost_per_day_usd
    how = (f"verified by simulation (seed {res.seed}, 95 % CI upper ends)" if win.verified else "by the analytic twin")
    res.winner_design = _winner_design(
        design, by_label[win.candidate].candidate, counts,
        f"Sized by `sdw size` ({res.objective}, headroom {res.headroom:g}{', N−1' if n1 else ''}): "
        f"{win.candidate}; replicas {', '.join(f'{k} {v}' for k, v in counts.items())}; ${cost:,.0f}/day, {how}")
    base = res.baseline
    vs = (f" (the design as given: ${base.cost_per_day_usd:,.0f}/day, "
          f"{'meets' if base.meets else 'misses'} its SLOs by the twin)") if base else ""
    res.message = (f"cheapest passing design: {win.candidate} with "
                   f"{', '.join(f'{v} {k}' for k, v in counts.items())} at ${cost:,.0f}/day, {how}{vs}"
                   + (" — partial: stopped early" if res.partial else ""))
    res.wall_s = time.perf_counter() - t0
    return res


def _verify_top(design, design_json, sp, ev, ex, res: SizeResult, top: list[Choice], by_label: dict, *, n1, seed,
                deadline, sim_precision, say, cancel) -> None:
    """Verify `top` by simulation, in two deterministic rounds (each on every worker).

    1. Each candidate at the twin's counts, one replica more while it misses.
    2. One fewer (and on while it passes) only where the cheaper count could beat the cheapest
       cost round 1 verified: a step down that cannot change the answer is not simulated (at
       a count the twin already fails it is the costliest run of all — ρ near 1 — and on
       rag_qa it was most of the search's time). Without ``--n-minus-1`` only.
    """
    kws, adjs = [], []
    for ch in top:
        s = by_label[ch.candidate]
        adj = _adjust_component(design, ch)
        fld_lo = s.stable_counts.get(adj, 1) if adj else 1
        kws.append(dict(seed=seed, floor=max(fld_lo, sp.sized[adj][1] if adj else 1),
                        ceiling=sp.sized[adj][2] if adj else 1, precision=sim_precision,
                        headroom=sp.options.headroom, cancel=cancel if ex.workers == 1 else None))
        adjs.append(adj)

    def run_round(items: list[tuple[int, dict, dict]], label: str, lo: float, hi: float) -> dict[int, dict]:
        # Longest first (by the requests each first run will simulate), so that two workers
        # are not left with one long run at the end; the caller applies results in rank order,
        # so the order of submission changes nothing but the wall time.
        items = sorted(items, key=lambda t: (-_expected_work(design, by_label[top[t[0]].candidate], t[1],
                                                             sp.options.headroom), t[0]))
        left = max(5.0, deadline - time.perf_counter())
        tasks = [(design_json, by_label[top[k].candidate].candidate, counts, adjs[k], {**kw, "max_seconds": left})
                 for k, counts, kw in items]
        outs: dict[int, dict] = {}
        for n, out in enumerate(ex.submit_all(_verify_task, tasks, cancel=cancel)):
            outs[items[n][0]] = out
            say(lo + (hi - lo) * (n + 1) / len(items), f"{label} {n + 1}/{len(items)}")
            if _stop_reason(cancel, deadline) and n + 1 < len(items):
                break
        return outs

    say(0.5, f"verifying the {len(top)} cheapest by simulation")
    outs = run_round([(k, ch.replicas, {**kws[k], "allow_down": False}) for k, ch in enumerate(top)], "verified",
                     0.5, 0.85)
    passed = [o["cost_per_day_usd"] for o in outs.values() if o["met"]]
    down = []
    if not n1 and passed and not _stop_reason(cancel, deadline):
        best = min(passed)
        for k, o in sorted(outs.items()):
            adj = adjs[k]
            if not o["met"] or adj is None or o["counts"][adj] - 1 < kws[k]["floor"]:
                continue
            if o["counts"][adj] != top[k].replicas.get(adj):
                continue  # round 1 went up: one fewer is a count it simulated and saw miss
            fewer = {**o["counts"], adj: o["counts"][adj] - 1}
            if ev.evaluate(by_label[top[k].candidate].candidate, fewer).cost_per_day_usd < best * (1 - COST_TIE):
                down.append((k, fewer, {**kws[k], "allow_down": True, "allow_up": False,
                                        "max_steps": max(1, 6 - o["runs"])}))
        if down:
            say(0.85, f"simulating {len(down)} candidate{'s' if len(down) != 1 else ''} one replica down")
    for k, o in run_round(down, "one fewer", 0.85, 1.0).items() if down else ():
        first = outs[k]
        outs[k] = {**(o if o["met"] else first), "runs": first["runs"] + o["runs"], "log": first["log"] + o["log"],
                   "cut": first["cut"] + o["cut"], "stopped": o["stopped"] or first["stopped"]}
    for k in sorted(outs):
        _apply_verification(design, res, top[k], outs[k], adjs[k])
    if _stop_reason(cancel, deadline) and any(c.verified is None for c in top):
        res.stopped_by, res.partial = _stop_reason(cancel, deadline), True
        ex.cancel()


COST_TIE = 1e-4
"""Verified costs within this share of each other are a tie, broken by the twin's rank: a
simulated cost differs from the twin's only by the measured per-request charges (a few
cents a day), which must not reorder candidates the twin found equally cheap."""


def _cheapest(chs: list[Choice]) -> Choice:
    low = min(c.sim_cost_per_day_usd for c in chs)
    return min((c for c in chs if c.sim_cost_per_day_usd <= low * (1 + COST_TIE)), key=lambda c: c.rank)


def _n_minus_1(design: Design, sp: Space, res: SizeResult, verified: list[Choice], by_label: dict, *, seed: int,
               sim_precision: float, deadline: float, cancel) -> Choice | None:
    """The cheapest verified candidate that still meets every SLO in simulation with one
    replica of its adjusted component down (``--n-minus-1``: the twin sized for it, the
    simulation verifies it). A candidate whose N−1 run misses gets one replica more — its
    N−1 is then the run already verified at the old count — and is simulated at the new count
    (costlier, so the next cheapest may win). None when every candidate failed."""
    from .verify import _run, sim_checks

    pool = list(verified)
    held: set[str] = set()  # candidates whose N−1 is known to hold
    headroom = sp.options.headroom
    while pool:
        ch = _cheapest(pool)
        adj = _adjust_component(design, ch)
        counts = ch.sim_replicas or ch.replicas
        if ch.candidate in held or not adj or counts[adj] < 2:
            return ch
        if _stop_reason(cancel, deadline):
            res.warnings.append(f"{ch.candidate}: N−1 not simulated (stopped early)")
            return ch
        cand = by_label[ch.candidate].candidate

        def run(c: dict[str, int]):
            r = _run(_with_headroom(cand.apply(design, c), headroom), seed, sim_precision,
                     max(5.0, deadline - time.perf_counter()), cancel)
            res.simulations += 1
            ch.sim_runs += 1
            return r, sim_checks(design, r)

        _, down = run({**counts, adj: counts[adj] - 1})
        ch.n_minus_1_sim = [c for c in down if c.metric != "cost_per_day_usd"]
        if all(c.met for c in ch.n_minus_1_sim):
            return ch
        miss = ", ".join(f"{c.metric} upper {'n/a' if c.upper is None else f'{c.upper:,.4g}'} vs {c.target:,.4g}"
                         for c in ch.n_minus_1_sim if not c.met)
        up = {**counts, adj: counts[adj] + 1}
        r, chk = run(up)
        was = ch.sim_cost_per_day_usd
        # The new count's N−1 is the count verified before: every SLO met there.
        ch.n_minus_1_sim = [c for c in ch.sim if c.metric != "cost_per_day_usd"]
        ch.sim, ch.sim_replicas, ch.sim_cost_per_day_usd = chk, up, r.cost_per_day_usd
        ok = all(c.met for c in chk)
        res.warnings.append(f"{ch.candidate}: with one {adj} replica down ({counts[adj] - 1}) the simulation misses: "
                            f"{miss}; " + (f"{up[adj]} replicas instead (+${r.cost_per_day_usd - was:,.0f}/day)" if ok
                                           else f"and {up[adj]} replicas miss too: out"))
        tr = ch.replicas.get(adj)
        res.overturned = [o for o in res.overturned if o.candidate != ch.candidate]
        res.overturned.append(Overturned(
            candidate=ch.candidate, component=adj, twin_replicas=tr, sim_replicas=up[adj],
            twin_cost_per_day_usd=ch.cost_per_day_usd, sim_cost_per_day_usd=r.cost_per_day_usd,
            delta_usd_per_day=r.cost_per_day_usd - ch.cost_per_day_usd,
            detail=f"{adj}: twin {tr} → simulation {up[adj]} for N−1 (with {counts[adj] - 1} up it misses {miss})"
                   + ("" if ok else f"; {up[adj]} misses too")))
        if ok:
            held.add(ch.candidate)
        else:
            ch.verified = False
            pool.remove(ch)
    return None


def _apply_verification(design: Design, res: SizeResult, ch: Choice, out: dict, adj: str | None) -> None:
    res.simulations += out["runs"]
    ch.sim_runs = out["runs"]
    for c in out.get("cut", []):
        res.warnings.append(f"{ch.candidate}: verification run {c} — its interval is wider than the precision "
                            "rule asks and the verdict depends on the machine's speed; raise --max-seconds")
    ch.sim = [SimCheck(**c) for c in out["checks"]]
    ch.verified = bool(out["met"])
    ch.sim_replicas = out["counts"]
    ch.sim_cost_per_day_usd = out["cost_per_day_usd"]
    if adj is None:
        return
    tr, sr = ch.replicas.get(adj), out["counts"].get(adj)
    if tr != sr or not out["met"]:
        d = out["cost_per_day_usd"] - ch.cost_per_day_usd
        detail = (f"{adj}: twin {tr} → simulation {sr} ({'+' if d >= 0 else '−'}${abs(d):,.0f}/day)" if out["met"]
                  else f"{adj}: misses in simulation even at {sr} ({'; '.join(out['log'][-2:])})")
        res.overturned.append(Overturned(candidate=ch.candidate, component=adj, twin_replicas=tr, sim_replicas=sr,
                                         twin_cost_per_day_usd=ch.cost_per_day_usd,
                                         sim_cost_per_day_usd=out["cost_per_day_usd"], delta_usd_per_day=d, detail=detail))


def _families(res: SizeResult, done: list[Sized], ok: list[Sized], pruned: dict, budget) -> None:
    """One line per hardware family: its best candidate's rank and cost, or why it fails."""
    rank = {s.candidate.index: k + 1 for k, s in enumerate(ok)}
    fams: dict[str, list[Sized]] = {}
    for s in done:
        fams.setdefault(s.candidate.family(), []).append(s)
    for fam, ss in fams.items():
        passing = [s for s in ss if s.candidate.index in rank]
        if passing:
            b = min(passing, key=lambda s: rank[s.candidate.index])
            n = rank[b.candidate.index]
            counts = ", ".join(f"{v} {k}" for k, v in (b.counts or {}).items())
            why = f"meets SLOs at {counts}: ${b.cost_per_day_usd:,.0f}/day, {_ordinal(n)}"
        else:
            over = [s for s in ss if s.meets]
            if over:
                b = min(over, key=lambda s: s.cost_per_day_usd)
                why = f"meets SLOs only at ${b.cost_per_day_usd:,.0f}/day > ${budget:,.0f}/day budget"
            else:
                b = min(ss, key=lambda s: (s.miss, s.candidate.index))
                why = b.reason
        res.rejected.append(RejectedFamily(family=fam, reason=why))
    for fam, (n, low, why) in pruned.items():
        if fam not in fams:
            res.rejected.append(RejectedFamily(family=fam, reason=f"{n} candidate{'s' if n != 1 else ''} skipped: {why}"))


def _no_answer(design, res: SizeResult, done, meets, budget, t0, over_budget=None) -> SizeResult:
    if not meets and not done and over_budget is not None:
        lb, c, counts = over_budget
        res.status = "over_budget"
        res.closest = _choice(design, Sized(c, None, None, lb, "", 0.0, 0, counts))
        res.closest.replicas = dict(counts)
        res.message = (f"budget too low: even {c.label()} needs at least "
                       f"{', '.join(f'{v} {k}' for k, v in counts.items())} to keep up, ${lb:,.0f}/day, "
                       f"${lb - budget:,.0f} over the ${budget:,.0f}/day budget")
    elif meets:  # SLOs reachable, but not within the budget
        b = min(meets, key=lambda s: (s.cost_per_day_usd, s.candidate.index))
        res.status = "over_budget"
        res.closest = _choice(design, b)
        res.message = (f"budget too low: the cheapest design meeting every SLO is {b.candidate.label()} at "
                       f"${b.cost_per_day_usd:,.0f}/day, ${b.cost_per_day_usd - budget:,.0f} over the "
                       f"${budget:,.0f}/day budget")
    elif done:
        b = min(done, key=lambda s: (s.miss, s.candidate.index))
        res.status = "slo_unreachable"
        res.closest = _choice(design, b)
        res.message = (f"no candidate meets every SLO; the closest is {b.candidate.label()}: {b.reason}"
                       + (f" (misses by {b.miss:.0%})" if math.isfinite(b.miss) else ""))
    else:
        res.status = "slo_unreachable"
        res.message = "no candidate was sized before the search stopped" + (" (budget below every bound)" if budget else "")
    if res.partial:
        res.message += " — partial: stopped early"
    res.wall_s = time.perf_counter() - t0
    return res
