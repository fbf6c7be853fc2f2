"""The BM25 keyword index of a document's chunks, written by ingestion for the whole document.

Two steps, so tokenizing never waits in the write transaction:

1. `analyze_chunks`, before the transaction and while the chunks are being embedded: Postgres
   tokenizes every chunk (`to_tsvector('english', ...)`), adds the lexemes new to the namespace's
   dictionary (`terms`, committed at once: an unused term id is harmless), and returns each
   chunk's term ids and frequencies.
2. Inside the write transaction (`lib/ingest/store.py`): `remove_postings` for the chunks being
   replaced, `add_postings` for the new ones (copied in the impact index's order, so each of its
   leaf pages is visited once), and `settle_statistics` last: one `keyword_stats`
   delta row and one `term_stats_delta` row per term, with the document's net change. Appended
   rows lock nothing, so concurrent ingests sharing terms never wait for each other; the
   statistics are exact when the transaction commits.

The transaction sets `bm25.maintained_by = 'ingest'`, so the triggers on `chunks` (which index
writes made by plain SQL the same way, 071_bm25_postings.sql) stand aside.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg import AsyncConnection

ANALYZE_SQL = """
WITH tokens AS MATERIALIZED (
    SELECT x.ord, t.lexeme, coalesce(array_length(t.positions, 1), 1) AS tf
    FROM unnest(%(texts)s::text[]) WITH ORDINALITY AS x(text, ord),
         unnest(to_tsvector('english', x.text)) AS t
),
lexemes AS MATERIALIZED (
    SELECT DISTINCT lexeme FROM tokens
),
known AS MATERIALIZED (
    SELECT d.id, d.lexeme FROM terms d
    WHERE d.namespace = %(namespace)s AND d.lexeme = ANY(ARRAY(SELECT lexeme FROM lexemes))
),
added AS (
    INSERT INTO terms (namespace, lexeme)
    SELECT %(namespace)s, l.lexeme FROM lexemes l WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.lexeme = l.lexeme)
    ORDER BY l.lexeme
    ON CONFLICT (namespace, lexeme) DO UPDATE SET lexeme = excluded.lexeme
    RETURNING id, lexeme
),
ids AS (
    SELECT id, lexeme FROM known UNION ALL SELECT id, lexeme FROM added
)
SELECT k.ord, array_agg(i.id ORDER BY i.id), array_agg(k.tf ORDER BY i.id)
FROM tokens k JOIN ids i USING (lexeme)
GROUP BY k.ord
"""

REMOVE_SQL = """
WITH gone AS (
    DELETE FROM postings p USING chunks c
    WHERE c.document_id = %(document_id)s AND p.chunk_id = c.id
    RETURNING p.term_id, p.chunk_id, p.length
),
per_term AS (
    SELECT term_id, count(*)::integer AS chunks FROM gone GROUP BY term_id
),
per_chunk AS (
    SELECT DISTINCT chunk_id, length FROM gone
)
SELECT (SELECT coalesce(array_agg(term_id), '{}') FROM per_term),
       (SELECT coalesce(array_agg(chunks), '{}') FROM per_term),
       (SELECT count(*) FROM per_chunk),
       (SELECT coalesce(sum(length), 0) FROM per_chunk)
"""

# The namespace's basis, held in share mode until commit (071_bm25_postings.sql)
BASIS_SQL = "SELECT avgdl, k1, b FROM bm25_basis_for(%(namespace)s, %(avgdl)s)"
COPY_POSTINGS = "COPY postings (term_id, tf, impact, chunk_id, length) FROM STDIN (FORMAT BINARY)"

# The document's net change to document frequencies (folded later, with keyword_stats)
DF_SQL = """
INSERT INTO term_stats_delta (namespace, term_id, df)
SELECT %(namespace)s, term_id, delta FROM unnest(%(term_ids)s::integer[], %(deltas)s::integer[]) AS d(term_id, delta)
"""


@dataclass
class ChunkTerms:
    """One chunk's distinct term ids and their frequencies; `length` is BM25's |D|."""

    term_ids: list[int] = field(default_factory=list)
    tfs: list[int] = field(default_factory=list)

    @property
    def length(self) -> int:
        return sum(self.tfs)


@dataclass
class KeywordChange:
    """What a write transaction did to a namespace's statistics so far."""

    chunks: int = 0
    length: int = 0
    df: Counter[int] = field(default_factory=Counter)


def impact(tf: int, length: int, avgdl: float, k1: float, b: float) -> int:
    """`bm25_impact()` of 071_bm25_postings.sql, the same float operations in the same order."""
    return min(32767, max(1, math.ceil(32767.0 * tf / (tf + k1 * (1 - b + b * length / avgdl)))))


def _index_order(row: tuple[int, int, int, int, int]) -> tuple[int, int, int]:
    """The impact index's key (term_id, impact DESC, chunk_id): postings copied in this order
    visit each of its leaf pages once (072_bm25_write_path.sql)."""
    return row[0], -row[2], row[3]


async def analyze_chunks(conn: AsyncConnection, namespace: str, texts: Sequence[str]) -> list[ChunkTerms]:
    """Each text's term ids and frequencies, in order; the namespace's dictionary learns the new
    lexemes (run outside a transaction, so they are committed at once)."""
    analyzed = [ChunkTerms() for _ in texts]
    if not texts:
        return analyzed
    cur = await conn.execute(ANALYZE_SQL, {"texts": list(texts), "namespace": namespace}, binary=True)
    for ordinal, term_ids, tfs in await cur.fetchall():
        analyzed[ordinal - 1] = ChunkTerms(list(term_ids), list(tfs))
    return analyzed


async def remove_postings(conn: AsyncConnection, document_id: object, change: KeywordChange) -> None:
    """Drop the postings of the document's current chunks (call before deleting them)."""
    cur = await conn.execute(REMOVE_SQL, {"document_id": document_id})
    term_ids, counts, chunks, length = await cur.fetchone()
    change.df.subtract(dict(zip(term_ids, counts, strict=True)))
    change.chunks -= chunks
    change.length -= int(length)


async def add_postings(conn: AsyncConnection, namespace: str, chunk_ids: Sequence[int],
                       analyzed: Sequence[ChunkTerms], change: KeywordChange) -> None:
    """Postings of the new chunks, with impacts computed on the namespace's basis."""
    term_ids: list[int] = []
    tfs: list[int] = []
    owners: list[int] = []
    lengths: list[int] = []
    indexed = 0
    total = 0
    for chunk_id, terms in zip(chunk_ids, analyzed, strict=True):
        if not terms.term_ids:
            continue  # no lexemes: not counted, as the triggers do
        length = terms.length
        term_ids += terms.term_ids
        tfs += terms.tfs
        owners += [chunk_id] * len(terms.term_ids)
        lengths += [length] * len(terms.term_ids)
        change.df.update(terms.term_ids)
        indexed += 1
        total += length
    if not indexed:
        return
    cur = await conn.execute(BASIS_SQL, {"namespace": namespace, "avgdl": total / indexed})
    avgdl, k1, b = await cur.fetchone()
    rows = sorted(((term_id, tf, impact(tf, length, avgdl, k1, b), chunk_id, length)
                   for term_id, tf, chunk_id, length in zip(term_ids, tfs, owners, lengths, strict=True)),
                  key=_index_order)
    async with conn.cursor() as cursor, cursor.copy(COPY_POSTINGS) as copy:
        copy.set_types(["int4", "int2", "int2", "int8", "int4"])
        for row in rows:
            await copy.write_row(row)
    change.chunks += indexed
    change.length += total


async def settle_statistics(conn: AsyncConnection, namespace: str, change: KeywordChange) -> None:
    """The namespace counters and document frequencies for the transaction's net change."""
    deltas = [(term_id, delta) for term_id, delta in change.df.items() if delta]
    if deltas:
        await conn.execute(DF_SQL, {"namespace": namespace, "term_ids": [t for t, _ in deltas],
                                    "deltas": [d for _, d in deltas]})
    if change.chunks or change.length or deltas:
        await conn.execute("INSERT INTO keyword_stats (namespace, chunks, terms) VALUES (%s, %s, %s)",
                           (namespace, change.chunks, change.length))
        await conn.execute("SELECT fold_long_keyword_stats(%s)", (namespace,))


async def hand_over_to_ingest(conn: AsyncConnection) -> None:
    """Tell the triggers on `chunks` that this transaction maintains the keyword index itself."""
    await conn.execute("SELECT set_config('bm25.maintained_by', 'ingest', true)")
