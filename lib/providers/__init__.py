"""The provider registry: models are named `provider/model`, and the prefix picks the provider.

Each provider is data (`ProviderSpec`): the wire format it speaks, where its key and base URL come
from, the header a caller may use to bring its own key, and what it can do. Adapters are imported
only when a request uses them, so importing this package costs nothing.

    spec, model = resolve_model("anthropic/claude-haiku-4-5")
    client = openai_client("openai", settings)  # shared with the embeddings code
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.config import Settings
from lib.logs import remember_secret
from lib.providers.types import Adapter, Target

if TYPE_CHECKING:
    import openai


@dataclass(frozen=True)
class ProviderSpec:
    """What we know about one provider, as data."""

    name: str
    wire: str  # the adapter module in lib/providers/: openai_wire | anthropic_wire | groq_wire | local
    key_setting: str | None  # the Settings field holding the operator's key
    base_url_setting: str | None
    key_env: str  # for error messages and docs
    byok_header: str | None  # the header a caller may send its own key in (ALLOW_BYOK=1)
    needs_key: bool = True
    supports_tools: bool = True
    usage_in_stream: bool = True  # ask for usage in the last stream chunk (stream_options)
    max_tokens_field: str = "max_tokens"
    models: tuple[str, ...] | None = None  # the only models it serves; None: whatever the provider has
    sends_user: bool = True  # Gemini's OpenAI-compatible endpoint refuses fields it does not know
    # bare model names that can only be this provider's: `gpt-4o-mini` is `openai/gpt-4o-mini`
    model_prefixes: tuple[str, ...] = ()
    example_model: str = ""  # what error messages suggest naming


PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec("openai", "openai_wire", "openai_api_key", "openai_base_url", "OPENAI_API_KEY",
                     "x-openai-api-key", max_tokens_field="max_completion_tokens",
                     model_prefixes=("gpt-", "chatgpt-", "o1", "o3", "o4"), example_model="gpt-4o-mini"),
        ProviderSpec("anthropic", "anthropic_wire", "anthropic_api_key", "anthropic_base_url",
                     "ANTHROPIC_API_KEY", "x-anthropic-api-key", model_prefixes=("claude-",),
                     example_model="claude-haiku-4-5"),
        # usage arrives in x_groq on the last chunk
        ProviderSpec("groq", "groq_wire", "groq_api_key", "groq_base_url", "GROQ_API_KEY", "x-groq-api-key",
                     usage_in_stream=False, example_model="llama-3.1-8b-instant"),
        ProviderSpec("google", "openai_wire", "gemini_api_key", "gemini_base_url", "GEMINI_API_KEY",
                     "x-gemini-api-key", sends_user=False, model_prefixes=("gemini-",),
                     example_model="gemini-2.5-flash"),
        ProviderSpec("openrouter", "openai_wire", "openrouter_api_key", "openrouter_base_url",
                     "OPENROUTER_API_KEY", "x-openrouter-api-key", example_model="openai/gpt-4o-mini"),
        ProviderSpec("compat", "openai_wire", "compat_api_key", "compat_base_url",
                     "OPENAI_COMPATIBLE_API_KEY", "x-compat-api-key", needs_key=False),
        ProviderSpec("local", "local", None, None, "", None, needs_key=False,
                     models=("echo",)),
    )
}
ALIASES = {"gemini": "google", "ollama": "compat", "vllm": "compat", "lmstudio": "compat"}


def resolve_model(name: str, field: str = "model") -> tuple[ProviderSpec, str]:
    """`openrouter/meta-llama/llama-3-8b` -> (the openrouter spec, 'meta-llama/llama-3-8b').

    A bare name is taken as the one provider's it can be: `gpt-4o-mini` is OpenAI's and
    `claude-haiku-4-5` Anthropic's (by `model_prefixes`), `llama-3.1-8b-instant` Groq's (the only
    provider the pricing table lists it for). One that fits no provider, or several, is a 422."""
    prefix, sep, model = name.partition("/")
    if not sep:
        return _resolve_bare(name, field)
    spec = PROVIDERS.get(ALIASES.get(prefix, prefix))
    if not model or spec is None:
        known = ", ".join(f"{p}/..." for p in PROVIDERS)
        raise errors.field_error(field, f"{name!r} is not a known model; name it provider/model, one of {known}")
    if spec.models is not None and model not in spec.models:
        served = ", ".join(f"{spec.name}/{m}" for m in spec.models)
        raise errors.field_error(field, f"{name!r} does not exist; {spec.name} serves {served}")
    return spec, model


def _resolve_bare(name: str, field: str) -> tuple[ProviderSpec, str]:
    from lib.providers.pricing import priced_models

    owners = {spec.name for spec in PROVIDERS.values() if spec.model_prefixes and name.startswith(spec.model_prefixes)}
    owners |= {listed.split("/", 1)[0] for listed in priced_models() if listed.split("/", 1)[1:] == [name]}
    if len(owners) == 1:
        return PROVIDERS[owners.pop()], name
    known = ", ".join(f"{p}/..." for p in PROVIDERS)
    if owners:
        raise errors.field_error(field, f"{name!r} could be {' or '.join(sorted(f'{o}/{name}' for o in owners))}; "
                                 "name the provider")
    raise errors.field_error(field, f"{name!r} is not a model we can place; name it provider/model, one of {known}")


def adapter_for(spec: ProviderSpec) -> Adapter:
    """The adapter module for this provider's wire format, imported on first use."""
    module = importlib.import_module(f"lib.providers.{spec.wire}")
    return module.ADAPTER


def target_for(spec: ProviderSpec, model: str, settings: Settings, *, timeout_s: float,
               byok_key: str | None = None) -> Target:
    """Key and base URL for one attempt; a 503 naming the variable when the key is missing."""
    key = byok_key or (getattr(settings, spec.key_setting) if spec.key_setting else "")
    if key and not byok_key:
        remember_secret(key)  # a provider error that echoes our own key never reaches the log
    base_url = (getattr(settings, spec.base_url_setting) if spec.base_url_setting else "") or None
    if spec.needs_key and not key:
        raise errors.ConfigurationError(
            f"{spec.name} is not configured: set {spec.key_env} to use {spec.name}/{model}",
            code="provider_not_configured")
    if spec.name == "compat" and not base_url:
        raise errors.ConfigurationError(
            "compat/... models need OPENAI_COMPATIBLE_BASE_URL (e.g. http://localhost:11434/v1 for Ollama)",
            code="provider_not_configured")
    return Target(spec.name, model, key or "unused", base_url, timeout_s, byok=bool(byok_key),
                  max_tokens_field=spec.max_tokens_field, usage_in_stream=spec.usage_in_stream,
                  sends_user=spec.sends_user)


# --- shared OpenAI SDK clients -------------------------------------------------------------------

OPENAI_WIRE_PROVIDERS = ("openai", "google", "openrouter", "compat")
# Clients hold an HTTP connection pool bound to one event loop: one client per (loop, target).
_clients: dict[tuple[Any, ...], Any] = {}


def openai_client(provider: str, settings: Settings, *, api_key: str | None = None,
                  timeout_s: float | None = None) -> openai.AsyncOpenAI:
    """A lazily built `openai.AsyncOpenAI` for an OpenAI-wire provider (openai, google/gemini,
    openrouter, compat), with the SDK's retries off: `lib/providers/retry.py` is the only retry loop.

    A caller's own key (`api_key`) is used for that client only and never cached.
    """
    spec = PROVIDERS.get(ALIASES.get(provider, provider))
    if spec is None or spec.name not in OPENAI_WIRE_PROVIDERS:
        raise ValueError(f"{provider!r} does not speak the OpenAI wire format")
    target = target_for(spec, "-", settings, timeout_s=timeout_s or settings.request_timeout_s,
                        byok_key=api_key)
    return client_for_target(target)


def client_for_target(target: Target) -> openai.AsyncOpenAI:
    return sdk_client(target, "openai", "AsyncOpenAI")


_CALLER_KEY_PLACEHOLDER = "set-per-request"


def sdk_client(target: Target, sdk: str, client_class: str) -> Any:
    """One client of an SDK (`openai`, `anthropic`, `groq`: generated from one template, built
    alike) per (event loop, SDK, provider, key, base URL, timeout), with the SDK's own retries off:
    `lib/providers/retry.py` is the only retry loop. The SDK is imported on the first call to need it.

    A caller's own key (BYOK) is never part of the cache: the request gets a copy of a keyless
    client (`with_options(api_key=...)`, sharing its connection pool) that lives as long as the call.
    """
    cache_key = (_loop_id(), sdk, target.provider, None if target.byok else target.api_key,
                 target.base_url, target.timeout_s)
    client = _clients.get(cache_key)
    if client is None:
        build = getattr(importlib.import_module(sdk), client_class)
        client = _clients[cache_key] = build(api_key=_CALLER_KEY_PLACEHOLDER if target.byok else target.api_key,
                                             base_url=target.base_url, timeout=target.timeout_s, max_retries=0)
    return client.with_options(api_key=target.api_key) if target.byok else client


def _loop_id() -> int:
    import asyncio

    try:
        return id(asyncio.get_running_loop())
    except RuntimeError:
        return 0
