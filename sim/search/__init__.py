"""Sizing search (`sdw size`): the cheapest design that meets every SLO, verified by simulation.

* `space` — the discrete candidates (GPU, precision, TP, batch, chunk per llm_server;
  concurrency where listed) and the families rejected before sizing.
* `sizing` — the memoised analytic twin of one candidate, and its replica counts by bisection.
* `bounds` — cheap cost lower bounds (a roofline cap on an LLM replica's rate) for pruning.
* `verify` — simulation of the cheapest candidates on common random numbers, CI upper ends.
* `executor` — where tasks run: inline, local processes, or a Dask cluster.
* `search` — `size()`, the whole search; `records` — `SizeResult` (`sdw size --json`).

Usage::

    >>> from designs.io import load_design
    >>> from sim import size                      # the face re-exports it
    >>> # r = size(load_design("designs/library/llm_serving.yaml"), verify=5, seed=0, workers=2)
"""

from .records import Choice, SizeResult
from .search import SearchError, size

__all__ = ["size", "SizeResult", "Choice", "SearchError"]
