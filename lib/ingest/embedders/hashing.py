"""`local/hash-<dims>`: a hashing embedder. No model, no network, deterministic, instant.

Each word (lower-cased, split on non-letters) and each pair of adjacent words is hashed (CRC-32,
stable across processes) to a dimension and a sign; counts are damped (1 + log tf) and the vector
is L2-normalised. Cosine similarity between two vectors then measures shared words and phrases:
it finds "postgres connection pooling" in a chunk that says those words, but it knows no
synonyms and no meaning. It is the offline default so everything works without a key; use a real
model (`local/all-minilm-l6-v2`, `openai/text-embedding-3-small`) for semantic search.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter

from lib.ingest.embedders import EmbeddedBatch
from lib.tokens import count_tokens

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def hash_vector(text: str, dimensions: int) -> list[float]:
    words = _WORD.findall(text.lower())
    features = Counter(words)
    features.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    vector = [0.0] * dimensions
    for feature, count in features.items():
        digest = zlib.crc32(feature.encode())
        weight = 1.0 + math.log(count)
        # the top bit picks the sign, so unrelated features cancel out instead of piling up
        vector[digest % dimensions] += -weight if digest & 0x80000000 else weight
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # no words at all: a fixed unit vector, since a zero vector has no cosine
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


class HashingEmbedder:
    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions

    async def embed(self, texts: list[str]) -> EmbeddedBatch:
        vectors = [hash_vector(t, self.dimensions) for t in texts]
        return EmbeddedBatch(vectors, sum(count_tokens(t) for t in texts))
