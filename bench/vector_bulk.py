"""Vectors in bulk: numpy and pgvector-python's adapter against the standard-library code they
replaced, on the three bulk paths of this bundle: decoding a provider's base64 embeddings,
the hashing embedder, and the binary COPY of chunk vectors into Postgres.

The "before" side is the code this bundle ran until the change, kept here as the reference: a
hand-written `vector` binary dumper (`struct.pack` of a tuple of Python floats), `array`-based base64
decoding to lists, and the pure-Python hashing embedder. Both sides run in this process, in
alternating order, `--rounds` times; each ratio is the median of the round-by-round ratios.

    .venv/bin/python bench/vector_bulk.py [--rounds 7] [--json out.json]
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import statistics
import struct
import sys
import time
import zlib
from array import array
from collections import Counter
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pg  # noqa: E402  (puts the project root on sys.path)
from measure import arguments, emit, ms, table  # noqa: E402

COPY_ROWS = 10_000
COPY_DIMS = 384
DECODE_COUNT = 1000
DECODE_DIMS = 1536
HASH_TEXTS = 1000


# --- the code before the change, as the reference -------------------------------------------------


@lru_cache(maxsize=16)
def _layout(dimensions: int) -> struct.Struct:
    return struct.Struct(f">HH{dimensions}f")


class HandWrittenVector:
    __slots__ = ("values",)

    def __init__(self, values) -> None:
        self.values = tuple(values)


def hand_written_dumper(oid: int):
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class HandWrittenBinaryDumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: HandWrittenVector) -> bytes:
            values = obj.values
            return _layout(len(values)).pack(len(values), 0, *values)

    HandWrittenBinaryDumper.oid = oid
    return HandWrittenBinaryDumper


def decode_with_array(values: list[str]) -> list[list[float]]:
    decoded = []
    for value in values:
        floats = array("f", base64.b64decode(value))
        if sys.byteorder != "little":
            floats.byteswap()
        decoded.append(floats.tolist())
    return decoded


_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def hash_vector_python(text: str, dimensions: int) -> list[float]:
    words = _WORD.findall(text.lower())
    features = Counter(words)
    features.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    vector = [0.0] * dimensions
    for feature, count in features.items():
        digest = zlib.crc32(feature.encode())
        weight = 1.0 + math.log(count)
        vector[digest % dimensions] += -weight if digest & 0x80000000 else weight
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


# --- the runs ---------------------------------------------------------------------------------------


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


async def copy_rows(url: str, rows: list, hand_written: bool) -> float:
    """Seconds to COPY `rows` (id, vector) in binary into an unlogged table, rows built included."""
    import psycopg
    from psycopg.types import TypeInfo

    from lib.db import connection_kwargs
    from lib.db.vector import register_vector

    async with await psycopg.AsyncConnection.connect(url, **connection_kwargs()) as conn:
        if hand_written:
            cur = await conn.execute("SELECT oid, typarray FROM pg_type WHERE oid = to_regtype('vector')")
            oid, array_oid = await cur.fetchone()
            TypeInfo("vector", oid, array_oid, regtype="vector").register(conn)
            conn.adapters.register_dumper(HandWrittenVector, hand_written_dumper(oid))
        else:
            await register_vector(conn)
        await conn.execute("DROP TABLE IF EXISTS copied; CREATE UNLOGGED TABLE copied (id int, embedding vector)")
        started = time.perf_counter()
        async with conn.cursor() as cur:
            async with cur.copy("COPY copied (id, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "vector"])
                for i, vector in enumerate(rows):
                    await copy.write_row((i, HandWrittenVector(vector) if hand_written else vector))
        elapsed = time.perf_counter() - started
        cur = await conn.execute("SELECT count(*), sum(embedding <#> embedding) FROM copied")
        count, _ = await cur.fetchone()
        assert count == len(rows)
    return elapsed


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds

    import numpy as np
    from pgvector import Vector
    from pgvector.psycopg.vector import VectorBinaryDumper

    from lib.ingest.embedders.hashing import hash_vectors
    from lib.ingest.embedders.openai_wire import decode_vectors

    rng = np.random.default_rng(7)
    matrix = rng.normal(size=(COPY_ROWS, COPY_DIMS)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    as_lists = matrix.tolist()  # what the embedders handed over before: Python floats
    as_rows = list(matrix)  # what they hand over now: float32 numpy rows
    encoded = [base64.b64encode(row.astype("<f4").tobytes()).decode()
               for row in rng.normal(size=(DECODE_COUNT, DECODE_DIMS)).astype(np.float32)]
    words = [f"word{i}" for i in range(3000)]
    texts = [" ".join(words[j] for j in rng.integers(0, len(words), size=200)) for _ in range(HASH_TEXTS)]
    assert np.allclose(hash_vectors(texts[:5], COPY_DIMS), [hash_vector_python(t, COPY_DIMS) for t in texts[:5]],
                       atol=1e-6)

    hand_dumper = hand_written_dumper(0)(HandWrittenVector)
    pg_dumper = VectorBinaryDumper(Vector)
    cases = {
        "decode": (f"decode {DECODE_COUNT} base64 embeddings of {DECODE_DIMS} dims",
                   lambda: decode_with_array(encoded), lambda: decode_vectors(encoded)),
        "hash": (f"hashing embedder, {HASH_TEXTS} texts of 200 words, {COPY_DIMS} dims",
                 lambda: [hash_vector_python(t, COPY_DIMS) for t in texts], lambda: hash_vectors(texts, COPY_DIMS)),
        "dump": (f"binary dump of {COPY_ROWS:,} vectors of {COPY_DIMS} dims (client side only)",
                 lambda: [hand_dumper.dump(HandWrittenVector(v)) for v in as_lists],
                 lambda: [pg_dumper.dump(v) for v in as_rows]),
    }
    url = pg.fresh_database("vector_bulk")
    times: dict[str, dict[str, list[float]]] = {k: {"before": [], "after": []} for k in [*cases, "copy"]}
    for round_number in range(rounds + 1):  # round 0 warms up
        for key, (_, before, after) in cases.items():
            pair = [("before", before), ("after", after)]
            for side, function in (pair if round_number % 2 else pair[::-1]):
                elapsed = timed(function)
                if round_number:
                    times[key][side].append(elapsed)
        pair = [("before", as_lists, True), ("after", as_rows, False)]
        for side, rows, hand_written in (pair if round_number % 2 else pair[::-1]):
            elapsed = asyncio.run(copy_rows(url, rows, hand_written))
            if round_number:
                times["copy"][side].append(elapsed)
    pg.drop_database("vector_bulk")

    labels = {key: label for key, (label, _, _) in cases.items()}
    labels["copy"] = f"binary COPY of {COPY_ROWS:,} vectors of {COPY_DIMS} dims into Postgres"
    rows, figures = [], {"rounds": rounds}
    for key, label in labels.items():
        before, after = times[key]["before"], times[key]["after"]
        speedup = statistics.median(b / a for b, a in zip(before, after, strict=True))
        figures[key] = {"before_s": statistics.median(before), "after_s": statistics.median(after),
                        "speedup": speedup}
        rows.append([label, ms(statistics.median(before)), ms(statistics.median(after)), f"{speedup:.2f}x"])
    markdown = "\n".join([
        "## Vectors in bulk: numpy and pgvector-python against the code they replaced",
        "",
        f"Median of {rounds} rounds, both sides in one process, alternating. Before: `struct.pack` of "
        "Python floats (the hand-written dumper), `array` decoding to lists, the pure-Python hashing "
        "embedder. After: float32 numpy rows dumped by pgvector-python's binary dumper, "
        "`np.frombuffer` decoding to one matrix, the hashing embedder adding up and normalising with "
        "numpy. `before / after` is the median of round-by-round ratios (above 1: the change is faster).",
        "",
        table(["work", "before ms", "after ms", "before / after"], rows),
    ])
    emit(args, "vector_bulk", figures, markdown)


if __name__ == "__main__":
    main()
