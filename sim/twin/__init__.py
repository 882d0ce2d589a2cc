"""The analytic twin: queueing formulas over the design's flow, in milliseconds, no SimPy.

* `sim.twin.analytic` — `estimate(design)`: per-station load, waits, end-to-end latency, cost.
* `sim.twin.flow` — visits per request after branches, cache hits, fan-outs and loops;
  end-to-end latency moments along the flow; the arrival moments before a component (what
  comes before an LLM's first token).
* `sim.twin.visits` — the visit equations v = e + vP, for components with several back edges
  and for nested loops (caps counted per request, as the engine does).
* `sim.twin.stations` — one station's analysis per kind (M/M/c, Allen–Cunneen, delays, LLMs).
* `sim.twin.queueing` — the formulas: Erlang C, response-time quantiles, MVA, Pollaczek–Khinchine.

Outside `sim/`, use the face: ``from sim import estimate``.
"""
