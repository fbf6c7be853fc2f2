"""Embeddings over the OpenAI wire format: OpenAI, Gemini and OpenRouter's compatible endpoints,
and any OpenAI-compatible server (Ollama, vLLM, LM Studio) as `compat/<model>`.

The client comes from the provider registry (`lib.providers.openai_client`), shared with chat and
built with the SDK's retries off; `lib/ingest/embedding.py` runs the retry loop and the ledger.
The SDK's exceptions leave as `ProviderError`, mapped as the chat adapter maps them.
Vectors are asked for as base64 float32, a quarter of the JSON size, and decoded here.
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

from lib.config import Settings
from lib.ingest.embedders import EmbeddedBatch, EmbeddingModel
from lib.providers.openai_wire import map_exceptions
from lib.tokens import count_tokens


def decode_vector(value: Any) -> list[float]:
    if isinstance(value, str):
        floats = array("f", base64.b64decode(value))
        if sys.byteorder != "little":
            floats.byteswap()
        return floats.tolist()
    return [float(v) for v in value]


def encode_vector(vector: list[float]) -> str:
    """The OpenAI base64 encoding: little-endian float32."""
    floats = array("f", vector)
    if sys.byteorder != "little":
        floats.byteswap()
    return base64.b64encode(floats.tobytes()).decode()


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
        return EmbeddedBatch([decode_vector(row.embedding) for row in rows], int(tokens))
