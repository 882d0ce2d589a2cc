"""The analytic twin: queueing formulas over the design's flow, in milliseconds, no SimPy.

* `sim.twin.analytic` — `estimate(design)`: per-station load, waits, end-to-end latency, cost.
* `sim.twin.flow` — visits per request after branches, cache hits, fan-outs and loops;
  end-to-end latency moments along the flow.
* `sim.twin.stations` — one station's analysis per kind (M/M/c, Allen–Cunneen, delays, LLMs).
* `sim.twin.queueing` — the formulas: Erlang C, response-time quantiles, MVA, Pollaczek–Khinchine.

Outside `sim/`, use the face: ``from sim import estimate``.
"""
