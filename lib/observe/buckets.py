"""Fixed histogram buckets, and percentiles read back from bucket counts.

Latency bounds are 10^(k/10) ms rounded to three digits, from 0.1 ms to 1000 s: ten buckets per
decade, each bound at most 1.2658 times the one before it. A percentile is reported as the
geometric middle of the bucket that holds it, so for values from 0.1 ms to 1000 s the reported
figure is within a factor sqrt(1.2658) of the true one: at most 12.6% above it or 11.1% below it
(`PERCENTILE_ERROR`). Under 0.1 ms it is reported as 0.05 ms, and over 1000 s as 1000 s.

The same bounds are compiled into SQL (`observe_latency_bounds()` in migration 070); a test checks
that the two lists agree. Counts are indexed like SQL's `width_bucket`: index 0 holds values under
the first bound, index i values in [bounds[i-1], bounds[i]), the last index values at or over the
last bound. Postgres stores them sparse (see `dense`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence


def _three_digits(value: float) -> float:
    return round(value, 2 - math.floor(math.log10(value)))


LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(_three_digits(10 ** (k / 10)) for k in range(-10, 61))
"""Lower bounds of the latency buckets, in milliseconds (71 bounds, 72 counts)."""

# OpenTelemetry's advised boundaries for gen_ai.client.token.usage.
TOKEN_BOUNDS: tuple[int, ...] = tuple(4**k for k in range(14))

_WIDEST_STEP = max(b / a for a, b in zip(LATENCY_BOUNDS_MS, LATENCY_BOUNDS_MS[1:], strict=False))
PERCENTILE_ERROR = math.sqrt(_WIDEST_STEP) - 1
"""Largest relative error of a reported percentile between 0.1 ms and 1000 s (0.1251)."""


def latency_bucket(ms: float) -> int:
    """The index of the count a latency adds to (as SQL's `width_bucket` numbers them)."""
    return bisect_right(LATENCY_BOUNDS_MS, ms)


LATENCY_COUNTS = len(LATENCY_BOUNDS_MS) + 1
TOKEN_COUNTS = len(TOKEN_BOUNDS) + 1


def dense(counts: Sequence[int | None] | None, first: int | None, size: int) -> list[int] | None:
    """A stored histogram as a list of `size` counts. Postgres keeps them sparse: the array's
    subscripts are bucket numbers, starting at `first` (its `array_lower`), NULL for none."""
    if counts is None:
        return None
    full = [0] * size
    for i, n in enumerate(counts, start=first or 0):
        if n:
            full[i] += n
    return full


Histogram = dict[int, int]
"""Counts by bucket number, only the buckets counted: what the metrics add up in Python."""


def add_sparse(total: Histogram | None, counts: Sequence[int | None] | None, first: int | None) -> Histogram | None:
    """Add a stored (sparse) histogram to `total`; either may be missing."""
    if counts is None:
        return total
    if total is None:
        total = {}
    for i, n in enumerate(counts, start=first or 0):
        if n:
            total[i] = total.get(i, 0) + n
    return total


def add_counts(total: Histogram | None, counts: Histogram | None) -> Histogram | None:
    """The sum of two histograms; either may be missing."""
    if counts is None:
        return total
    if total is None:
        return dict(counts)
    for i, n in counts.items():
        total[i] = total.get(i, 0) + n
    return total


def percentile(counts: Histogram | Sequence[int] | None, fraction: float) -> float | None:
    """The nearest-rank percentile (`fraction` in 0..1) of the latencies counted, in ms, estimated
    as the geometric middle of its bucket; None when nothing was counted."""
    return percentiles(counts, (fraction,))[0]


def percentiles(counts: Histogram | Sequence[int] | None, fractions: Sequence[float]) -> list[float | None]:
    """Several percentiles (`fractions` in increasing order) in one pass over the counts, given by
    bucket number (a dict) or as a list indexed by bucket number."""
    results: list[float | None] = [None] * len(fractions)
    if not counts:
        return results
    pairs = sorted(counts.items()) if isinstance(counts, dict) else list(enumerate(counts))
    total = sum(n for _, n in pairs)
    if total == 0:
        return results
    ranks = [max(1, math.ceil(fraction * total)) for fraction in fractions]
    seen, wanted = 0, 0
    for index, n in pairs:
        if not n:
            continue
        seen += n
        while wanted < len(ranks) and seen >= ranks[wanted]:
            results[wanted] = bucket_value(index)
            wanted += 1
        if wanted == len(ranks):
            break
    return results


def bucket_value(index: int) -> float:
    """The figure reported for a value in bucket `index`."""
    bounds = LATENCY_BOUNDS_MS
    if index <= 0:
        return bounds[0] / 2
    if index >= len(bounds):
        return bounds[-1]
    return round(math.sqrt(bounds[index - 1] * bounds[index]), 3)
