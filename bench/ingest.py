"""Ingest throughput: chunks per second into Postgres, this bundle against langchain-postgres's PGVector.

Two figures, each on the same machine and Postgres server, in rounds that alternate the sides so a
noisy neighbour slows both alike:

1. Storage, the same rows: N chunks with the same texts, the same 384-dimension vectors (a stub
   embedder: vectors computed before the clock starts) and the same metadata, written by
   - this bundle's write transaction (`lib.ingest.store.store_document`: document row + binary COPY), as
     shipped (partial HNSW index, and the BM25 postings and statistics written for the whole
     document in the same transaction, tokenizing included), and without the keyword index
     (vectors only, like for like with PGVector + HNSW);
   - PGVector.add_embeddings (SQLAlchemy multi-row INSERT), with no vector index (its default) and
     with an HNSW index on its embedding column.
2. End to end, one long text document: extract + chunk + embed (the same hashing embedder on both
   sides) + store: `lib.ingest.store.ingest_document` (HNSW and BM25 statistics maintained) against
   RecursiveCharacterTextSplitter + PGVector.add_texts (HNSW index on its table).

    .venv/bin/python bench/ingest.py [--chunks 3000] [--rounds 3] [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envs import DATA_DIR, PROJECT_ROOT, ensure_env  # noqa: E402
from measure import arguments, emit, table  # noqa: E402
from pg import drop_database, fresh_database  # noqa: E402

sys.path.insert(0, str(PROJECT_ROOT))

DIMENSIONS = 384
MODEL = f"local/hash-{DIMENSIONS}"
WORDS = ("postgres vector index chunk embedding search query document namespace upload retrieval "
         "answer citation latency batch cache token model provider stream function bundle deploy "
         "the a of and to in is for with on that by this be are from").split()


def corpus(count: int, seed: int = 11) -> list[str]:
    """`count` chunk texts of about 200 words, deterministic."""
    rng = random.Random(seed)
    texts = []
    for i in range(count):
        sentences = []
        for _ in range(12):
            words = [rng.choice(WORDS) for _ in range(rng.randint(10, 24))]
            sentences.append(" ".join(words).capitalize() + ".")
        texts.append(f"Chunk {i}. " + " ".join(sentences))
    return texts


def sqlalchemy_url(conninfo: str) -> str:
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(conninfo)
    user = quote(str(parts.get("user", "postgres")))
    password = f":{quote(str(parts['password']))}" if parts.get("password") else ""
    host = str(parts.get("host", "localhost"))
    port = f":{parts['port']}" if parts.get("port") else ""
    if host.startswith("/"):
        return f"postgresql+psycopg://{user}{password}@/{parts['dbname']}?host={quote(host)}"
    return f"postgresql+psycopg://{user}{password}@{host}{port}/{parts['dbname']}"


# --- this bundle -----------------------------------------------------------------------------------


async def ours_storage(url: str, texts: list[str], vectors: list[list[float]], run: int,
                       keywords: bool, index: bool = True) -> float:
    from lib import db
    from lib.ingest.chunking import Chunk
    from lib.ingest.store import store_document
    from lib.ingest.vector_index import ensure_vector_index, vector_index_name
    from lib.tokens import count_tokens

    chunks = [Chunk(t, 0, len(t), count_tokens(t), ("Bench",), None, i) for i, t in enumerate(texts)]
    from lib.ingest.keywords import ChunkTerms, analyze_chunks

    label = "full" if keywords else "vectors" if index else "rows"
    fields = {"namespace": f"storage-{label}-{run}", "source": "bench.txt",
              "title": "bench", "media_type": "text/plain", "content_hash": f"run-{run}", "source_etag": None,
              "blob_key": None, "metadata": json.dumps({"suite": "bench", "run": run}), "embedding_model": MODEL,
              "chunk_count": len(chunks), "token_count": sum(c.token_count for c in chunks),
              "chunking": json.dumps({})}
    async with await db.open_connection(url) as conn:
        if index:
            await ensure_vector_index(conn, MODEL, DIMENSIONS)
        else:
            await conn.execute(f"DROP INDEX IF EXISTS {vector_index_name(MODEL)}")
        started = time.perf_counter()
        # as ingest_document writes a document this large: tokenized first, keyword index per document
        # (without keywords: no terms for any chunk, so nothing for the keyword index to write)
        analyzed = (await analyze_chunks(conn, fields["namespace"], texts) if keywords
                    else [ChunkTerms() for _ in chunks])
        await store_document(conn, fields, chunks, vectors, analyzed)
        elapsed = time.perf_counter() - started
        if not index:  # put it back, off the clock: the end-to-end run must not rebuild it over every row
            await ensure_vector_index(conn, MODEL, DIMENSIONS)
    return elapsed


async def ours_end_to_end(url: str, text: str, run: int, overlap: bool = True) -> tuple[float, int]:
    """`ingest_document` on one long document; without `overlap`, every chunk is embedded before
    the write starts (one slice), to show what writing while embedding gains."""
    from lib import config, db
    from lib.ingest import store

    settings = replace(config.get_settings(), database_url=url)
    slice_size = store.EMBED_SLICE
    store.EMBED_SLICE = slice_size if overlap else 10**9
    try:
        started = time.perf_counter()
        options = store.IngestOptions(namespace=f"e2e-{run}-{'overlap' if overlap else 'serial'}",
                                      embedding_model=MODEL)
        result = await store.ingest_document(text.encode(), "long.txt", options, settings=settings)
        elapsed = time.perf_counter() - started
    finally:
        store.EMBED_SLICE = slice_size
    await db.close_pools()
    return elapsed, result.chunks


# --- LangChain, in its own environment --------------------------------------------------------------

LANGCHAIN_CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from lib.ingest.embedders.hashing import hash_vectors
from langchain_core.embeddings import Embeddings
from langchain_postgres import PGVector
from langchain_text_splitters import RecursiveCharacterTextSplitter
from sqlalchemy import create_engine, text as sql

job = json.load(open({job!r}))

class HashEmbeddings(Embeddings):
    def embed_documents(self, texts):
        return hash_vectors(texts, {dims}).tolist()
    def embed_query(self, text):
        return hash_vectors([text], {dims})[0].tolist()

engine = create_engine(job["url"])
out = {{}}
texts, vectors = job["texts"], job["vectors"]
metadatas = [{{"suite": "bench", "run": job["run"], "heading_path": ["Bench"]}} for _ in texts]
for variant in ("plain", "hnsw"):
    store = PGVector(HashEmbeddings(), connection=engine, collection_name=f"{{variant}}-{{job['run']}}",
                     embedding_length={dims}, use_jsonb=True)
    if variant == "hnsw":
        with engine.begin() as conn:
            conn.execute(sql("CREATE INDEX IF NOT EXISTS lc_hnsw ON langchain_pg_embedding"
                             " USING hnsw (embedding vector_cosine_ops)"))
    else:
        with engine.begin() as conn:
            conn.execute(sql("DROP INDEX IF EXISTS lc_hnsw"))
    started = time.perf_counter()
    store.add_embeddings(texts, vectors, metadatas)
    out[variant] = time.perf_counter() - started

store = PGVector(HashEmbeddings(), connection=engine, collection_name=f"e2e-{{job['run']}}",
                 embedding_length={dims}, use_jsonb=True)
started = time.perf_counter()
splitter = RecursiveCharacterTextSplitter(chunk_size=job["chunk_chars"], chunk_overlap=job["overlap_chars"])
pieces = splitter.split_text(job["document"])
store.add_texts(pieces, [{{"source": "long.txt"}} for _ in pieces])
out["e2e"] = time.perf_counter() - started
out["e2e_chunks"] = len(pieces)
with engine.begin() as conn:
    conn.execute(sql("DROP INDEX IF EXISTS lc_hnsw"))
print(json.dumps(out))
"""


def langchain_round(python: Path, url: str, texts: list[str], vectors: list[list[float]], document: str,
                    run: int) -> dict:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    job_path = DATA_DIR / "ingest-job.json"
    job_path.write_text(json.dumps({"url": sqlalchemy_url(url), "texts": texts, "vectors": vectors,
                                    "document": document, "run": run, "chunk_chars": 1600,
                                    "overlap_chars": 240}))
    script = LANGCHAIN_CHILD.format(root=str(PROJECT_ROOT), job=str(job_path), dims=DIMENSIONS)
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=1200)
    job_path.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"LangChain run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the run ---------------------------------------------------------------------------------------


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=3000, help="chunks per storage run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    count, rounds = (300, 1) if args.quick else (args.chunks, args.rounds)

    from lib.ingest.embedders.hashing import hash_vectors
    from lib.ingest.store import EMBED_SLICE

    texts = corpus(count)
    vectors = hash_vectors(texts, DIMENSIONS).tolist()  # lists: the peer's job file is JSON
    document = "\n\n".join(texts)
    python = ensure_env("langchain")
    ours_url = fresh_database("ingest_ours")
    peer_url = fresh_database("ingest_langchain")
    times: dict[str, list[float]] = {k: [] for k in ("ours", "ours_vectors", "ours_rows", "lc_plain",
                                                     "lc_hnsw", "ours_e2e", "ours_e2e_serial", "lc_e2e")}
    e2e_chunks = {"ours": 0, "langchain": 0}
    try:
        for run in range(rounds):
            times["ours"].append(asyncio.run(ours_storage(ours_url, texts, vectors, run, keywords=True)))
            times["ours_vectors"].append(asyncio.run(ours_storage(ours_url, texts, vectors, run, keywords=False)))
            times["ours_rows"].append(asyncio.run(ours_storage(ours_url, texts, vectors, run, keywords=False,
                                                               index=False)))
            elapsed, e2e_chunks["ours"] = asyncio.run(ours_end_to_end(ours_url, document, run))
            times["ours_e2e"].append(elapsed)
            times["ours_e2e_serial"].append(asyncio.run(ours_end_to_end(ours_url, document, run, overlap=False))[0])
            peer = langchain_round(python, peer_url, texts, vectors, document, run)
            times["lc_plain"].append(peer["plain"])
            times["lc_hnsw"].append(peer["hnsw"])
            times["lc_e2e"].append(peer["e2e"])
            e2e_chunks["langchain"] = peer["e2e_chunks"]
            print(f"round {run + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                  file=sys.stderr)
    finally:
        drop_database("ingest_ours")
        drop_database("ingest_langchain")

    median = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: count / median[k] for k in ("ours", "ours_vectors", "ours_rows", "lc_plain", "lc_hnsw")}
    rate["ours_e2e"] = e2e_chunks["ours"] / median["ours_e2e"]
    rate["ours_e2e_serial"] = e2e_chunks["ours"] / median["ours_e2e_serial"]
    rate["lc_e2e"] = e2e_chunks["langchain"] / median["lc_e2e"]
    figures = {"chunks": count, "rounds": rounds, "dimensions": DIMENSIONS, "seconds_median": median,
               "chunks_per_second": rate, "end_to_end_chunks": e2e_chunks,
               "speedup_like_for_like": rate["ours_vectors"] / rate["lc_hnsw"],
               "speedup_no_index": rate["ours_rows"] / rate["lc_plain"],
               "speedup_as_shipped_vs_pgvector_default": rate["ours"] / rate["lc_plain"],
               "speedup_end_to_end": rate["ours_e2e"] / rate["lc_e2e"]}
    storage = table(
        ["writer (same rows)", "vector index", "keyword stats", "seconds (median)", "chunks/s"],
        [["this bundle: store_document (binary COPY)", "HNSW", "BM25, per document", f"{median['ours']:.2f}",
          f"{rate['ours']:,.0f}"],
         ["this bundle, no keyword index", "HNSW", "-", f"{median['ours_vectors']:.2f}", f"{rate['ours_vectors']:,.0f}"],
         ["this bundle, no keyword index, HNSW dropped", "none", "-", f"{median['ours_rows']:.2f}",
          f"{rate['ours_rows']:,.0f}"],
         ["langchain-postgres PGVector.add_embeddings", "none (default)", "-", f"{median['lc_plain']:.2f}",
          f"{rate['lc_plain']:,.0f}"],
         ["langchain-postgres PGVector.add_embeddings", "HNSW", "-", f"{median['lc_hnsw']:.2f}",
          f"{rate['lc_hnsw']:,.0f}"]])
    end_to_end = table(
        ["pipeline (one text document)", "chunks", "seconds (median)", "chunks/s"],
        [["this bundle: ingest_document (chunk, embed, HNSW + BM25)", e2e_chunks["ours"],
          f"{median['ours_e2e']:.2f}", f"{rate['ours_e2e']:,.0f}"],
         ["this bundle, every chunk embedded before the write starts", e2e_chunks["ours"],
          f"{median['ours_e2e_serial']:.2f}", f"{rate['ours_e2e_serial']:,.0f}"],
         ["LangChain: RecursiveCharacterTextSplitter + PGVector.add_texts (HNSW)", e2e_chunks["langchain"],
          f"{median['lc_e2e']:.2f}", f"{rate['lc_e2e']:,.0f}"]])
    markdown = (
        f"## Ingest throughput\n\n{count} chunks of about 200 words with {DIMENSIONS}-dimension vectors "
        f"from a stub embedder, median of {rounds} rounds, one Postgres server.\n\n{storage}\n\n"
        f"Like for like: {figures['speedup_like_for_like']:.1f}x the chunks per second of PGVector with an "
        f"HNSW index, {figures['speedup_no_index']:.1f}x with no index on either side. As shipped, this bundle "
        f"also writes the HNSW index and the BM25 postings and statistics (chunks tokenized, term ids, "
        f"statistics as one delta row per term) in the same transaction; the keyword index takes "
        f"{1 - median['ours_vectors'] / median['ours']:.0%} of its write time.\n\n"
        f"End to end, with the same hashing embedder on both sides ({figures['speedup_end_to_end']:.2f}x "
        f"LangChain's chunks per second). A document of {EMBED_SLICE} chunks or more is embedded in "
        f"slices written as they come, while Postgres tokenizes it on another connection; the second row "
        f"embeds it whole first:\n\n{end_to_end}\n")
    emit(args, "ingest", figures, markdown)


if __name__ == "__main__":
    main()
