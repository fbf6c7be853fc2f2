"""Embeddings over the OpenAI wire format: OpenAI, Gemini and OpenRouter's compatible endpoints,
and any OpenAI-compatible server (Ollama, vLLM, LM Studio) as `compat/<model>`.

The client comes from the provider registry (`lib.providers.openai_client`), shared with chat and
built with the SDK's retries off; `lib/ingest/embedding.py` runs the retry loop and the ledger.
The SDK's exceptions leave as `ProviderError`, mapped as the chat adapter maps them.
Vectors are asked for as base64 float32, a quarter of the JSON size, and decoded here with numpy.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lib.config import Settings
from lib.ingest.embedders import MAX_DIMENSIONS, EmbeddedBatch, EmbeddingModel
from lib.providers.openai_wire import map_exceptions
from lib.tokens import count_tokens

if TYPE_CHECKING:
    import numpy as np


def decode_vectors(values: Sequence[Any]) -> np.ndarray:
    """A provider's embeddings, base64 of little-endian float32 or lists of floats, as a float32
    matrix (one row per input). A ragged, malformed, non-finite or too long answer is a ValueError
    (a `provider_error`): pgvector would only refuse NaN, infinity or 16,001 dimensions later,
    mid-write."""
    import numpy as np

    if all(isinstance(value, str) for value in values):
        rows = [np.frombuffer(base64.b64decode(value), dtype="<f4") for value in values]
        if len({row.size for row in rows}) > 1:
            raise ValueError("the provider returned embeddings of different lengths")
        matrix = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    else:
        matrix = np.asarray(values, dtype=np.float32)
    if matrix.ndim != 2 or (matrix.size and not np.isfinite(matrix).all()):
        raise ValueError("the provider returned embeddings that are not lists of finite numbers")
    if matrix.shape[1] > MAX_DIMENSIONS:
        raise ValueError(f"the provider returned {matrix.shape[1]} dimensions; pgvector holds at most "
                         f"{MAX_DIMENSIONS}")
    return matrix


def encode_vector(vector: Sequence[float] | np.ndarray) -> str:
    """The OpenAI base64 encoding: little-endian float32."""
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


class OpenAIEmbedder:
    def __init__(self, spec: EmbeddingModel, settings: Settings) -> None:
        from lib import errors
        from lib.providers import PROVIDERS, openai_client

        self.spec = spec
        try:  # built here, before any retry loop, so a missing key is a clear 503 at once
            self.client = openai_client(spec.provider, settings)
        except errors.ConfigurationError as exc:
            provider = PROVIDERS[spec.provider]
            variable = "OPENAI_COMPATIBLE_BASE_URL" if spec.provider == "compat" else provider.key_env
            raise errors.ConfigurationError(
                f"{spec.name} needs {variable}; or use the offline local/hash-384",
                code="provider_not_configured") from exc

    async def embed(self, texts: list[str]) -> EmbeddedBatch:
        client = self.client
        options: dict[str, Any] = {"model": self.spec.model, "input": texts, "encoding_format": "base64"}
        if self.spec.requested_dimensions:
            options["dimensions"] = self.spec.requested_dimensions
        with map_exceptions(self.spec.provider):
            response = await client.embeddings.create(**options)
        rows = sorted(response.data, key=lambda d: d.index)
        if len(rows) != len(texts):
            raise ValueError(f"the provider returned {len(rows)} embeddings for {len(texts)} inputs")
        usage = getattr(response, "usage", None)
        tokens = getattr(usage, "prompt_tokens", None) or sum(count_tokens(t) for t in texts)
        return EmbeddedBatch(decode_vectors([row.embedding for row in rows]), int(tokens))
