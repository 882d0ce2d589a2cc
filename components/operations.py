"""Operations settings a component can carry: random failures, zones and an autoscaler.

These are plain typed blocks (``extra="forbid"``, units in the field names) that the catalogue
attaches to its kinds; `sim.ops` reads them in a timeline run (``sdw run --whole-day``, or a
design with ``faults:`` / a trace) and the twin's N−1 view reads ``zones``. Usage::

    >>> from components.operations import Autoscale, Failures
    >>> round(Failures(mtbf_hours=2000, mttr_minutes=30).availability(), 5)   # up share of one replica
    0.99975
    >>> a = Autoscale(min_replicas=2, max_replicas=8)
    >>> a.signal, a.target, a.interval_s
    ('utilization', 0.7, 15.0)

Where the defaults come from (each is also stated in the field's docstring):

* Evaluation interval 15 s: the Kubernetes Horizontal Pod Autoscaler's default sync period
  (``--horizontal-pod-autoscaler-sync-period``, kubernetes.io "Horizontal Pod Autoscaling").
* Scale-down stabilisation 300 s: the HPA's default downscale stabilisation window (same page).
  Scale-up delay 0 s: the HPA scales up at once by default (same page).
* Tolerance 0.1: the HPA's default ``--horizontal-pod-autoscaler-tolerance`` (same page).
* Target 0.7: assumption — a common HPA CPU target, leaving room for a replica's loss.
* Cold start parts (provisioning 60 s, image pull 60 s, weight-load bandwidth 1 GB/s,
  warm-up 30 s): assumptions, typical of a cloud GPU node joining a cluster (node provisioning
  about a minute, a multi-GB serving image over the registry, weights from object storage at
  ~1 GB/s per node, CUDA-graph capture and a warm-up batch). A design should override them
  with its own measurements.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from components.docstrings import install as _fast_docstrings

_fast_docstrings()  # the models' field descriptions from one parse of this module (start-up speed)

__all__ = ["Failures", "Autoscale", "ColdStart", "AUTOSCALE_SIGNALS"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Failures(_Strict):
    """Random failures of each replica: up for Exp(mtbf), down for Exp(mttr), seeded."""

    mtbf_hours: float = Field(gt=0, le=1e7)
    """Mean time between failures of one replica, in hours (exponential up times)."""
    mttr_minutes: float = Field(default=30, gt=0, le=1e6)
    """Mean time to repair (replace and restart) a failed replica, in minutes (exponential)."""

    def availability(self) -> float:
        """Long-run share of time one replica is up: MTBF / (MTBF + MTTR)."""
        up = self.mtbf_hours * 60.0
        return up / (up + self.mttr_minutes)


class ColdStart(_Strict):
    """How long a new replica takes to serve: provisioning + image pull + weight load + warm-up."""

    provisioning_s: float = Field(default=60, ge=0, le=86_400)
    """Time to get a node (VM/GPU) scheduled and booted, in seconds (assumption: about a minute)."""
    image_pull_s: float = Field(default=60, ge=0, le=86_400)
    """Time to pull the serving container image, in seconds (assumption: a multi-GB image)."""
    weights_gb: float | None = Field(default=None, ge=0, le=100_000)
    """Bytes of weights to load, in GB; empty takes the model's weights for an `llm_server`, else 0."""
    load_gb_per_s: float = Field(default=1.0, gt=0, le=1000)
    """Bandwidth the weights load at, in GB/s (assumption: object storage to one node, ~1 GB/s)."""
    warmup_s: float = Field(default=30, ge=0, le=86_400)
    """Engine warm-up after loading (CUDA-graph capture, a first batch), in seconds (assumption)."""

    def seconds(self, weights_gb: float = 0.0) -> float:
        """Total cold start in seconds; `weights_gb` is used when the block gives none."""
        w = self.weights_gb if self.weights_gb is not None else weights_gb
        return self.provisioning_s + self.image_pull_s + w / self.load_gb_per_s + self.warmup_s


AUTOSCALE_SIGNALS = ("utilization", "queue_length", "waiting_requests", "kv_occupancy")


class Autoscale(_Strict):
    """An autoscaler: every interval, desired = ceil(replicas × signal / target), within [min, max]."""

    min_replicas: int = Field(default=1, ge=1, le=100_000)
    """Fewest replicas the autoscaler keeps."""
    max_replicas: int = Field(ge=1, le=100_000)
    """Most replicas the autoscaler starts."""
    signal: Literal["utilization", "queue_length", "waiting_requests", "kv_occupancy"] = "utilization"
    """What it measures: busy share, requests queued per replica, LLM requests waiting per replica, KV share."""
    target: float = Field(default=0.7, gt=0, le=10_000)
    """Value of the signal the autoscaler steers to (0.7 utilisation is a common HPA target; assumption)."""
    interval_s: float = Field(default=15, gt=0, le=3600)
    """How often the signal is evaluated, in seconds (Kubernetes HPA default sync period: 15 s)."""
    scale_up_delay_s: float = Field(default=0, ge=0, le=3600)
    """Wait between deciding to scale up and asking for replicas, in seconds (HPA default: 0)."""
    scale_down_delay_s: float = Field(default=300, ge=0, le=86_400)
    """How long a lower desired count must persist before replicas are removed (HPA default: 300 s)."""
    cold_start: ColdStart = Field(default_factory=ColdStart)
    """How long a new replica takes before it serves."""
    tolerance: float = Field(default=0.1, ge=0, le=1)
    """No change while signal/target is within 1 ± this (Kubernetes HPA default tolerance 0.1)."""

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}; expected min ≤ max")
        return self
