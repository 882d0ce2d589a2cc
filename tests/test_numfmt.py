"""The app's one number format (issue 16): separators, fixed decimals per unit, seconds past
10,000 ms, no exponent notation, "—" for unknown or unbounded figures."""

import math
import re

import pytest

from designs.numfmt import fmt, fmt_delta, fmt_ms, fmt_pct


@pytest.mark.parametrize(
    "value, unit, text",
    [
        (12465.2, "ms", "12.5 s"),  # the headline the issue quotes ("12,465 ms")
        (9999.94, "ms", "9,999.9 ms"),
        (21.34, "ms", "21.3 ms"),
        (4.6e-61, "ms", "0.0 ms"),  # an Erlang-C wait, not "4.6e-61"
        (-1e-9, "ms", "0.0 ms"),  # never "-0.0"
        (1.2e5, "ms", "120.0 s"),  # the unstable TTFT the issue quotes ("1.2e5 ms")
        (1630.214, "USD", "$1,630.21"),
        (2000.0, "USD/day", "$2,000.00/day"),
        (0.0042, "USD per 1k requests", "$0.0042 per 1k requests"),
        (10**10, "requests/day", "10,000,000,000 requests/day"),
        (347.22, "req/s", "347.2 req/s"),
        (17, "GPUs", "17 GPUs"),
        (99.9, "%", "99.9%"),
        (None, "ms", "—"),
        (math.inf, "ms", "—"),
        (math.nan, "USD", "—"),
    ],
)
def test_fmt(value, unit, text):
    assert fmt(value, unit) == text


def test_no_exponent_anywhere():
    for x in (1e-30, 3.3e-7, 0.5, 7.0, 91180.0, 6.4e12, 1e15):
        for unit in ("ms", "USD", "req/s", "", "GB"):
            assert not re.search(r"\de[+-]?\d", fmt(x, unit)), (x, unit)


def test_deltas_read_as_percent_or_ratio():
    # 6,175 → 91,180 ms: +85.0 s, 14.8× (not "+1,376.6%" and not "+8.5e+04").
    assert fmt_delta(6175.0, 91180.0, "ms") == "+85.0 s (14.8×)"
    assert fmt_delta(100.0, 164.0, "USD/day") == "+$64.00/day (+64.0%)"
    assert fmt_delta(100.0, 92.5, "USD/day") == "-$7.50/day (-7.5%)"
    assert fmt_delta(5.0, 5.0, "") == "±0 (0.0%)"
    assert fmt_delta(None, 3.0, "ms") == "—" and fmt_delta(1.0, math.inf, "ms") == "—"
    assert fmt_pct(0.764) == "76.4%" and fmt_ms(None) == "—"
