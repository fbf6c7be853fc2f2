"""Embed texts: validation, the Postgres cache, batches sized to the model's limits sent
concurrently (with a bound), retries, and one usage-ledger row per provider attempt.

Contract (used by ingestion, search and `api/embeddings.py`):

    result = await embed_texts(["a", "b"], "openai/text-embedding-3-small", settings=settings)
    result.vectors      # one float32 numpy vector per input, in input order
    result.cached       # how many came from the cache; result.tokens / result.cost_usd: new work

The cache key is (model name, dimensions, sha256 of the text), the same hash `chunks.content_hash`
holds, so re-ingesting a changed document re-embeds only the chunks whose text changed.
Batches that succeed are cached even when a later one fails, so a retry resumes where it stopped.

The cache is shared by every caller, but each caller sees it as its own: a text only another
caller had embedded is served from the cache (no provider call, no spend in the ledger) yet
reported as embedded now, with its estimated tokens and price, so a response never tells one
tenant what another embedded.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.config import Settings
from lib.ingest.embedders import (
    EmbeddedBatch,
    EmbeddingModel,
    default_model,
    embedder_for,
    resolve_embedding_model,
)
from lib.logs import log
from lib.tokens import count_tokens

if TYPE_CHECKING:
    import numpy as np

    from lib.providers.retry import Failure

# progress(batches_done, batches_total, inputs_done) after each batch, for streamed uploads
OnBatch = Callable[[int, int, int], Awaitable[None]]


@dataclass
class EmbedResult:
    vectors: list[np.ndarray]  # float32, one per input
    model: str
    dimensions: int
    tokens: int = 0  # billed for the inputs embedded now (cache hits cost nothing)
    cost_usd: float | None = 0.0  # None when the model's price is unknown
    cached: int = 0  # inputs answered from the cache
    embedded: int = 0  # distinct inputs sent to the model
    batches: int = 0


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_inputs(texts: Sequence[Any], spec: EmbeddingModel) -> list[int]:
    """Token estimates per input; a 422 naming the first empty, non-string or oversized input."""
    if not texts:
        raise errors.field_error("input", "must hold at least one text")
    counts = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise errors.field_error(f"input[{i}]", "must be a string")
        if not text.strip():
            raise errors.field_error(f"input[{i}]", "is empty; every input needs some text")
        tokens = count_tokens(text)
        if tokens > spec.max_input_tokens:
            raise errors.field_error(
                f"input[{i}]", f"has about {tokens} tokens; {spec.name} takes at most {spec.max_input_tokens}")
        counts.append(tokens)
    return counts


def plan_batches(indexes: list[int], tokens: list[int], spec: EmbeddingModel) -> list[list[int]]:
    """Group inputs, in order, into batches within the model's inputs- and tokens-per-request."""
    batches: list[list[int]] = []
    current: list[int] = []
    current_tokens = 0
    for i in indexes:
        if current and (len(current) >= spec.max_batch_inputs
                        or current_tokens + tokens[i] > spec.max_batch_tokens):
            batches.append(current)
            current, current_tokens = [], 0
        current.append(i)
        current_tokens += tokens[i]
    if current:
        batches.append(current)
    return batches


async def embed_texts(
    texts: Sequence[str],
    model: str | None = None,
    *,
    settings: Settings,
    dimensions: int | None = None,
    request_id: str | None = None,
    caller: str | None = None,
    user_id: str | None = None,
    use_cache: bool = True,
    on_batch: OnBatch | None = None,
) -> EmbedResult:
    """Embed `texts` with `model` (default: `lib.ingest.embedders.default_model`), cache first."""
    spec = resolve_embedding_model(model or default_model(settings), dimensions)
    tokens = check_inputs(texts, spec)
    hashes = [content_hash(t) for t in texts]
    unique: dict[str, int] = {}  # hash -> first input index with that text
    for i, h in enumerate(hashes):
        unique.setdefault(h, i)
    found: dict[str, np.ndarray] = {}
    seen: set[str] = set()  # texts this caller had embedded before: the only hits it is told of
    cacheable = spec.cached and use_cache
    if cacheable:
        found, seen = await _cache_lookup(spec, list(unique), settings, caller)
    missing = [i for h, i in unique.items() if h not in found]
    # served from the cache, but new to this caller: priced and reported as embedded now
    others = [i for h, i in unique.items() if h in found and h not in seen] if caller is not None else []
    result = EmbedResult([], spec.name, spec.dimensions or 0, cached=sum(
        1 for h in hashes if h in found and (caller is None or h in seen)))
    if missing:
        fresh = await _embed_missing(spec, [texts[i] for i in missing], [tokens[i] for i in missing],
                                     settings, request_id, caller, user_id, on_batch, result,
                                     [hashes[i] for i in missing] if cacheable else None)
        for i, vector in zip(missing, fresh, strict=True):
            found[hashes[i]] = vector
    elif on_batch is not None:
        await on_batch(0, 0, len(texts))
    result.vectors = [found[h] for h in hashes]
    result.embedded = len(missing) + len(others)
    if others:
        result.tokens += sum(tokens[i] for i in others)
        result.cost_usd = _price(spec, result.tokens)
    if cacheable and caller is not None and others:
        await _mark_seen(spec, [hashes[i] for i in others], caller, settings)
    if result.vectors:
        result.dimensions = len(result.vectors[0])
    return result


async def _embed_missing(
    spec: EmbeddingModel, texts: list[str], tokens: list[int], settings: Settings,
    request_id: str | None, caller: str | None, user_id: str | None, on_batch: OnBatch | None,
    result: EmbedResult, hashes_to_cache: list[str] | None,
) -> list[np.ndarray]:
    from lib.providers.retry import ProviderCallFailed, RetryPolicy, call_with_retries

    embedder = embedder_for(spec, settings)
    if settings.embedding_batch_size > 0 and settings.embedding_batch_size < spec.max_batch_inputs:
        spec = replace(spec, max_batch_inputs=settings.embedding_batch_size)
    batches = plan_batches(list(range(len(texts))), tokens, spec)
    vectors: list[np.ndarray | None] = [None] * len(texts)
    limit = asyncio.Semaphore(max(1, settings.embedding_concurrency))
    policy = RetryPolicy.from_settings(settings)
    deadline = time.monotonic() + settings.total_timeout_s
    failures: list[ProviderCallFailed] = []
    done = 0
    done_inputs = 0
    is_provider = spec.provider != "local"

    async def run(batch: list[int]) -> None:
        nonlocal done, done_inputs
        async with limit:
            if failures:  # another batch failed for good: do not spend more
                return
            inputs = [texts[i] for i in batch]

            async def attempt(number: int) -> EmbeddedBatch:
                started = time.monotonic()
                answer = await embedder.embed(inputs)
                if len(answer.vectors) != len(inputs):
                    raise ValueError(f"{len(answer.vectors)} vectors for {len(inputs)} inputs")
                if is_provider:
                    await _record(spec, settings, "ok", number, answer.tokens, time.monotonic() - started,
                                  request_id, caller, user_id)
                return answer

            async def failed(number: int, failure: Failure, latency_s: float) -> None:
                if is_provider:
                    await _record(spec, settings, "error", number, 0, latency_s, request_id, caller,
                                  user_id, failure)

            try:
                answer = await call_with_retries(attempt, policy, deadline=deadline, on_failure=failed)
            except ProviderCallFailed as exc:
                failures.append(exc)
                return
            for i, vector in zip(batch, answer.vectors, strict=True):
                vectors[i] = vector
            result.tokens += answer.tokens
            if hashes_to_cache is not None:
                batch_hashes = [hashes_to_cache[i] for i in batch]
                await _cache_store(spec, batch_hashes, answer.vectors, settings)
                if caller is not None:  # kept even if a later batch fails: a retry sees them as its own
                    await _mark_seen(spec, batch_hashes, caller, settings)
            done += 1
            done_inputs += len(batch)
            if on_batch is not None:
                await on_batch(done, len(batches), done_inputs)

    await asyncio.gather(*(run(b) for b in batches))
    result.batches = done
    result.cost_usd = _price(spec, result.tokens)
    if failures:
        first = failures[0]
        log("warning", "embedding_failed", model=spec.name, batches=len(batches), succeeded=done,
            request_id=request_id, code=first.failure.code)
        raise first.failure.to_api_error(spec.name) from first
    return [v for v in vectors if v is not None]


async def _record(spec: EmbeddingModel, settings: Settings, status: str, attempt: int, tokens: int,
                  latency_s: float, request_id: str | None, caller: str | None, user_id: str | None,
                  failure: Failure | None = None) -> None:
    from lib.providers.usage import UsageRecord, record_usage

    price = spec.price_per_million_tokens
    await record_usage(UsageRecord(
        provider=spec.provider, model=spec.name, kind="embedding", status=status, attempt=attempt,
        request_id=request_id, user_id=user_id, caller=caller, input_tokens=tokens,
        cost_usd=None if price is None else tokens * price / 1_000_000,
        latency_ms=round(latency_s * 1000, 2), error_code=failure.code if failure else None,
        http_status=failure.status if failure else None,
    ), settings=settings)


def _price(spec: EmbeddingModel, tokens: int) -> float | None:
    price = spec.price_per_million_tokens
    return None if price is None else round(tokens * price / 1_000_000, 10)


async def _cache_lookup(spec: EmbeddingModel, hashes: list[str], settings: Settings,
                        caller: str | None) -> tuple[dict[str, np.ndarray], set[str]]:
    """The cached vectors, and which of them `caller` had embedded before."""
    from lib import db

    async with db.connect(settings) as conn:
        # binary results: float4 values arrive exactly as a fresh float32 answer decodes them
        cur = conn.cursor(binary=True)
        await cur.execute(
            "SELECT c.content_hash, c.embedding, s.caller IS NOT NULL FROM embedding_cache c"
            " LEFT JOIN embedding_cache_seen s ON s.caller = %(caller)s AND s.model = c.model"
            "  AND s.dimensions = c.dimensions AND s.content_hash = c.content_hash"
            " WHERE c.model = %(model)s AND c.dimensions = %(dims)s AND c.content_hash = ANY(%(hashes)s)",
            {"caller": caller or "", "model": spec.name, "dims": spec.dimensions or 0, "hashes": hashes},
        )
        rows = await cur.fetchall()
    return {h: v.to_numpy() for h, v, _ in rows}, {h for h, _, was_seen in rows if was_seen}


async def _mark_seen(spec: EmbeddingModel, hashes: list[str], caller: str, settings: Settings) -> None:
    from lib import db

    async with db.connect(settings) as conn:
        await conn.execute(
            "INSERT INTO embedding_cache_seen (caller, model, dimensions, content_hash)"
            " SELECT %s, %s, %s, h FROM unnest(%s::text[]) AS t(h) ON CONFLICT DO NOTHING",
            (caller, spec.name, spec.dimensions or 0, hashes),
        )


async def _cache_store(spec: EmbeddingModel, hashes: list[str], vectors: np.ndarray,
                       settings: Settings) -> None:
    from lib import db
    from lib.db.vector import to_vector

    async with db.connect(settings) as conn:
        await conn.execute(
            "INSERT INTO embedding_cache (model, dimensions, content_hash, embedding)"
            " SELECT %s, %s, h, e FROM unnest(%s::text[], %s::vector[]) AS t(h, e)"
            " ON CONFLICT DO NOTHING",
            (spec.name, spec.dimensions or 0, hashes, [to_vector(v) for v in vectors]),
        )
