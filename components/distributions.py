"""Distributions: one small typed family for every time or size that varies.

Two parallel families share the same five shapes and the same behaviour; they differ
only in the unit carried by the field names, so a design file always says its units:

* durations (``DURATION``): ``{dist: exponential, mean_ms: 83.33}``
* counts such as token lengths (``COUNT``): ``{dist: lognormal, mean: 500, p95: 1500}``

Usage::

    >>> import random
    >>> from components.distributions import Exponential
    >>> d = Exponential(mean_ms=80)
    >>> d.expected(), round(d.scv(), 3)
    (80.0, 1.0)
    >>> x = d.sample(random.Random(1))   # milliseconds

Every ``sample`` takes the caller's ``random.Random``: nothing here touches a global RNG.
"""

from __future__ import annotations

import math
import random
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator
from components.docstrings import install as _fast_docstrings

_fast_docstrings()  # the models' field descriptions from one parse of this module (start-up speed)

__all__ = [
    "Fixed",
    "Exponential",
    "Uniform",
    "LogNormal",
    "Empirical",
    "Duration",
    "FixedCount",
    "UniformCount",
    "LogNormalCount",
    "EmpiricalCount",
    "ExponentialCount",
    "Count",
    "DIST_TAGS",
    "fixed_ms",
    "fixed_count",
]

Z95 = 1.6448536269514722  # standard normal 95th percentile
# Largest p95/mean a lognormal can have: max of exp(z*s - s^2/2) at s = z.
LOGNORMAL_MAX_P95_OVER_MEAN = math.exp(Z95 * Z95 / 2)


def _lognormal_params(mean: float, p95: float) -> tuple[float, float]:
    """(mu, sigma) of the lognormal with this mean and 95th percentile (smaller sigma root)."""
    r = math.log(p95 / mean)
    sigma = Z95 - math.sqrt(Z95 * Z95 - 2 * r)
    mu = math.log(mean) - sigma * sigma / 2
    return mu, sigma


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    # Subclasses implement these in their own unit (ms or count). The mean is `expected()`
    # because count distributions have a field called `mean`.
    def expected(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def var(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, rng: random.Random) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def quantile(self, q: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def scv(self) -> float:
        """Squared coefficient of variation, Var/mean² (0 for fixed, 1 for exponential)."""
        m = self.expected()
        return self.var() / (m * m) if m > 0 else 0.0

    def scaled(self, factor: float) -> "_Dist":
        """The same shape with every value multiplied by ``factor``."""
        data = self.model_dump()
        for k, v in data.items():
            if isinstance(v, (int, float)) and k != "dist":
                data[k] = v * factor
            elif isinstance(v, list):
                data[k] = [x * factor for x in v]
        return type(self)(**data)


# --- durations (milliseconds) ------------------------------------------------------------
# Means and p95s are at least 1e-6 (1 ns, one millionth of a token): smaller positive values
# make the derived rates (1/mean) overflow and their squares underflow to 0 (issue 14).


class Fixed(_Dist):
    """Always the same duration."""

    dist: Literal["fixed"] = "fixed"
    value_ms: float = Field(ge=0, le=1e9)
    """The duration, in milliseconds."""

    def expected(self) -> float:
        return self.value_ms

    def var(self) -> float:
        return 0.0

    def sample(self, rng: random.Random) -> float:
        return self.value_ms

    def quantile(self, q: float) -> float:
        return self.value_ms


class Exponential(_Dist):
    """Memoryless duration (M in Kendall's notation): most values short, a long tail."""

    dist: Literal["exponential"] = "exponential"
    mean_ms: float = Field(ge=1e-6, le=1e9)
    """Mean duration, in milliseconds."""

    def expected(self) -> float:
        return self.mean_ms

    def var(self) -> float:
        return self.mean_ms**2

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean_ms)

    def quantile(self, q: float) -> float:
        return -self.mean_ms * math.log(1 - q)


class Uniform(_Dist):
    """Any duration between two bounds, equally likely."""

    dist: Literal["uniform"] = "uniform"
    low_ms: float = Field(ge=0, le=1e9)
    """Shortest duration, in milliseconds."""
    high_ms: float = Field(ge=0, le=1e9)
    """Longest duration, in milliseconds (at least ``low_ms``)."""

    @model_validator(mode="after")
    def _ordered(self):
        if self.high_ms < self.low_ms:
            raise ValueError(f"high_ms ({self.high_ms}) must be at least low_ms ({self.low_ms})")
        return self

    def expected(self) -> float:
        return (self.low_ms + self.high_ms) / 2

    def var(self) -> float:
        return (self.high_ms - self.low_ms) ** 2 / 12

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low_ms, self.high_ms)

    def quantile(self, q: float) -> float:
        return self.low_ms + q * (self.high_ms - self.low_ms)


class LogNormal(_Dist):
    """Right-skewed duration given by its mean and 95th percentile (how latencies are quoted)."""

    dist: Literal["lognormal"] = "lognormal"
    mean_ms: float = Field(ge=1e-6, le=1e9)
    """Mean duration, in milliseconds."""
    p95_ms: float = Field(ge=1e-6, le=1e10)
    """95th-percentile duration, in milliseconds: above the mean, at most 3.87× it."""

    @model_validator(mode="after")
    def _shape(self):
        _check_lognormal(self.mean_ms, self.p95_ms, "p95_ms", "mean_ms")
        return self

    def expected(self) -> float:
        return self.mean_ms

    def var(self) -> float:
        _, s = _lognormal_params(self.mean_ms, self.p95_ms)
        return (math.exp(s * s) - 1) * self.mean_ms**2

    def sample(self, rng: random.Random) -> float:
        mu, s = _lognormal_params(self.mean_ms, self.p95_ms)
        return rng.lognormvariate(mu, s)

    def quantile(self, q: float) -> float:
        from statistics import NormalDist

        mu, s = _lognormal_params(self.mean_ms, self.p95_ms)
        return math.exp(mu + s * NormalDist().inv_cdf(q))


class Empirical(_Dist):
    """Resample from measured durations (each value equally likely)."""

    dist: Literal["empirical"] = "empirical"
    values_ms: list[Annotated[float, Field(ge=0, le=1e9)]] = Field(min_length=1, max_length=100_000)
    """Measured durations, in milliseconds."""

    def expected(self) -> float:
        return sum(self.values_ms) / len(self.values_ms)

    def var(self) -> float:
        m = self.expected()
        return sum((x - m) ** 2 for x in self.values_ms) / len(self.values_ms)

    def sample(self, rng: random.Random) -> float:
        return self.values_ms[int(rng.random() * len(self.values_ms))]

    def quantile(self, q: float) -> float:
        xs = sorted(self.values_ms)
        return xs[min(len(xs) - 1, int(q * len(xs)))]


def _check_lognormal(mean: float, p95: float, p95_name: str, mean_name: str) -> None:
    if p95 <= mean:
        raise ValueError(
            f"{p95_name} ({p95:g}) must be above {mean_name} ({mean:g}): a lognormal is right-skewed"
        )
    if p95 / mean > LOGNORMAL_MAX_P95_OVER_MEAN:
        raise ValueError(
            f"{p95_name}/{mean_name} = {p95 / mean:.2f} is more than a lognormal can have "
            f"({LOGNORMAL_MAX_P95_OVER_MEAN:.2f}); use an empirical distribution for heavier tails"
        )


Duration = Annotated[
    Union[Fixed, Exponential, Uniform, LogNormal, Empirical], Field(discriminator="dist")
]
"""A duration distribution, in milliseconds."""


# --- counts (tokens, items, pairs): same shapes, unit-free field names ----------------------
# Samples are rounded to whole numbers and never below 1, because a request has at least one
# token; means are the exact continuous means (the rounding bias is below half a unit).


class _CountMixin:
    def sample_int(self, rng: random.Random) -> int:
        return max(1, int(round(self.sample(rng))))  # type: ignore[attr-defined]


class FixedCount(_CountMixin, _Dist):
    """Always the same count."""

    dist: Literal["fixed"] = "fixed"
    value: float = Field(ge=0, le=1e12)
    """The count."""

    def expected(self) -> float:
        return self.value

    def var(self) -> float:
        return 0.0

    def sample(self, rng: random.Random) -> float:
        return self.value

    def quantile(self, q: float) -> float:
        return self.value


class ExponentialCount(_CountMixin, _Dist):
    """Geometric-like count: mostly small, a long tail."""

    dist: Literal["exponential"] = "exponential"
    mean: float = Field(ge=1e-6, le=1e12)
    """Mean count."""

    def expected(self) -> float:
        return self.mean

    def var(self) -> float:
        return self.mean ** 2

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean)

    def quantile(self, q: float) -> float:
        return -self.mean * math.log(1 - q)


class UniformCount(_CountMixin, _Dist):
    """Any count between two bounds, equally likely."""

    dist: Literal["uniform"] = "uniform"
    low: float = Field(ge=0, le=1e12)
    """Smallest count."""
    high: float = Field(ge=0, le=1e12)
    """Largest count (at least ``low``)."""

    @model_validator(mode="after")
    def _ordered(self):
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be at least low ({self.low})")
        return self

    def expected(self) -> float:
        return (self.low + self.high) / 2

    def var(self) -> float:
        return (self.high - self.low) ** 2 / 12

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)

    def quantile(self, q: float) -> float:
        return self.low + q * (self.high - self.low)


class LogNormalCount(_CountMixin, _Dist):
    """Right-skewed count given by its mean and 95th percentile (how prompt lengths are quoted)."""

    dist: Literal["lognormal"] = "lognormal"
    mean: float = Field(ge=1e-6, le=1e12)
    """Mean count."""
    p95: float = Field(ge=1e-6, le=1e13)
    """95th-percentile count: above the mean, at most 3.87× it."""

    @model_validator(mode="after")
    def _shape(self):
        _check_lognormal(self.mean, self.p95, "p95", "mean")
        return self

    def expected(self) -> float:
        return self.mean

    def var(self) -> float:
        m = self.mean
        _, s = _lognormal_params(m, self.p95)
        return (math.exp(s * s) - 1) * m * m

    def sample(self, rng: random.Random) -> float:
        mu, s = _lognormal_params(self.mean, self.p95)
        return rng.lognormvariate(mu, s)

    def quantile(self, q: float) -> float:
        from statistics import NormalDist

        mu, s = _lognormal_params(self.mean, self.p95)
        return math.exp(mu + s * NormalDist().inv_cdf(q))


class EmpiricalCount(_CountMixin, _Dist):
    """Resample from measured counts (each value equally likely)."""

    dist: Literal["empirical"] = "empirical"
    values: list[Annotated[float, Field(ge=0, le=1e12)]] = Field(min_length=1, max_length=100_000)
    """Measured counts."""

    def expected(self) -> float:
        return sum(self.values) / len(self.values)

    def var(self) -> float:
        m = self.expected()
        return sum((x - m) ** 2 for x in self.values) / len(self.values)

    def sample(self, rng: random.Random) -> float:
        return self.values[int(rng.random() * len(self.values))]

    def quantile(self, q: float) -> float:
        xs = sorted(self.values)
        return xs[min(len(xs) - 1, int(q * len(xs)))]


Count = Annotated[
    Union[FixedCount, ExponentialCount, UniformCount, LogNormalCount, EmpiricalCount],
    Field(discriminator="dist"),
]
"""A count distribution (tokens, items, candidate pairs), unit-free."""

DIST_TAGS = frozenset({"fixed", "exponential", "uniform", "lognormal", "empirical"})


def fixed_ms(value_ms: float) -> Fixed:
    """Shorthand for a fixed duration (used for field defaults)."""
    return Fixed(value_ms=value_ms)


def fixed_count(value: float) -> FixedCount:
    """Shorthand for a fixed count (used for field defaults)."""
    return FixedCount(value=value)
