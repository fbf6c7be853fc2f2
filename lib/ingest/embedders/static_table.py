"""`local/static-minilm`: meaning without a model at run time, from a table of word-piece vectors.

The table (`static/embeddings.npy`, 30,522 rows of 256 float16 values, 15.6 MB) was distilled
once from all-MiniLM-L6-v2 by `scripts/distill_static_embedder.py` (the model2vec recipe: each
vocabulary token through the model on its own, PCA, rank weighting). A text's vector is the mean
of its word pieces' rows, L2-normalised: a dictionary lookup and an average, thousands of texts a
second on one core, offline, with no torch. It understands synonyms and topics the way its
teacher does, only less sharply (numbers in docs/retrieval.md). The teacher's license (Apache-2.0)
is in `static/LICENSE-MODEL`.

numpy and `tokenizers` are imported on first use only: an instance that never embeds never pays.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from lib.ingest.embedders import EmbeddedBatch
from lib.tokens import count_tokens

TABLE_DIR = Path(__file__).resolve().parent / "static"
DIMENSIONS = 256


class StaticEmbedder:
    _shared: StaticEmbedder | None = None
    _lock = threading.Lock()

    def __init__(self, folder: Path = TABLE_DIR) -> None:
        import numpy as np
        from tokenizers import Tokenizer

        self._np = np
        # stored as float16 (15.6 MB), summed as float32 (31 MB in memory, converted once)
        self.table: Any = np.load(folder / "embeddings.npy").astype(np.float32)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    @classmethod
    def shared(cls) -> StaticEmbedder:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def encode(self, texts: list[str]) -> list[list[float]]:
        np = self._np
        vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch(texts, add_special_tokens=False)):
            ids, counts = np.unique(np.asarray(encoding.ids, dtype=np.int64), return_counts=True)
            vectors[row] = counts.astype(np.float32) @ self.table[ids]  # the sum of its pieces' rows
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        blank = norms[:, 0] == 0.0  # nothing the vocabulary knows: a fixed unit vector, as hashing does
        vectors[blank, 0], norms[blank] = 1.0, 1.0
        return (vectors / norms).tolist()

    async def embed(self, texts: list[str]) -> EmbeddedBatch:
        vectors = await asyncio.to_thread(self.encode, texts)
        return EmbeddedBatch(vectors, sum(count_tokens(t) for t in texts))
