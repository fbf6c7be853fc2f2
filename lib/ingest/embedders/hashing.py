"""`local/hash-<dims>`: a hashing embedder. No model, no network, deterministic, instant.

Each word (lower-cased, split on non-letters) and each pair of adjacent words is hashed (CRC-32,
stable across processes) to a dimension and a sign; counts are damped (1 + log tf) and the vector
is L2-normalised. Cosine similarity between two vectors then measures shared words and phrases:
it finds "postgres connection pooling" in a chunk that says those words, but it knows no
synonyms and no meaning. It is the offline default so everything works without a key; use a real
model (`local/all-minilm-l6-v2`, `openai/text-embedding-3-small`) for semantic search.

Hashing and adding up the features is Python; normalising is numpy, for the whole batch.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lib.ingest.embedders import EmbeddedBatch
from lib.tokens import count_tokens

if TYPE_CHECKING:
    import numpy as np

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def hash_vectors(texts: Sequence[str], dimensions: int) -> np.ndarray:
    """One L2-normalised float32 row per text."""
    import numpy as np

    matrix = np.zeros((len(texts), dimensions))
    for row, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        features = Counter(words)
        features.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
        vector = [0.0] * dimensions  # a list: one item at a time is faster there than in an array
        for feature, count in features.items():
            digest = zlib.crc32(feature.encode())
            weight = 1.0 + math.log(count)
            # the top bit picks the sign, so unrelated features cancel out instead of piling up
            vector[digest % dimensions] += -weight if digest & 0x80000000 else weight
        matrix[row] = vector
    norms = np.linalg.norm(matrix, axis=1)
    empty = norms == 0.0
    matrix[empty, 0] = 1.0  # no words at all: a fixed unit vector, since a zero vector has no cosine
    norms[empty] = 1.0
    return (matrix / norms[:, None]).astype(np.float32)


class HashingEmbedder:
    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions

    async def embed(self, texts: list[str]) -> EmbeddedBatch:
        return EmbeddedBatch(hash_vectors(texts, self.dimensions), sum(count_tokens(t) for t in texts))
