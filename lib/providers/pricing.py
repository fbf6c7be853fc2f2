"""What a call cost, from the pricing table in `lib/providers/pricing.json` (USD per million tokens, with the
date it was compiled). `PRICING_FILE` replaces the table, `PRICING_OVERRIDES` (JSON) amends it.

A model that is not in the table costs `None`: an unknown price is reported as unknown, never guessed.
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


def _parse(entries: dict[str, Any], origin: str) -> dict[str, Price]:
    prices = {}
    for model, entry in entries.items():
        try:
            prices[model] = Price(float(entry["input"]), float(entry["output"]),
                                  None if entry.get("cached_input") is None else float(entry["cached_input"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.ConfigurationError(
                f"{origin}: the price of {model!r} needs numeric 'input' and 'output' (per million tokens)"
            ) from exc
    return prices


@lru_cache(maxsize=8)
def load_prices(pricing_file: str, overrides: str) -> tuple[dict[str, Price], str]:
    """(model -> price, the date the table was compiled)."""
    path = Path(pricing_file) if pricing_file else BUNDLED_TABLE
    try:
        table = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise errors.ConfigurationError(f"PRICING_FILE {path.name!r} cannot be read as JSON") from exc
    prices = _parse(table.get("models", {}), "PRICING_FILE" if pricing_file else "pricing.json")
    if overrides:
        try:
            extra = json.loads(overrides)
        except json.JSONDecodeError as exc:
            raise errors.ConfigurationError("PRICING_OVERRIDES is not valid JSON") from exc
        if not isinstance(extra, dict):
            raise errors.ConfigurationError('PRICING_OVERRIDES must be a JSON object {"provider/model": {...}}')
        prices.update(_parse(extra, "PRICING_OVERRIDES"))
    return prices, str(table.get("compiled", ""))


def price_of(model: str, settings: Settings, served_model: str = "") -> Price | None:
    """The price of `provider/model`, or of the model the provider says it served."""
    prices, _ = load_prices(settings.pricing_file, settings.pricing_overrides)
    if model in prices:
        return prices[model]
    if served_model:
        provider = model.split("/", 1)[0]
        return prices.get(f"{provider}/{served_model}")
    return None


def cost_usd(model: str, usage: Usage, settings: Settings, served_model: str = "") -> float | None:
    price = price_of(model, settings, served_model)
    return None if price is None else price.cost_usd(usage)
