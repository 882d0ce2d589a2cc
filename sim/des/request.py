"""One simulated request, and the context every station of one replication shares.

A `Request` is a plain slotted object (no SimPy process, no generator): stations receive it
in `arrive(req, done)` and call `done(req, ok)` when it leaves. Times are simulation seconds.

Usage (inside a station)::

    from sim.des.request import Request, SimContext

    def arrive(self, req: Request, done):
        req.first_token_at = self.env.now + ttft_s      # an LLM station stamps token times
        ...
        done(req, True)

`SimContext.stream(name)` hands each consumer of randomness its own `random.Random`, seeded
from (run seed, replication, name). Variants of a design compared with the same seed therefore
draw the same arrivals and the same service times at every component they share (common random
numbers), and a change in one component does not shift another's random stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Request", "SimContext", "Done"]


class Request:
    """A request moving through the design (all times in simulation seconds).

    Fields written by stations:
      * ``first_token_at`` / ``last_token_at`` / ``answer_output_tokens``: an LLM station
        stamps these on every call; the last LLM call on the path wins (the streamed answer).
      * ``stop``: set True to end the request successfully here (cache hit, guardrail block);
        the engine clears it after reading it.
    """

    __slots__ = (
        "id",  # arrival index within the replication (0, 1, 2, …)
        "cls",  # index into the workload's request classes
        "t0",  # arrival time at the entry, s
        "prompt_tokens",
        "output_tokens",
        "first_token_at",  # s, or None: no LLM on the path yet
        "last_token_at",  # s, or None
        "answer_output_tokens",  # output tokens of the last LLM call, or 0
        "measured",  # arrived after warm-up and inside the measured window
        "dropped",  # dropped somewhere (timeout, full queue, rejected)
        "stop",  # station says: the request ends here (cache hit, blocked)
        "loops",  # {edge index: times taken} for back edges, or None
        "lag_from",  # async hand-off: the queue station to credit with the lag, or None
        "lag_t",  # time the request was enqueued there, s
        "user",  # closed loop: the user (index) who sent it, else -1
        "k",  # engine: continuation called when the request (or this branch) ends
        "bound",  # engine: the join node where this branch stops, or None
        "nx",  # station scratch: the `done` of the station holding the request now
        "t_in",  # station scratch: when it joined that station's queue, s
    )

    def __init__(self, rid: int, cls: int, t0: float, prompt_tokens: int, output_tokens: int, measured: bool = True):
        self.id = rid
        self.cls = cls
        self.t0 = t0
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.first_token_at = None
        self.last_token_at = None
        self.answer_output_tokens = 0
        self.measured = measured
        self.dropped = False
        self.stop = False
        self.loops = None
        self.lag_from = None
        self.lag_t = 0.0
        self.user = -1
        self.k = None
        self.bound = None

    def clone(self) -> "Request":
        """A copy for an asynchronous continuation (after a `queue`): same tokens, own stamps."""
        r = Request(self.id, self.cls, self.t0, self.prompt_tokens, self.output_tokens, self.measured)
        r.user = self.user
        return r

    def __repr__(self) -> str:  # debugging aid
        return f"Request(id={self.id}, cls={self.cls}, t0={self.t0:.6f}, prompt={self.prompt_tokens}, out={self.output_tokens})"


Done = Callable[[Request, bool], None]
"""`done(req, ok)`: the station is finished with `req`; ok=False means it was dropped here."""


@dataclass
class SimContext:
    """What one replication's stations share.

    Attributes:
        env: the `simpy.Environment` (clock in seconds).
        rng: the replication's general-purpose stream (prefer `stream(name)` for your own).
        design: the `designs.model.Design` being simulated.
        workload: `design.workload`.
        seed: the run seed; ``replication``: the replication index.
        extra: free-form scratch space for stations (shared per replication).
    """

    env: Any
    rng: random.Random
    design: Any
    workload: Any
    seed: int = 0
    replication: int = 0
    extra: dict = field(default_factory=dict)

    def stream(self, name: str) -> random.Random:
        """An independent `random.Random` for `name` (e.g. "svc", "route:svc").

        Seeded from a string, which Python hashes with SHA-512: stable across processes and
        platforms (unlike `hash()`), so the same seed gives the same numbers everywhere.
        """
        return random.Random(f"sdw:{self.seed}:{self.replication}:{name}")
