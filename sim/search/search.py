"""`size(design)`: the cheapest design that meets every SLO — the twin searches, the simulator verifies.

1. **Space** (``sim.search.space``): the discrete candidates; families that cannot hold the
   model are rejected with their numbers.
2. **Twin** (``sim.search.sizing``): candidates in order of a cheap cost lower bound
   (``sim.search.bounds``), in rounds of `ROUND` (a fixed size, so the set evaluated never
   depends on the number of workers); each is sized by bisection on its replica counts. A
   candidate whose lower bound already exceeds the budget, or the K-th cheapest passing cost
   found so far, cannot be among the K cheapest and is skipped ("pruned").
3. **Verify** (``sim.search.verify``): the K cheapest passing candidates, simulated on the
   same seed; each one's largest-cost component is adjusted until the CI's upper ends meet
   every SLO. The winner is the cheapest verified candidate; candidates whose count or rank the
   simulation changed are reported as overturned. With `n_minus_1` the winner is simulated
   once more with one replica of that component down.

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
        tasks = []
        for ch in top:
            s = by_label[ch.candidate]
            adj = _adjust_component(design, ch)
            fld_lo = s.stable_counts.get(adj, 1) if adj else 1
            left = max(5.0, deadline - time.perf_counter())
            kw = dict(seed=seed, floor=max(fld_lo, sp.sized[adj][1] if adj else 1), ceiling=sp.sized[adj][2] if adj else 1,
                      allow_down=not n1, precision=sim_precision, headroom=sp.options.headroom,
                      max_seconds=left, cancel=cancel if ex.workers == 1 else None)
            tasks.append((design_json, s.candidate, ch.replicas, adj, kw))
        say(0.5, f"verifying the {len(top)} cheapest by simulation")
        for k, (ch, out) in enumerate(zip(top, ex.submit_all(_verify_task, tasks, cancel=cancel))):
            _apply_verification(design, res, ch, out, tasks[k][3])
            say(0.5 + 0.5 * (k + 1) / len(top), f"verified {k + 1}/{len(top)}")
            if _stop_reason(cancel, deadline) and k + 1 < len(top):
                break
        if _stop_reason(cancel, deadline) and any(c.verified is None for c in top):
            res.stopped_by, res.partial = _stop_reason(cancel, deadline), True
            ex.cancel()
    verified = [c for c in top if c.verified]
    if verified:
        win = min(verified, key=lambda c: (c.sim_cost_per_day_usd, c.rank))
    else:
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
    # --- N-1 by simulation for the winner -----------------------------------------------------
    if n1 and win.verified and not _stop_reason(cancel, deadline):
        adj = _adjust_component(design, win)
        if adj and counts[adj] >= 2:
            s = by_label[win.candidate]
            from .verify import _run, sim_checks

            down = {**counts, adj: counts[adj] - 1}
            r = _run(_with_headroom(s.candidate.apply(design, down), sp.options.headroom), seed, sim_precision,
                     max(5.0, deadline - time.perf_counter()), cancel)
            res.simulations += 1
            win.n_minus_1_sim = [c for c in sim_checks(design, r) if c.metric != "cost_per_day_usd"]
            if not all(c.met for c in win.n_minus_1_sim):
                res.warnings.append(f"with one {adj} replica down the simulation misses: " + ", ".join(
                    f"{c.metric} upper {'n/a' if c.upper is None else f'{c.upper:,.4g}'} vs {c.target:,.4g}"
                    for c in win.n_minus_1_sim if not c.met))

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
