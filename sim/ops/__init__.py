"""Operations over time: failures and faults, retries and fallbacks, autoscaling, bursty and
replayed traffic, and the twin's N−1 view.

* ``model`` fields live in the design (``designs.model``: ``faults``, ``Edge.retry`` /
  ``fallback``, ``Workload.arrivals`` / ``trace`` / ``timeline_s``) and the catalogue
  (``components.operations``: ``failures``, ``zones``, ``autoscale``; ``error_rate`` on APIs).
* ``sim.ops.pool`` — a replicated pool whose replicas can fail, slow down, start cold and be
  removed (the ops stand-in for a FIFO pool); ``sim.ops.llm`` the same for an ``llm_server``;
  ``sim.ops.gate`` outages, slowness and error rates of external calls.
* ``sim.ops.retry`` — edges with a retry policy or a fallback, compiled into the routing.
* ``sim.ops.control`` — what happens over time: scheduled faults, random failures (MTBF/MTTR),
  the autoscaler, and the record of it all.
* ``sim.ops.traffic`` — bursty arrivals (gamma / lognormal gaps with a CV, MMPP) and CSV trace
  replay (own layout, Azure LLM inference traces, BurstGPT), with located errors.
* ``sim.ops.timeline`` — a timeline run: one simulation of a fixed horizon (the peak hour, a
  trace, or the whole day) with time series per window, availability with its interval,
  replica-hours and the autoscaled cost.
* ``sim.ops.sampled`` — a whole day by sampled windows (one per hour of the profile, plus a
  transition window where the twin's count changes), stitched, when a full day is over budget.
* ``sim.ops.nminus1`` — the twin with one replica (one zone) down, per component; the
  autoscaled replicas per hour and daily cost.
* ``sim.ops.factory`` — which station a component gets in a run; ``sim.ops.report`` — text
  for the CLI and rows for charts / CSV.

The engine hooks in at three places only: ``sim.des.stations.make_station`` (ops stations),
``sim.des.routing.build_nodes`` (retry / fallback edges) and ``sim.des.engine`` (timeline runs).
"""
