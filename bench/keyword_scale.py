"""Keyword search at scale: BM25 latency on a namespace of 1,000,000 chunks, keyword only.

The texts are those of `retrieval_latency.py` (about 40 words from a Zipf-distributed made-up
vocabulary, 1% tagged `kind: faq`), drawn in one go and kept in `bench/.data/keyword_scale/`, so
a rerun loads the same corpus. No vectors and no HNSW index: this measures the keyword index alone,
with both query mixes of the latency benchmark (mid-frequency words, and words drawn as often as
they occur). Chunks are loaded with binary COPY, 10,000 per statement, and the triggers on `chunks`
write the postings and statistics. The database (`bench_keyword_scale`) is kept between runs.

    .venv/bin/python bench/keyword_scale.py [--chunks 1000000] [--queries 200] [--json out.json]

`--append-rounds N` also times writes at that scale, before and after the change to the BM25
write path (072_bm25_write_path.sql): N rounds, each appending 10,000 more chunks of the same
corpus twice in a transaction that is rolled back, once with the trigger function of
071_bm25_postings.sql (postings inserted in chunk order) and once with the current one, the
order alternating between rounds.
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
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "bench"))

from retrieval_latency import (  # noqa: E402
    CHUNKS_PER_DOCUMENT,
    NAMESPACE,
    chunk_count,
    create_documents,
    percentile,
    table_sizes,
    vocabulary,
)

DATA = PROJECT_ROOT / "bench" / ".data" / "keyword_scale"
MODEL = "local/none"


def zipf_weights(size: int):
    import numpy as np

    ranks = np.arange(1, size + 1)
    return (1 / ranks) / (1 / ranks).sum()


def corpus(chunks: int) -> tuple[list[str], list[bool]]:
    """The chunk texts and faq flags, drawn once (vectorised) and kept on disk."""
    import numpy as np

    words = np.array(vocabulary())
    path = DATA / f"texts-{chunks}.npz"
    if path.exists():
        data = np.load(path)
        ids, lengths, faq = data["ids"], data["lengths"], data["faq"]
    else:
        rng = np.random.default_rng(42)
        lengths = rng.integers(25, 55, size=chunks)
        ids = rng.choice(len(words), size=int(lengths.sum()), p=zipf_weights(len(words))).astype(np.int32)
        faq = rng.random(chunks) < 0.01
        DATA.mkdir(parents=True, exist_ok=True)
        np.savez(path, ids=ids, lengths=lengths, faq=faq)
    ends = np.cumsum(lengths)
    texts = [" ".join(words[ids[end - n:end]]) for end, n in zip(ends, lengths, strict=True)]
    return texts, [bool(f) for f in faq]


async def load(url: str, chunks: int) -> float:
    from lib import db
    from lib.ingest.store import copy_chunks

    started = time.perf_counter()
    texts, faq = corpus(chunks)
    async with await db.open_connection(url) as conn:
        ids = await create_documents(conn, chunks, MODEL)
        batch = 10_000
        for start in range(0, chunks, batch):
            rows = [(ids[i // CHUNKS_PER_DOCUMENT], NAMESPACE, i % CHUNKS_PER_DOCUMENT, texts[i], f"h{i}",
                     len(texts[i].split()), [], None, 0, len(texts[i]), {"kind": "faq" if faq[i] else "note"},
                     MODEL, None) for i in range(start, min(chunks, start + batch))]
            async with conn.transaction():
                await copy_chunks(conn, rows)
            if (start // batch) % 10 == 9:
                print(f"  loaded {min(chunks, start + batch)} chunks in {time.perf_counter() - started:.0f} s",
                      file=sys.stderr)
        await conn.execute("SELECT compact_keyword_stats()")
        await conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def function_of(migration: str, name: str) -> str:
    """The CREATE FUNCTION statement of `name` in a migration file."""
    import re

    text = (PROJECT_ROOT / "lib" / "db" / "migrations" / migration).read_text()
    found = re.search(rf"CREATE (?:OR REPLACE )?FUNCTION {name}\(.*?\nEND \$\$;", text, re.S)
    assert found, f"{name} not in {migration}"
    return found.group(0).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


async def append_rounds(url: str, chunks: int, rounds: int, batch: int = 10_000) -> list[dict]:
    """Seconds to COPY `batch` more chunks (triggers writing postings), 071's function against the
    current one, alternating, each write rolled back."""
    from lib import db
    from lib.ingest.store import copy_chunks

    texts, _ = corpus(chunks)
    old = function_of("071_bm25_postings.sql", "bm25_index_rows")
    timings: dict[str, list[float]] = {"071 (chunk order)": [], "current": []}
    async with await db.open_connection(url) as conn:
        cur = await conn.execute("SELECT id FROM documents WHERE namespace = %s ORDER BY id LIMIT 1", (NAMESPACE,))
        document = (await cur.fetchone())[0]
        for number in range(rounds):
            start = (number * batch) % (chunks - batch)
            rows = [(document, NAMESPACE, 100_000 + i, texts[start + i], f"a{i}", 40, [], None, 0, 1,
                     {"kind": "note"}, MODEL, None) for i in range(batch)]
            variants = list(timings) if number % 2 == 0 else list(reversed(timings))
            for variant in variants:
                await conn.execute("BEGIN")
                if variant != "current":
                    await conn.execute(old)
                started = time.perf_counter()
                await copy_chunks(conn, rows)
                timings[variant].append(time.perf_counter() - started)
                await conn.execute("ROLLBACK")
                print(f"  round {number + 1}: {variant} {timings[variant][-1]:.2f} s", file=sys.stderr)
            await conn.execute("VACUUM postings")
    return [{"write": variant, "median_s": round(statistics.median(values), 2),
             "chunks_per_s": round(batch / statistics.median(values)), "runs": [round(v, 2) for v in values]}
            for variant, values in timings.items()]


async def measure(queries: int) -> list[dict]:
    import numpy as np

    from lib import db
    from lib.config import get_settings
    from lib.retrieval.search import SearchOptions, search

    settings = get_settings()
    words = np.array(vocabulary())
    rng = np.random.default_rng(1)
    mixes = {
        "mid-frequency words": [" ".join(rng.choice(words[50:3000], size=3)) for _ in range(queries)],
        "common terms": [" ".join(rng.choice(words, size=3, p=zipf_weights(len(words)))) for _ in range(queries)],
    }
    runs = [("keyword", {}), ("keyword, filter kind=faq (1%)", {"filter": {"kind": "faq"}})]
    results = []
    async with db.connect(settings) as conn:
        for mix, texts in mixes.items():
            for label, extra in runs:
                timings = []
                for text in texts:
                    options = SearchOptions(namespace=NAMESPACE, top_k=10, mode="keyword", **extra)
                    started = time.perf_counter()
                    await search(conn, text, options, settings)
                    timings.append((time.perf_counter() - started) * 1000)
                results.append({"run": f"{label}, {mix}", "p50_ms": round(statistics.median(timings), 2),
                                "p95_ms": round(percentile(timings, 0.95), 2),
                                "p99_ms": round(percentile(timings, 0.99), 2), "queries": queries})
                print(f"  {results[-1]}", file=sys.stderr)
    await db.close_pools()
    return results


def markdown(report: dict) -> str:
    loaded = (f"loaded with COPY, the triggers writing the keyword index, in {report['load_s']} s"
              if report["load_s"] is not None else "data kept from an earlier run")
    lines = [
        "## Keyword search at scale",
        "",
        f"{report['chunks']:,} chunks of about 40 words in one namespace, keyword index only (no vectors; "
        f"{loaded}), top_k=10, {report['queries']} queries per run, `lib.retrieval.search.search` end to end. "
        "Query mixes as in the latency benchmark: three words of frequency ranks 50-3,000, or three words "
        "drawn as often as they occur (most queries then hold one of the most frequent terms).",
        "",
        "| run | p50 | p95 | p99 |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['run']} | {r['p50_ms']} ms | {r['p95_ms']} ms | {r['p99_ms']} ms |" for r in report["latency"]]
    if report.get("append"):
        lines += ["", f"Appending 10,000 chunks at this size (COPY, the triggers writing the keyword index, rolled "
                  f"back), {len(report['append'][0]['runs'])} rounds alternating:", "",
                  "| trigger function | median | chunks/s | each round |", "|---|---:|---:|---|"]
        lines += [f"| {r['write']} | {r['median_s']} s | {r['chunks_per_s']:,} | "
                  + ", ".join(f"{v}" for v in r["runs"]) + " |" for r in report["append"]]
    lines += ["", "On disk (heap, indexes and TOAST, MB): "
              + ", ".join(f"`{name}` {mb:,}" for name, mb in report["sizes_mb"].items()) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--rebuild", action="store_true", help="reload the data even if it is there")
    parser.add_argument("--append-rounds", type=int, default=0, help="time appends: 071's writes against ours")
    parser.add_argument("--no-queries", action="store_true", help="skip the latency runs")
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "warning")
    from pg import fresh_database, server_url, with_dbname

    from lib import config

    url = with_dbname(server_url(), "bench_keyword_scale")
    load_s = None
    if args.rebuild or asyncio.run(chunk_count(url)) != args.chunks:
        url = fresh_database("keyword_scale")
        load_s = round(asyncio.run(load(url, args.chunks)), 1)
        print(f"loaded {args.chunks} chunks in {load_s} s", file=sys.stderr)
    os.environ["DATABASE_URL"] = url
    config.reset_settings()
    report = {"benchmark": "keyword_scale", "chunks": args.chunks, "queries": args.queries, "load_s": load_s,
              "latency": [] if args.no_queries else asyncio.run(measure(args.queries))}
    if args.append_rounds:
        report["append"] = asyncio.run(append_rounds(url, args.chunks, args.append_rounds))
    report["sizes_mb"] = asyncio.run(table_sizes(url))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print(markdown(report))


if __name__ == "__main__":
    main()
