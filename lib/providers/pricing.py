"""The model table in `lib/providers/pricing.json`: what a call cost (USD per million tokens, with the
date it was compiled) and how much a model can read and write (its context window and output limit).
`PRICING_FILE` replaces the table, `PRICING_OVERRIDES` (JSON) amends it, entry by entry.

A model that is not in the table costs `None`: an unknown price is reported as unknown, never guessed.
A model without a window gets `DEFAULT_LIMITS` (8,192 tokens, 2,048 of them for the answer), marked
as not known, so whoever fits a prompt to it can tell a guess from a fact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lib import errors
from lib.config import Settings
from lib.providers.types import Usage

BUNDLED_TABLE = Path(__file__).resolve().parent / "pricing.json"


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost_usd(self, usage: Usage) -> float:
        # cached tokens are part of input_tokens (normalized so for every provider)
        cached = min(usage.cached_tokens, usage.input_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        total = (usage.input_tokens - cached) * self.input + cached * cached_rate + usage.output_tokens * self.output
        return round(total / 1_000_000, 10)


@dataclass(frozen=True)
class Limits:
    """Tokens a model takes: the whole window (prompt and answer together) and the longest answer.
    `known` is False for the default given to a model the table does not list."""

    context_window: int
    max_output_tokens: int
    known: bool = True


# Small enough for any chat model still served (8k was the smallest window in common use), so a
# prompt fitted to it fits wherever it goes; the table or PRICING_OVERRIDES give the real figure.
DEFAULT_LIMITS = Limits(8192, 2048, known=False)


@dataclass(frozen=True)
class ModelTable:
    prices: dict[str, Price]
    limits: dict[str, Limits]
    compiled: str


def _parse(entries: dict[str, Any], origin: str) -> tuple[dict[str, Price], dict[str, Limits]]:
    """Each entry has a price (`input` and `output`), a window (`context_window`, and optionally
    `max_output_tokens`), or both."""
    prices, limits = {}, {}
    for model, entry in entries.items():
        if not isinstance(entry, dict):
            raise errors.ConfigurationError(f"{origin}: the entry of {model!r} must be an object")
        if "input" in entry or "output" in entry or "context_window" not in entry:
            try:
                prices[model] = Price(float(entry["input"]), float(entry["output"]),
                                      None if entry.get("cached_input") is None else float(entry["cached_input"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise errors.ConfigurationError(
                    f"{origin}: the price of {model!r} needs numeric 'input' and 'output' (per million tokens)"
                ) from exc
        if "context_window" in entry:
            limits[model] = _limits(model, entry, origin)
    return prices, limits


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _limits(model: str, entry: dict[str, Any], origin: str) -> Limits:
    window, output = entry.get("context_window"), entry.get("max_output_tokens")
    if not _whole(window) or window < 256:
        raise errors.ConfigurationError(f"{origin}: the context_window of {model!r} must be a whole number "
                                        "of tokens, at least 256")
    if output is None:  # not given: a quarter of the window, at most the default's answer room
        output = min(window // 4, DEFAULT_LIMITS.max_output_tokens)
    if not _whole(output) or not 1 <= output <= window:
        raise errors.ConfigurationError(f"{origin}: the max_output_tokens of {model!r} must be a whole number "
                                        "from 1 to its context_window")
    return Limits(window, output)


@lru_cache(maxsize=1)
def priced_models() -> frozenset[str]:
    """The `provider/model` names of the bundled table, which tell a bare model name's provider."""
    return frozenset(json.loads(BUNDLED_TABLE.read_text()).get("models", {}))


@lru_cache(maxsize=8)
def load_table(pricing_file: str, overrides: str) -> ModelTable:
    """The table with PRICING_FILE and PRICING_OVERRIDES applied."""
    path = Path(pricing_file) if pricing_file else BUNDLED_TABLE
    try:
        table = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise errors.ConfigurationError(f"PRICING_FILE {path.name!r} cannot be read as JSON") from exc
    prices, limits = _parse(table.get("models", {}), "PRICING_FILE" if pricing_file else "pricing.json")
    if overrides:
        try:
            extra = json.loads(overrides)
        except json.JSONDecodeError as exc:
            raise errors.ConfigurationError("PRICING_OVERRIDES is not valid JSON") from exc
        if not isinstance(extra, dict):
            raise errors.ConfigurationError('PRICING_OVERRIDES must be a JSON object {"provider/model": {...}}')
        extra_prices, extra_limits = _parse(extra, "PRICING_OVERRIDES")
        prices.update(extra_prices)
        limits.update(extra_limits)
    return ModelTable(prices, limits, str(table.get("compiled", "")))


def load_prices(pricing_file: str, overrides: str) -> tuple[dict[str, Price], str]:
    """(model -> price, the date the table was compiled)."""
    table = load_table(pricing_file, overrides)
    return table.prices, table.compiled


def price_of(model: str, settings: Settings, served_model: str = "") -> Price | None:
    """The price of `provider/model`, or of the model the provider says it served."""
    prices, _ = load_prices(settings.pricing_file, settings.pricing_overrides)
    if model in prices:
        return prices[model]
    if served_model:
        provider = model.split("/", 1)[0]
        return prices.get(f"{provider}/{served_model}")
    return None


def limits_of(model: str, settings: Settings) -> Limits:
    """The window and output limit of `provider/model`, or `DEFAULT_LIMITS` when the table has none."""
    return load_table(settings.pricing_file, settings.pricing_overrides).limits.get(model, DEFAULT_LIMITS)


def cost_usd(model: str, usage: Usage, settings: Settings, served_model: str = "") -> float | None:
    price = price_of(model, settings, served_model)
    return None if price is None else price.cost_usd(usage)
