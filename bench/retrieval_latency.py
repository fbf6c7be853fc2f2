"""Retrieval latency on 100,000 chunks of 384 dimensions, and HNSW recall@10 against exact search.

Synthetic but shaped like real data: chunk texts of ~40 words drawn from a Zipf-distributed
vocabulary, vectors in 200 broad, overlapping clusters, queries near stored chunks, 1% of chunks
tagged `kind: faq` for the filtered runs. Chunks are loaded with binary COPY (`lib.ingest.store.copy_chunks`, the ingestion path's
loader; the triggers on `chunks` write the same BM25 postings and statistics ingestion does), the HNSW index is built after the
load. Every timed search is `lib.retrieval.search.search` with a precomputed query vector: the figures are
retrieval, not embedding. The database is kept between runs (`bench_latency`) unless --rebuild.

    .venv/bin/python bench/retrieval_latency.py [--chunks 100000] [--queries 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

MODEL = "local/synthetic-384"
DIMS = 384
NAMESPACE = "latency"
CHUNKS_PER_DOCUMENT = 100


def vocabulary(size: int = 20_000) -> list[str]:
    """Pronounceable made-up words, so the English stemmer leaves them mostly alone."""
    import random

    rng = random.Random(7)
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        length = rng.randint(2, 4)
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(length)))
    return sorted(words)


def synthetic_data(chunks: int, seed: int = 42):
    import numpy as np

    rng = np.random.default_rng(seed)
    words = np.array(vocabulary())
    ranks = np.arange(1, len(words) + 1)
    zipf = (1 / ranks) / (1 / ranks).sum()
    # broad, overlapping clusters: neighbourhoods are real but not trivially separable
    centres = rng.normal(size=(200, DIMS)).astype(np.float32)
    assignment = rng.integers(0, len(centres), size=chunks)
    vectors = centres[assignment] + 1.2 * rng.normal(size=(chunks, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lengths = rng.integers(25, 55, size=chunks)
    texts = [" ".join(rng.choice(words, size=n, p=zipf)) for n in lengths]
    faq = rng.random(chunks) < 0.01
    return words, zipf, centres, vectors, texts, faq


async def load(url: str, chunks: int) -> float:
    from lib import db
    from lib.ingest.store import copy_chunks, vector_index_sql

    started = time.perf_counter()
    _, _, _, vectors, texts, faq = synthetic_data(chunks)
    async with await db.open_connection(url) as conn:
        documents = (chunks + CHUNKS_PER_DOCUMENT - 1) // CHUNKS_PER_DOCUMENT
        async with conn.transaction():
            cur = await conn.execute(
                "INSERT INTO documents (namespace, source, media_type, content_hash, embedding_model, chunk_count)"
                " SELECT %s, 'doc-' || g || '.txt', 'text/plain', md5(g::text), %s, %s"
                " FROM generate_series(1, %s) g RETURNING id", (NAMESPACE, MODEL, CHUNKS_PER_DOCUMENT, documents))
            ids = [row[0] for row in await cur.fetchall()]
            batch = 10_000
            for start in range(0, chunks, batch):
                rows = []
                for i in range(start, min(chunks, start + batch)):
                    text = texts[i]
                    rows.append((ids[i // CHUNKS_PER_DOCUMENT], NAMESPACE, i % CHUNKS_PER_DOCUMENT, text,
                                 f"h{i}", len(text.split()), [], None, 0, len(text),
                                 {"kind": "faq" if faq[i] else "note"}, MODEL, vectors[i]))
                await copy_chunks(conn, rows)
                print(f"  loaded {min(chunks, start + batch)} chunks", file=sys.stderr)
        async with conn.transaction():
            await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            await conn.execute(vector_index_sql(MODEL, DIMS))
        await conn.execute("SELECT compact_keyword_stats()")
        await conn.execute("ANALYZE")
    return time.perf_counter() - started


async def chunk_count(url: str) -> int:
    import psycopg

    from lib import db

    try:
        async with await psycopg.AsyncConnection.connect(url, **db.connection_kwargs()) as conn:
            cur = await conn.execute("SELECT count(*) FROM chunks WHERE namespace = %s", (NAMESPACE,))
            return (await cur.fetchone())[0]
    except psycopg.Error:
        return 0


# the keyword index's tables, whichever schema the database has, against the chunks themselves
SIZED_TABLES = ("chunks", "chunk_terms", "postings", "terms", "term_stats", "term_stats_delta", "keyword_stats")


async def table_sizes(url: str) -> dict[str, float]:
    """Megabytes on disk (heap, indexes, TOAST) of each table in SIZED_TABLES that exists."""
    from lib import db

    async with await db.open_connection(url) as conn:
        cur = await conn.execute(
            "SELECT t, pg_total_relation_size(to_regclass(t)) / 1048576.0 FROM unnest(%s::text[]) t"
            " WHERE to_regclass(t) IS NOT NULL", (list(SIZED_TABLES),))
        return {name: round(float(mb), 1) for name, mb in await cur.fetchall()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def measure(chunks: int, queries: int) -> dict:
    import numpy as np

    from lib import db
    from lib.config import get_settings
    from lib.retrieval.search import SearchOptions, rank, search

    settings = get_settings()
    words, zipf, _, vectors, _, _ = synthetic_data(chunks)
    rng = np.random.default_rng(1)
    # queries near stored chunks, as real questions land near the passages that answer them
    query_vectors = vectors[rng.integers(0, len(vectors), size=queries)] + 0.05 * rng.normal(size=(queries, DIMS))
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
    # query words from the middle of the distribution: present in some thousands of chunks each
    query_texts = [" ".join(rng.choice(words[50:3000], size=3)) for _ in range(queries)]
    # and words drawn as often as they occur, so most queries hold one of the most frequent terms
    common_texts = [" ".join(rng.choice(words, size=3, p=zipf)) for _ in range(queries)]

    runs = [
        ("keyword", {"mode": "keyword"}),
        ("vector", {"mode": "vector"}),
        ("hybrid", {"mode": "hybrid"}),
        ("vector, filter kind=faq (1%)", {"mode": "vector", "filter": {"kind": "faq"}}),
        ("hybrid, filter kind=faq (1%)", {"mode": "hybrid", "filter": {"kind": "faq"}}),
    ]
    common = [(f"{label}, common terms", extra) for label, extra in runs if extra["mode"] != "vector"]
    results = []
    async with db.connect(settings) as conn:  # applies new migrations to a database kept from a run before
        await conn.execute("VACUUM ANALYZE")  # as autovacuum would have by now: visibility map, statistics
        for label, extra in runs + common:
            texts = common_texts if label.endswith("common terms") else query_texts
            timings = []
            for i in range(queries):
                options = SearchOptions(namespace=NAMESPACE, top_k=10, **extra)
                started = time.perf_counter()
                await search(conn, texts[i], options, settings, {MODEL: query_vectors[i].tolist()})
                timings.append((time.perf_counter() - started) * 1000)
            results.append({"run": label, "p50_ms": round(statistics.median(timings), 2),
                            "p95_ms": round(percentile(timings, 0.95), 2),
                            "p99_ms": round(percentile(timings, 0.99), 2), "queries": queries})
            print(f"  {label}: p50 {results[-1]['p50_ms']} ms, p95 {results[-1]['p95_ms']} ms,"
                  f" p99 {results[-1]['p99_ms']} ms", file=sys.stderr)
        recalls = []
        # pgvector's default, the earlier default, this bundle's default (HNSW_EF_SEARCH) and above
        for ef_search in sorted({40, 100, settings.hnsw_ef_search, 400}):
            found = []
            exact_times = []
            approx_times = []
            for i in range(min(queries, 100)):
                vector = {MODEL: query_vectors[i].tolist()}
                started = time.perf_counter()
                approx, _, _ = await rank(conn, "", SearchOptions(namespace=NAMESPACE, top_k=10, mode="vector",
                                                              ef_search=ef_search), settings, vector)
                approx_times.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                exact, _, _ = await rank(conn, "", SearchOptions(namespace=NAMESPACE, top_k=10, mode="vector",
                                                             exact=True), settings, vector)
                exact_times.append((time.perf_counter() - started) * 1000)
                found.append(len({c for c, _ in approx} & {c for c, _ in exact}) / 10)
            recalls.append({"ef_search": ef_search, "recall_at_10": round(sum(found) / len(found), 4),
                            "hnsw_p50_ms": round(statistics.median(approx_times), 1),
                            "exact_p50_ms": round(statistics.median(exact_times), 1)})
            print(f"  HNSW ef_search={ef_search}: recall@10 {recalls[-1]['recall_at_10']}", file=sys.stderr)
    await db.close_pools()
    return {"default_ef_search": settings.hnsw_ef_search, "latency": results, "hnsw_recall": recalls}


def markdown(report: dict) -> str:
    loaded = (f"loaded with COPY and indexed in {report['load_s']} s" if report["load_s"] is not None
              else "data kept from an earlier run")
    lines = [
        "## Retrieval latency",
        "",
        f"{report['chunks']:,} chunks of {DIMS} dimensions in one namespace (synthetic text and clustered "
        f"vectors; {loaded}), top_k=10, {report['queries']} queries per run, `lib.retrieval.search.search` end to end "
        "(ranking and hydration) on the embedded Postgres, vector side at the default `hnsw.ef_search` of "
        f"{report['default_ef_search']} (`HNSW_EF_SEARCH`); query vectors precomputed.",
        "",
        "Query words come from frequency ranks 50-3,000 (present in some thousands of chunks each); "
        "the *common terms* runs draw each word as often as it occurs in the corpus, so most of "
        "their queries hold one of the most frequent terms.",
        "",
        "| run | p50 | p95 | p99 |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['run']} | {r['p50_ms']} ms | {r['p95_ms']} ms | {r['p99_ms']} ms |" for r in report["latency"]]
    lines += ["", "Vector ranking alone, HNSW against exact (sequential scan) search:", "",
              "| HNSW ef_search | recall@10 vs exact | HNSW p50 | exact p50 |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['ef_search']}{' (default)' if r['ef_search'] == report['default_ef_search'] else ''} "
              f"| {r['recall_at_10']:.3f} "
              f"| {r['hnsw_p50_ms']} ms | {r['exact_p50_ms']} ms |" for r in report["hnsw_recall"]]
    lines += ["", "On disk (heap, indexes and TOAST, MB): "
              + ", ".join(f"`{name}` {mb:,}" for name, mb in report["sizes_mb"].items()) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--rebuild", action="store_true", help="reload the data even if it is there")
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "warning")
    sys.path.insert(0, str(PROJECT_ROOT / "bench"))
    from envs import ensure_bench_requirements
    from pg import fresh_database, server_url, with_dbname

    ensure_bench_requirements()  # numpy, for the synthetic data

    from lib import config

    url = with_dbname(server_url(), "bench_latency")
    load_s = None
    if args.rebuild or asyncio.run(chunk_count(url)) != args.chunks:
        url = fresh_database("latency")
        load_s = round(asyncio.run(load(url, args.chunks)), 1)
        print(f"loaded {args.chunks} chunks in {load_s} s", file=sys.stderr)
    os.environ["DATABASE_URL"] = url
    config.reset_settings()
    report = {"benchmark": "retrieval_latency", "chunks": args.chunks, "dimensions": DIMS,
              "queries": args.queries, "load_s": load_s, **asyncio.run(measure(args.chunks, args.queries))}
    report["sizes_mb"] = asyncio.run(table_sizes(url))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print(markdown(report))


if __name__ == "__main__":
    main()
