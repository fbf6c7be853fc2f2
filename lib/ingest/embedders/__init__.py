"""Embedding models as data, and the embedder behind each name.

A model is named `provider/model`, optionally with `@<dimensions>` for models that can shorten
their vectors (`openai/text-embedding-3-large@1024`): the name alone fixes what the vectors mean,
so stored chunks, the cache and queries always agree.

    local/hash-<dims>              hashing embedder, offline, instant; lexical similarity only
    local/all-minilm-l6-v2         sentence-transformers, offline, if installed (an extra)
    openai/text-embedding-3-small  and -large, -ada-002; any openai/<model>
    google/..., openrouter/..., compat/...   any OpenAI-compatible embeddings endpoint

One small protocol, `Embedder.embed(texts) -> EmbeddedBatch`, is all `lib/ingest/embedding.py` needs:
batching, the cache, retries and the ledger live there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from lib import errors
from lib.config import Settings

if TYPE_CHECKING:
    import numpy as np

DEFAULT_LOCAL_MODEL = "local/hash-384"


@dataclass(frozen=True)
class EmbeddingModel:
    """What we know about one embedding model, as data."""

    name: str  # as stored with chunks: provider/model[@dims]
    provider: str  # local | openai | google | openrouter | compat
    model: str  # the provider's own name
    dimensions: int | None  # None: whatever the model returns (unknown OpenAI-compatible models)
    requested_dimensions: int | None = None  # sent to the provider (shortened vectors)
    max_input_tokens: int = 8191
    max_batch_inputs: int = 2048
    max_batch_tokens: int = 300_000
    price_per_million_tokens: float | None = 0.0  # None: unknown price
    can_shorten: bool = False
    cached: bool = True  # the hashing embedder is cheaper to recompute than to look up


@dataclass
class EmbeddedBatch:
    """One provider answer: a float32 numpy matrix with a row per input, in order, and the tokens
    billed. numpy is imported by the embedders, never by this module."""

    vectors: np.ndarray
    tokens: int


class Embedder(Protocol):
    async def embed(self, texts: list[str]) -> EmbeddedBatch: ...


_OPENAI = dict(max_input_tokens=8191, max_batch_inputs=2048, max_batch_tokens=300_000)
KNOWN_MODELS: dict[str, EmbeddingModel] = {
    m.name: m for m in (
        EmbeddingModel("openai/text-embedding-3-small", "openai", "text-embedding-3-small", 1536,
                       price_per_million_tokens=0.02, can_shorten=True, **_OPENAI),
        EmbeddingModel("openai/text-embedding-3-large", "openai", "text-embedding-3-large", 3072,
                       price_per_million_tokens=0.13, can_shorten=True, **_OPENAI),
        EmbeddingModel("openai/text-embedding-ada-002", "openai", "text-embedding-ada-002", 1536,
                       price_per_million_tokens=0.10, **_OPENAI),
        EmbeddingModel("google/gemini-embedding-001", "google", "gemini-embedding-001", 3072,
                       max_input_tokens=2048, max_batch_inputs=100, max_batch_tokens=100_000,
                       price_per_million_tokens=0.15, can_shorten=True),
        EmbeddingModel("google/text-embedding-004", "google", "text-embedding-004", 768,
                       max_input_tokens=2048, max_batch_inputs=100, max_batch_tokens=100_000,
                       price_per_million_tokens=0.0),
        EmbeddingModel("local/all-minilm-l6-v2", "local", "all-minilm-l6-v2", 384,
                       max_input_tokens=100_000, max_batch_inputs=64, max_batch_tokens=10**9),
    )
}
_ALIASES = {"gemini": "google", "ollama": "compat", "vllm": "compat", "lmstudio": "compat"}
_OPENAI_WIRE = ("openai", "google", "openrouter", "compat")
_HASH = re.compile(r"^local/hash-(\d+)$")
MAX_HASH_DIMENSIONS = 4096
MAX_DIMENSIONS = 16_000  # pgvector's limit for a vector column


def allowed_models(settings: Settings) -> frozenset[str] | None:
    """The model names a request may use (None: any). Every name is normalized, so `local/hash-0384`
    and `local/hash-384` are one model, one cache and one index."""
    if "*" in settings.embedding_models:
        return None
    listed = settings.embedding_models or (default_model(settings), DEFAULT_LOCAL_MODEL, *KNOWN_MODELS)
    return frozenset(resolve_embedding_model(name).name for name in listed)


def check_allowed(spec: EmbeddingModel, settings: Settings, field: str) -> EmbeddingModel:
    """422 naming `field` when a request names a model this deployment does not allow."""
    allowed = allowed_models(settings)
    if allowed is not None and spec.name not in allowed:
        raise errors.field_error(field, f"{spec.name} is not enabled here; allowed: {', '.join(sorted(allowed))} "
                                 "(the operator sets EMBEDDING_MODELS)")
    return spec


def default_model(settings: Settings) -> str:
    """EMBEDDING_MODEL, else OpenAI's small model when an OpenAI key is set, else offline hashing."""
    if settings.embedding_model:
        return settings.embedding_model
    if settings.openai_api_key:
        return "openai/text-embedding-3-small"
    return DEFAULT_LOCAL_MODEL


def resolve_embedding_model(name: str, dimensions: int | None = None) -> EmbeddingModel:
    """The model for a name (and an optional `dimensions`); 422 naming `model` or `dimensions`."""
    base, _, suffix = name.strip().partition("@")
    if suffix:
        if not (suffix.isascii() and suffix.isdigit()) or not 1 <= int(suffix) <= MAX_DIMENSIONS:
            raise errors.field_error("model", f"{name!r}: the part after @ must be a dimension count "
                                     f"from 1 to {MAX_DIMENSIONS}")
        if dimensions is not None and dimensions != int(suffix):
            raise errors.field_error("dimensions", f"{dimensions} contradicts the model name {name!r}")
        dimensions = int(suffix)
    if "/" not in base:  # a bare name: the one known model of that name (`text-embedding-3-small`)
        owners = [known for known in KNOWN_MODELS if known.split("/", 1)[1] == base.lower()]
        base = owners[0] if len(owners) == 1 else base
    prefix, sep, model = base.partition("/")
    prefix = _ALIASES.get(prefix.lower(), prefix.lower())
    base = f"{prefix}/{model}"
    if base.lower() in KNOWN_MODELS or _HASH.match(base.lower()):
        base = base.lower()  # one spelling per model: each spelling would be its own index
    if not sep or not model:
        raise errors.field_error("model", f"{name!r} is not an embedding model; name it provider/model, "
                                 f"e.g. {DEFAULT_LOCAL_MODEL} or openai/text-embedding-3-small")
    hashing = _HASH.match(base)
    if hashing:
        dims = int(hashing.group(1))
        if not 8 <= dims <= MAX_HASH_DIMENSIONS:
            raise errors.field_error("model", f"local/hash-<dims> takes 8 to {MAX_HASH_DIMENSIONS} dimensions")
        base = f"local/hash-{dims}"  # hash-0384 is hash-384
        spec = EmbeddingModel(base, "local", f"hash-{dims}", dims, max_input_tokens=1_000_000,
                              max_batch_inputs=256, max_batch_tokens=10**9, cached=False)
    elif base in KNOWN_MODELS:
        spec = KNOWN_MODELS[base]
    elif prefix in _OPENAI_WIRE:
        # An OpenAI-compatible model we have no data on: conservative limits, unknown price.
        spec = EmbeddingModel(base, prefix, model, None, max_input_tokens=8191, max_batch_inputs=256,
                              max_batch_tokens=100_000, price_per_million_tokens=None,
                              can_shorten=prefix != "compat")
    else:
        raise errors.field_error("model", f"{name!r} is not a known embedding model; use {DEFAULT_LOCAL_MODEL}, "
                                 "local/all-minilm-l6-v2, openai/..., google/..., openrouter/... or compat/...")
    if dimensions is None or dimensions == spec.dimensions:
        return spec
    if not 1 <= dimensions <= MAX_DIMENSIONS:
        raise errors.field_error("dimensions", f"must be from 1 to {MAX_DIMENSIONS}")
    if not spec.can_shorten:
        raise errors.field_error("dimensions", f"{base} always returns {spec.dimensions} dimensions")
    if spec.dimensions is not None and dimensions > spec.dimensions:
        raise errors.field_error("dimensions", f"{base} returns at most {spec.dimensions} dimensions")
    return replace(spec, name=f"{base}@{dimensions}", dimensions=dimensions, requested_dimensions=dimensions)


def embedder_for(spec: EmbeddingModel, settings: Settings) -> Embedder:
    """The embedder for a model; SDKs and model weights load on first use."""
    if spec.provider == "local" and spec.model.startswith("hash-"):
        from lib.ingest.embedders.hashing import HashingEmbedder

        return HashingEmbedder(spec.dimensions or 384)
    if spec.provider == "local":
        from lib.ingest.embedders.sentence import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder.shared()
    from lib.ingest.embedders.openai_wire import OpenAIEmbedder

    return OpenAIEmbedder(spec, settings)
