"""Which station a component gets when operations act on it.

`station_for(comp, ctx)` is what `sim.des.routing.build_nodes` calls for every component: the
ops station when something over time touches the component in this run — a fault, random
failures or an autoscaler (only in a timeline run, whose plan is ``ctx.extra["ops"]``), or an
error rate (any run) — else the engine's own station from `sim.des.stations.make_station`.

* replicated FIFO kinds → `sim.ops.pool.ReplicaPool` around the kind's own station;
* ``llm_server`` → `sim.ops.llm.OpsLLMStation`;
* external kinds (``llm_api``, ``judge``, ``tool``, ``object_storage``) → `sim.ops.gate.Gate`.
"""

from __future__ import annotations

from sim.des.fifo import FifoStation
from sim.des.stations import SimpleLLMStation, make_station

__all__ = ["station_for", "REPLICATED", "EXTERNAL"]

REPLICATED = frozenset({"service", "load_balancer", "api_gateway", "cache", "database", "vector_db",
                        "keyword_search", "guardrail", "llm_server"})
EXTERNAL = frozenset({"llm_api", "judge", "tool", "object_storage"})


def _touched(comp, ctx) -> bool:
    plan = ctx.extra.get("ops")
    return plan is not None and plan.touches(comp)


def station_for(comp, ctx):
    """The station for `comp` in this run (see the module docstring)."""
    kind = comp.kind
    touched = _touched(comp, ctx)
    if touched and kind == "llm_server":
        from sim.ops.llm import OpsLLMStation

        return OpsLLMStation(comp, ctx)
    if touched and kind in REPLICATED:
        inner = make_station(comp, ctx)
        if isinstance(inner, FifoStation) and not isinstance(inner, SimpleLLMStation):
            from sim.ops.pool import ReplicaPool

            return ReplicaPool(comp, ctx, inner)
        return inner
    if kind in EXTERNAL and (touched or getattr(comp, "error_rate", 0.0)):
        from sim.ops.gate import Gate

        return Gate(make_station(comp, ctx), comp, ctx)
    return make_station(comp, ctx)
