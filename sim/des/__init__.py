"""The discrete-event engine: SimPy's event heap driven by callbacks, one station per component.

* `sim.des.engine` — `simulate(design, seed=…)` and `compare(...)`: planning (warm-up, batches,
  the stopping rule), refusals, the result record.
* `sim.des.run` — one run: arrivals (open, closed loop, 24-hour profile), request routing, batches.
* `sim.des.chain`, `chain_station` — the same run without events for a feed-forward flow of
  FIFO stations (the Kiefer–Wolfowitz recursion; chosen by the engine, `RunResult.engine_path`).
* `sim.des.delay_chain` — inside a run, the entry's fixed-latency FIFO stations (gateway, load
  balancer) by the same recursion: one event per request for the whole chain.
* `sim.des.routing` — the flow compiled into nodes (branches, fan-out/join, loops, queues).
* `sim.des.stations`, `fifo`, `station_base` — the stations per kind and the fast FIFO path.
* `sim.des.events`, `request` — the event helper on SimPy's heap; requests and seeded streams.
* `sim.des.workload` — arrival processes and request classes (token lengths).
* `sim.des.stats`, `summary` — batch means, MSER-5, log histograms, percentiles with CIs,
  Little's law; the flat records that become a `RunResult`.
* `sim.des.control` — control variates for LLM designs: each batch's arrival span and token
  counts (known means), and the regression that turns batch statistics into the estimate.

Only this package, `sim.llm` and `sim.providers` import simpy. Outside `sim/`, use the face:
``from sim import simulate, compare``.
"""
