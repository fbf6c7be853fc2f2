"""Which variant a unit gets: a stable hash, so every instance, today and next month, agrees.

    bucket = first 8 bytes of sha256("<experiment>\\0<unit>") as an integer / 2^64   (uniform in [0, 1))

and the variants' weights, normalized to sum to 1, cut [0, 1) into consecutive ranges in their
order; the unit gets the variant whose range holds its bucket. No state and no randomness per
process (Python's own `hash` is salted per process, sha256 is not). An experiment's variants and
weights are fixed once it starts, so a unit's range never moves.

The unit is the caller's end user (`user`), the conversation (`conversation`: `conversation_id`, else
useChat's chat id) or the request itself (`request`). User and conversation ids are the
tenant's own names, so they are keyed by the caller too: user "42" of two API keys is two units.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any


def bucket(experiment: str, unit: str) -> float:
    digest = hashlib.sha256(f"{experiment}\0{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def choose(weights: Sequence[float], point: float) -> int:
    """The index of the weight range that holds `point` in [0, 1)."""
    total = sum(weights)
    edge = 0.0
    for index, weight in enumerate(weights):
        edge += weight / total
        if point < edge:
            return index
    return len(weights) - 1  # rounding left the last edge a hair below 1


def assign(experiment: str, unit: str, variants: Sequence[Any]) -> Any:
    """The variant (anything with a `weight`) this unit gets in this experiment."""
    return variants[choose([v.weight for v in variants], bucket(experiment, unit))]


def unit_key(unit: str, *, caller: str, request_id: str, user: str | None,
             conversation: str | None) -> str | None:
    """The unit a request belongs to, or None when the request does not say (no user, no chat id)."""
    if unit == "request":
        return f"{caller}/{request_id}"
    value = user if unit == "user" else conversation
    return f"{caller}/{value}" if value else None
