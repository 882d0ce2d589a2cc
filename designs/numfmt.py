"""One number format for every figure a person reads (app pages, diagrams, tables).

Rules (issue 16): thousands separators; a fixed number of decimals per unit; milliseconds
become seconds past 10,000 ms; never exponent notation; "—" for a figure that is unknown
(None), undefined (NaN) or unbounded (inf — an unstable station's wait).

Usage::

    >>> from designs.numfmt import fmt, fmt_ms, fmt_delta
    >>> fmt_ms(12465.2), fmt_ms(21.34), fmt_ms(float("inf")), fmt_ms(None)
    ('12.5 s', '21.3 ms', '—', '—')
    >>> fmt(1630.214, "USD"), fmt(91180.0, "ms"), fmt(4.6e-61, "ms"), fmt(347.2, "req/s")
    ('$1,630.21', '91.2 s', '0.0 ms', '347.2 req/s')
    >>> fmt_delta(6175.0, 91180.0, "ms"), fmt_delta(100.0, 164.0, "USD/day")
    ('+85.0 s (14.8×)', '+$64.00/day (+64.0%)')

`DECIMALS` is the table of units and their decimals; `fmt(x, unit)` with a unit not in it
uses 1 decimal and appends the unit after a space.
"""

from __future__ import annotations

import math

__all__ = ["DECIMALS", "UNBOUNDED", "fmt", "fmt_ms", "fmt_delta", "fmt_pct", "fmt_count", "is_unbounded"]

UNBOUNDED = "—"
"""What a missing, undefined or unbounded figure reads as."""

SECONDS_FROM_MS = 10_000
"""Milliseconds at or above this are written in seconds ('12.5 s', not '12,465.0 ms')."""

# unit → decimals. Latency keeps 0.1 ms (TPOT differences of 1 ms matter); money keeps
# cents, except per-1k-request prices, which live in fractions of a cent.
DECIMALS: dict[str, int] = {
    "ms": 1,
    "s": 1,
    "USD": 2,
    "USD/day": 2,
    "USD/month": 2,
    "USD per 1k requests": 4,
    "req/s": 1,
    "requests/s": 1,
    "requests/day": 0,
    "tokens/s": 0,
    "tokens": 0,
    "requests": 0,
    "GPUs": 0,
    "GB": 1,
    "%": 1,
    "": 0,
}


def is_unbounded(x: object) -> bool:
    """True for None, NaN and ±inf: figures that must read as '—'."""
    if x is None:
        return True
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True
    return math.isnan(f) or math.isinf(f)


def _fixed(x: float, decimals: int) -> str:
    s = f"{x:,.{decimals}f}"
    # "-0.0" is an artefact of rounding a tiny negative number.
    return s[1:] if s.startswith("-") and float(s.replace(",", "")) == 0 else s


def fmt_ms(x: object) -> str:
    """A duration given in ms: '21.3 ms', '9,876.5 ms', '12.5 s', '—'."""
    return fmt(x, "ms")


def fmt_count(x: object) -> str:
    """A whole count with separators: '1,234,567'."""
    return fmt(x, "")


def fmt_pct(fraction: object, decimals: int = 1, *, signed: bool = False) -> str:
    """A fraction as a percentage: 0.764 → '76.4%'."""
    if is_unbounded(fraction):
        return UNBOUNDED
    s = _fixed(float(fraction) * 100, decimals)  # type: ignore[arg-type]
    return f"{'+' if signed and not s.startswith('-') and float(s.replace(',', '')) != 0 else ''}{s}%"


def fmt(x: object, unit: str = "") -> str:
    """`x` in `unit` with the unit's fixed decimals (see `DECIMALS` and the module doc)."""
    if is_unbounded(x):
        return UNBOUNDED
    v = float(x)  # type: ignore[arg-type]
    if unit == "ms" and abs(v) >= SECONDS_FROM_MS:
        return f"{_fixed(v / 1000, DECIMALS['s'])} s"
    if unit == "%":
        return f"{_fixed(v, DECIMALS['%'])}%"
    d = DECIMALS.get(unit, 1)
    if unit.startswith("USD"):
        body = _fixed(abs(v), d)
        sign = "-" if v < 0 and float(body.replace(",", "")) != 0 else ""
        rest = unit[3:]
        return f"{sign}${body}{rest if rest.startswith('/') else (' ' + rest.strip() if rest.strip() else '')}"
    body = _fixed(v, d)
    return f"{body} {unit}" if unit else body


def fmt_delta(base: object, value: object, unit: str = "") -> str:
    """The change from `base` to `value`: '+85.0 s (14.8×)', '-$12.00/day (-7.5%)', '—'.

    Relative changes up to ±999.9 % read as percentages; larger ones as a ratio, which a
    reader can take in ('14.8×' rather than '+1,376.6%').
    """
    if is_unbounded(base) or is_unbounded(value):
        return UNBOUNDED
    b, v = float(base), float(value)  # type: ignore[arg-type]
    diff = fmt(abs(v - b), unit)
    sign = "+" if v > b else "-" if v < b else "±"
    head = f"{sign}{diff}"
    if b == 0:
        return head
    rel = (v - b) / abs(b)
    if abs(rel) < 10:
        return f"{head} ({fmt_pct(rel, signed=True)})"
    return f"{head} ({_fixed(v / b, 1)}×)"
