"""Retrieval latency on 100,000 chunks of 384 dimensions, and HNSW recall@10 against exact search.

Synthetic but shaped like real data: chunk texts of ~40 words drawn from a Zipf-distributed
vocabulary, vectors of low intrinsic dimension (`embedding_map`), queries near stored chunks, 1% of
chunks tagged `kind: faq` and the rest `kind: note` for the filtered runs (a narrow and a broad filter). Chunks are loaded with binary COPY (`lib.ingest.store.copy_chunks`, the ingestion path's
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


DATA = PROJECT_ROOT / "bench" / ".data" / "retrieval_latency"
LATENT_DIMS = 24
LATENT_CLUSTERS = 1_000
HIDDEN = 256


def embedding_map(seed: int = 11):
    """The fixed map from the 24-dimensional latent space to 384 dimensions: linear plus a mild
    non-linear part (tanh of a second projection), so the vectors lie near a curved 24-dimensional
    surface, as sentence embeddings lie near a low-dimensional one."""
    import numpy as np

    rng = np.random.default_rng(seed)
    linear = rng.normal(size=(LATENT_DIMS, DIMS)).astype(np.float32) / np.sqrt(LATENT_DIMS)
    inner = rng.normal(size=(LATENT_DIMS, HIDDEN)).astype(np.float32) / np.sqrt(LATENT_DIMS)
    outer = rng.normal(size=(HIDDEN, DIMS)).astype(np.float32) / np.sqrt(HIDDEN)

    def embed(latent, noise_rng):
        x = latent @ linear + np.tanh(2 * latent @ inner) @ outer
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        # off-surface noise about a fifth of the vector's length
        x += noise_rng.normal(size=x.shape).astype(np.float32) * (0.2 / np.sqrt(DIMS))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float32)

    return embed


def latent_points(chunks: int, seed: int = 42):
    """Each chunk's point in the latent space: one of 1,000 topic centres (drawn with Zipf-like
    popularity, so some topics are crowded) plus a spread of 0.6 around it, so topics overlap."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(LATENT_CLUSTERS, LATENT_DIMS)).astype(np.float32)
    popularity = 1 / np.arange(1, LATENT_CLUSTERS + 1) ** 0.5
    topic = rng.choice(LATENT_CLUSTERS, size=chunks, p=popularity / popularity.sum())
    return centres[topic] + 0.6 * rng.normal(size=(chunks, LATENT_DIMS)).astype(np.float32)


def synthetic_vectors(chunks: int):
    """The chunks' vectors (float32, unit length), drawn once and kept in bench/.data/."""
    import numpy as np

    path = DATA / f"vectors-{chunks}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    embed, latent = embedding_map(), latent_points(chunks)
    noise = np.random.default_rng(43)
    vectors = np.concatenate([embed(latent[start:start + 100_000], noise)
                              for start in range(0, chunks, 100_000)])
    DATA.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def synthetic_queries(chunks: int, queries: int):
    """Query vectors near stored chunks, as a question lands near the passage that answers it:
    a stored chunk's latent point moved by 0.15 per latent dimension, through the same map."""
    import numpy as np

    rng = np.random.default_rng(1)
    picked = latent_points(chunks)[rng.integers(0, chunks, size=queries)]
    return embedding_map()(picked + 0.15 * rng.normal(size=picked.shape).astype(np.float32), rng)


def synthetic_texts(chunks: int) -> tuple[list[str], list[bool]]:
    """The chunk texts and faq flags: those of keyword_scale.py (drawn once, kept on disk)."""
    from keyword_scale import corpus

    return corpus(chunks)


async def create_documents(conn, chunks: int, model: str) -> list:
    """The document rows `chunks` chunks belong to, CHUNKS_PER_DOCUMENT each: their ids, in order."""
    documents = (chunks + CHUNKS_PER_DOCUMENT - 1) // CHUNKS_PER_DOCUMENT
    cur = await conn.execute(
        "INSERT INTO documents (namespace, source, media_type, content_hash, embedding_model, chunk_count)"
        " SELECT %s, 'doc-' || g || '.txt', 'text/plain', md5(g::text), %s, %s"
        " FROM generate_series(1, %s) g RETURNING id", (NAMESPACE, model, CHUNKS_PER_DOCUMENT, documents))
    return [row[0] for row in await cur.fetchall()]


async def load(url: str, chunks: int) -> float:
    """COPY the chunks in, 10,000 per transaction; the triggers write the keyword index."""
    import numpy as np

    from lib import db
    from lib.ingest.store import copy_chunks

    started = time.perf_counter()
    vectors = synthetic_vectors(chunks)
    texts, faq = synthetic_texts(chunks)
    async with await db.open_connection(url) as conn:
        ids = await create_documents(conn, chunks, MODEL)
        batch = 10_000
        for start in range(0, chunks, batch):
            block = np.asarray(vectors[start:start + batch])  # rows of a plain array, numpy's COPY dumper
            rows = [(ids[i // CHUNKS_PER_DOCUMENT], NAMESPACE, i % CHUNKS_PER_DOCUMENT, texts[i], f"h{i}",
                     len(texts[i].split()), [], None, 0, len(texts[i]), {"kind": "faq" if faq[i] else "note"},
                     MODEL, block[i - start]) for i in range(start, min(chunks, start + batch))]
            async with conn.transaction():
                await copy_chunks(conn, rows)
            if (start // batch) % 10 == 9:
                print(f"  loaded {min(chunks, start + batch)} chunks in {time.perf_counter() - started:.0f} s",
                      file=sys.stderr)
        await conn.execute("SELECT compact_keyword_stats()")
        await conn.execute("VACUUM ANALYZE")
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


SERVER_SETTINGS = ("shared_buffers", "effective_cache_size", "max_wal_size", "work_mem", "maintenance_work_mem")
SCALE_CHUNKS = 1_000_000


async def server_settings(url: str) -> dict[str, str]:
    from lib import db

    async with await db.open_connection(url) as conn:
        cur = await conn.execute("SELECT name, current_setting(name) FROM unnest(%s::text[]) name",
                                 (list(SERVER_SETTINGS),))
        return dict(await cur.fetchall())


def database(chunks: int) -> str:
    """One database per size, so the 1M data survives a 100k run."""
    return "bench_latency" if chunks == 100_000 else f"bench_latency_{chunks}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


VARIANTS = {  # how the model's vectors are indexed and searched: settings for each variant
    "vector": {"vector_index_storage": "vector", "vector_binary_rerank": 0},
    "halfvec": {"vector_index_storage": "halfvec", "vector_binary_rerank": 0},
    "binary": {"vector_index_storage": "halfvec", "vector_binary_rerank": 4},
}
RERANK_FACTORS = (2, 4, 10)


async def index_variant(name: str, settings, chunks: int) -> dict:
    """Build (or keep) the indexes of one variant with the bundle's own maintenance; their sizes
    and build times (kept in bench/.data/ from the run that built them)."""
    from lib import db
    from lib.ingest.vector_index import existing_indexes, maintain_vector_indexes

    changes = await maintain_vector_indexes(settings)
    builds_path = DATA / f"builds-{chunks}.json"
    builds = json.loads(builds_path.read_text()) if builds_path.exists() else {}
    for change in changes:
        if change.action in ("built", "rebuilt"):
            builds[f"{change.index}:{change.kind}"] = {"kind": change.kind, "seconds": change.seconds, "m": change.m,
                                    "ef_construction": change.ef_construction, "memory_mb": change.memory_mb,
                                    "load": os.getloadavg()[0]}
            print(f"  built {change.kind} index in {change.seconds} s", file=sys.stderr)
        elif change.action not in ("dropped", "dropped_leftover"):
            raise SystemExit(f"index build for {name}: {change.to_json()}")
    builds_path.write_text(json.dumps(builds, indent=2))
    async with db.connect(settings) as conn:
        found = await existing_indexes(conn, MODEL)
        cur = await conn.execute("SELECT c.relname, pg_relation_size(c.oid) / 1048576.0 FROM pg_class c"
                                 " WHERE c.relname = ANY(%s) ORDER BY c.relname", (list(found),))
        sizes = [(name, found[name].kind, round(float(mb), 1)) for name, mb in await cur.fetchall()]
    return {"variant": name,
            "indexes": [{"index": index, "size_mb": mb, **builds.get(f"{index}:{kind}", {})}
                        for index, kind, mb in sizes]}


async def exact_neighbours(conn, settings, query_vectors, count: int, chunks: int) -> list[set[int]]:
    """The true 10 nearest chunks of the first `count` queries (sequential scan, full precision),
    kept in bench/.data/ per size: at a million chunks each takes seconds."""
    from lib.retrieval.search import SearchOptions, rank

    path = DATA / f"exact-{chunks}-{count}.json"
    if path.exists():
        return [set(ids) for ids in json.loads(path.read_text())]
    found = []
    for i in range(count):
        exact, _, _ = await rank(conn, "", SearchOptions(namespace=NAMESPACE, top_k=10, mode="vector", exact=True),
                                 settings, {MODEL: query_vectors[i].tolist()})
        found.append([c for c, _ in exact])
    path.write_text(json.dumps(found))
    return [set(ids) for ids in found]


async def vector_figures(settings, query_vectors, truth: list[set[int]], variant: str) -> dict:
    """Recall@10 against exact search at several ef_search (binary: several re-rank factors) and the
    latency of vector search at the defaults."""
    from dataclasses import replace

    from lib import db
    from lib.retrieval.search import SearchOptions, rank, search

    async with db.connect(settings) as conn:
        recalls = []
        if variant == "binary":
            sweep = [(None, factor) for factor in RERANK_FACTORS]
        else:
            sweep = [(ef, 0) for ef in (40, 100, 200, 400)]
        for ef_search, factor in sweep:
            run_settings = replace(settings, vector_binary_rerank=factor or settings.vector_binary_rerank)
            found, times = [], []
            for i, exact in enumerate(truth):
                started = time.perf_counter()
                approx, _, _ = await rank(conn, "", SearchOptions(namespace=NAMESPACE, top_k=10, mode="vector",
                                                              ef_search=ef_search), run_settings,
                                          {MODEL: query_vectors[i].tolist()})
                times.append((time.perf_counter() - started) * 1000)
                found.append(len({c for c, _ in approx} & exact) / 10)
            recalls.append({"ef_search": ef_search, "rerank": factor or None,
                            "recall_at_10": round(sum(found) / len(found), 4),
                            "p50_ms": round(statistics.median(times), 1)})
            print(f"  {variant} ef_search={ef_search} rerank={factor}: recall@10 {recalls[-1]['recall_at_10']}",
                  file=sys.stderr)
        timings = []
        for i in range(len(query_vectors)):
            started = time.perf_counter()
            await search(conn, "x", SearchOptions(namespace=NAMESPACE, top_k=10, mode="vector"), settings,
                         {MODEL: query_vectors[i].tolist()})
            timings.append((time.perf_counter() - started) * 1000)
    return {"recall": recalls, **latency(timings)}


def latency(timings: list[float]) -> dict:
    return {"p50_ms": round(statistics.median(timings), 2), "p95_ms": round(percentile(timings, 0.95), 2),
            "p99_ms": round(percentile(timings, 0.99), 2), "queries": len(timings)}


async def measure(chunks: int, queries: int, variants: list[str]) -> dict:
    from dataclasses import replace

    import numpy as np

    from lib import db
    from lib.config import get_settings
    from lib.retrieval.search import SearchOptions, search

    base = get_settings()
    words = np.array(vocabulary())
    zipf = (1 / np.arange(1, len(words) + 1)) / (1 / np.arange(1, len(words) + 1)).sum()
    query_vectors = synthetic_queries(chunks, queries)
    rng = np.random.default_rng(1)
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
        ("hybrid, filter kind=note (99%)", {"mode": "hybrid", "filter": {"kind": "note"}}),
    ]
    common = [(f"{label}, common terms", extra) for label, extra in runs if extra["mode"] != "vector"]
    async with db.connect(base) as conn:  # applies new migrations to a database kept from a run before
        pass
    async with await db.open_connection(db.database_url(base)) as conn:
        await conn.execute("VACUUM ANALYZE")  # as autovacuum would have by now: visibility map, statistics
    async with db.connect(base) as conn:
        truth = await exact_neighbours(conn, base, query_vectors, min(queries, 100), chunks)
    figures, results = [], []
    default_variant = "binary" if base.vector_binary_rerank else base.vector_index_storage
    for variant in variants + ([] if default_variant in variants else [default_variant]):
        settings = replace(base, **VARIANTS[variant])
        built = await index_variant(variant, settings, chunks)
        if variant in variants:
            figures.append({**built, **await vector_figures(settings, query_vectors, truth, variant)})
        if variant != default_variant:
            continue
        async with db.connect(settings) as conn:
            for label, extra in runs + common:
                texts = common_texts if label.endswith("common terms") else query_texts
                timings = []
                for i in range(queries):
                    options = SearchOptions(namespace=NAMESPACE, top_k=10, **extra)
                    started = time.perf_counter()
                    await search(conn, texts[i], options, settings, {MODEL: query_vectors[i].tolist()})
                    timings.append((time.perf_counter() - started) * 1000)
                results.append({"run": label, **latency(timings)})
                print(f"  {label}: {results[-1]}", file=sys.stderr)
    if variants and variants[-1] != default_variant:  # leave the database as the defaults index it
        await index_variant(default_variant, replace(base, **VARIANTS[default_variant]), chunks)
    keyword_quality = await bounded_against_exhaustive(base, common_texts[:min(queries, QUALITY_QUERIES)])
    await db.close_pools()
    return {"default_variant": default_variant, "latency": results, "variants": figures,
            "keyword_quality": keyword_quality, "load": os.getloadavg()}


QUALITY_QUERIES = 50


async def bounded_against_exhaustive(settings, texts: list[str]) -> list[dict]:
    """Keyword search's top 10 as the defaults rank it (bounded for common terms) against BM25
    over every posting of the query terms: the share of the exact top 10 it returns, and its
    scores' sum over the exact top 10's, without and with the 1% filter."""
    from dataclasses import replace

    from lib import db
    from lib.retrieval.search import SearchOptions, keyword_ranking

    exhaustive = replace(settings, bm25_exact_postings=10**12)
    figures = []
    async with db.connect(settings) as conn:
        for label, flt in (("common terms", None), ("common terms, filter kind=faq (1%)", {"kind": "faq"})):
            shares, sums = [], []
            for text in texts:
                options = SearchOptions(namespace=NAMESPACE, mode="keyword", filter=flt)
                exact = await keyword_ranking(conn, text, options, 10, exhaustive)
                found = await keyword_ranking(conn, text, options, 10, settings)
                if not exact:
                    continue
                shares.append(len({c for c, _ in found} & {c for c, _ in exact}) / len(exact))
                sums.append(sum(s for _, s in found) / sum(s for _, s in exact))
            figures.append({"run": label, "queries": len(shares), "top10_share": round(statistics.mean(shares), 3),
                            "score_sum": round(statistics.mean(sums), 4), "worst_share": round(min(shares), 2)})
            print(f"  keyword quality, {label}: {figures[-1]}", file=sys.stderr)
    return figures


def markdown(report: dict) -> str:
    loaded = (f"loaded with COPY, the triggers writing the keyword index, in {report['load_s']} s, "
              f"{report['chunks'] / report['load_s']:,.0f} chunks/s, by the run that made the database"
              if report["load_s"] is not None else "data kept from an earlier run")
    size = f"{report['chunks']:,}"
    lines = [
        f"## Retrieval latency at {size} chunks",
        "",
        f"{size} chunks of {DIMS} dimensions in one namespace ({loaded}), top_k=10, {report['queries']} queries per "
        "run, `lib.retrieval.search.search` end to end (ranking and hydration) on the embedded Postgres; query "
        "vectors precomputed. Vectors of low intrinsic dimension: points of a 24-dimensional mixture of 1,000 "
        "overlapping topics mapped into 384 dimensions by a fixed linear-plus-tanh map, with noise of a fifth "
        "of their length; queries are stored chunks' latent points moved a little, through the same map "
        "(`bench/retrieval_latency.py` says exactly how). Texts of about 40 words from a Zipf vocabulary. "
        "Runs before 2026-11-29 12:00 UTC drew 200 broad clusters plus heavy noise instead (noise-like "
        "vectors: recall@10 0.612 at `ef_search` 100 at 1M); their figures are not comparable.",
        "",
        f"Index as the defaults build it ({report['default_variant']}, parameters by size, "
        "`hnsw.ef_search` by size). Query words come from frequency ranks 50-3,000; the *common terms* runs "
        "draw each word as often as it occurs in the corpus, so most of their queries hold one of the most "
        "frequent terms.",
        "",
        "| run | p50 | p95 | p99 |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['run']} | {r['p50_ms']} ms | {r['p95_ms']} ms | {r['p99_ms']} ms |" for r in report["latency"]]
    if report.get("keyword_quality"):
        lines += ["", "Keyword search as the defaults rank it (the bounded path, for common terms) against BM25 over "
                  "every posting of the query terms, top 10, common-term queries: the share of the exact top 10 "
                  "it returns, and the sum of its scores over the exact top 10's.", "",
                  "| queries | share of the exact top 10 | worst query | score sum |", "|---|---:|---:|---:|"]
        lines += [f"| {q['run']} ({q['queries']}) | {q['top10_share']:.3f} | {q['worst_share']:.2f} | "
                  f"{q['score_sum']:.4f} |" for q in report["keyword_quality"]]
    lines += ["", "Vector search by index variant: recall@10 against exact search (full precision, sequential "
              "scan) over 100 queries, with the p50 of the ranking alone; then `search` in vector mode at the "
              "defaults. *binary*: a `bit` HNSW index of the sign bits gives R x the candidates, re-ranked by "
              "exact cosine distance (the halfvec index kept for the other paths).", "",
              "| variant | ef_search / R | recall@10 | p50 (ranking) |", "|---|---:|---:|---:|"]
    for variant in report["variants"]:
        for r in variant["recall"]:
            knob = f"R={r['rerank']}" if r["rerank"] else f"{r['ef_search'] or 'by size'}"
            lines.append(f"| {variant['variant']} | {knob} | {r['recall_at_10']:.3f} | {r['p50_ms']} ms |")
    lines += ["", "| variant | vector search p50 / p95 / p99 | index | size | build | build memory |",
              "|---|---:|---|---:|---:|---:|"]
    for variant in report["variants"]:
        for i, index in enumerate(variant["indexes"]):
            timing = (f"{variant['p50_ms']} / {variant['p95_ms']} / {variant['p99_ms']} ms" if i == 0 else "")
            build = f"{index['seconds']} s" if index.get("seconds") is not None else "n/a"
            params = f", m {index['m']}, ef_construction {index['ef_construction']}" if index.get("m") else ""
            lines.append(f"| {variant['variant'] if i == 0 else ''} | {timing} | {index.get('kind', '?')}{params} "
                         f"| {index['size_mb']:,} MB | {build} | {index.get('memory_mb', 'n/a')} MB |")
    lines += ["", "On disk (heap, indexes and TOAST, MB): "
              + ", ".join(f"`{name}` {mb:,}" for name, mb in report["sizes_mb"].items()) + ".",
              "", "Postgres settings: " + ", ".join(f"`{k}` {v}" for k, v in report.get("server", {}).items())
              + (" (the benchmarks' own embedded server with what docs/scaling.md gives a million chunks)"
                 if report["chunks"] >= SCALE_CHUNKS else " (the embedded development server's defaults)") + ".",
              "", f"Load average while measuring: {', '.join(f'{x:.1f}' for x in report['load'])}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--variants", default="vector,binary,halfvec",
                        help="index variants to build and measure, in order (vector, halfvec, binary); the "
                             "defaults' variant is always measured")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--rebuild", action="store_true", help="reload the data even if it is there")
    parser.add_argument("--load-only", action="store_true", help="load the data (if needed) and stop")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown variant {', '.join(unknown)}; use {', '.join(VARIANTS)}")
    os.environ.setdefault("LOG_LEVEL", "warning")
    sys.path.insert(0, str(PROJECT_ROOT / "bench"))
    from envs import ensure_bench_requirements
    from pg import fresh_database, scale_server_url, server_url, with_dbname

    ensure_bench_requirements()  # numpy, for the synthetic data

    from lib import config

    # a million chunks and more: a server with the settings docs/scaling.md gives that size
    admin = scale_server_url() if args.chunks >= SCALE_CHUNKS else server_url()
    url = with_dbname(admin, database(args.chunks))
    load_s = None
    if args.rebuild or asyncio.run(chunk_count(url)) != args.chunks:
        url = fresh_database(database(args.chunks).removeprefix("bench_"), admin)
        for path in DATA.glob(f"*-{args.chunks}*.json"):  # build times and exact neighbours of the old data
            path.unlink()
        load_s = round(asyncio.run(load(url, args.chunks)), 1)
        print(f"loaded {args.chunks} chunks in {load_s} s", file=sys.stderr)
        (DATA / f"load-{args.chunks}.json").write_text(json.dumps({"load_s": load_s}))
    elif (DATA / f"load-{args.chunks}.json").exists():
        load_s = json.loads((DATA / f"load-{args.chunks}.json").read_text())["load_s"]
    if args.load_only:
        return
    os.environ["DATABASE_URL"] = url
    config.reset_settings()
    report = {"benchmark": "retrieval_latency", "chunks": args.chunks, "dimensions": DIMS,
              "queries": args.queries, "load_s": load_s,
              **asyncio.run(measure(args.chunks, args.queries, variants))}
    report["sizes_mb"] = asyncio.run(table_sizes(url))
    report["server"] = asyncio.run(server_settings(url))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print(markdown(report))


if __name__ == "__main__":
    main()
