"""Hybrid search over a namespace's chunks: BM25 keyword ranking, HNSW vector ranking, and fusion.

- keyword: Okapi BM25 computed in SQL from `chunk_terms` and `keyword_stats` (030_retrieval.sql):
  idf = ln(1 + (N - df + 0.5) / (df + 0.5)), tf saturation with k1, length normalisation with b.
  Every chunk containing a query term is scored, so filters (applied after scoring) never starve it.
- vector: cosine similarity through the partial HNSW index of the namespace's embedding model,
  `(embedding::vector(D)) vector_cosine_ops WHERE embedding_model = ...`, with
  `hnsw.iterative_scan = relaxed_order` so filtered searches still fill `top_k`.
- hybrid: a min-max normalized weighted sum (the default: nDCG@10 0.738 on SciFact against 0.713
  for reciprocal rank fusion, see bench/RESULTS.md) or reciprocal rank fusion, weights per request.

Rankings return chunk ids and scores; `hydrate` fetches the text and document fields for the
final few only.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.config import Settings
from lib.logs import log
from lib.retrieval.filters import compile_filter

if TYPE_CHECKING:
    from psycopg import AsyncConnection

MODES = ("auto", "hybrid", "keyword", "vector")
# Embedders that only see shared words: fused with BM25 they add noise, not meaning (on Cranfield,
# hybrid with local/hash-384 scored nDCG@10 0.290 against keyword alone's 0.354).
LEXICAL_EMBEDDERS = ("local/hash-",)
FUSIONS = ("rrf", "weighted")
RRF_K = 60
MIN_CANDIDATES = 50
# hnsw.ef_search, the HNSW candidate list, is the HNSW_EF_SEARCH setting unless a request sets
# its own within these bounds (pgvector's own limit is 1000); it is never below the ranking's limit.
MIN_EF_SEARCH, MAX_EF_SEARCH = 10, 1000


@dataclass
class SearchOptions:
    """What to search and how. `weights` scale each side in both fusions."""

    namespace: str
    top_k: int = 5
    mode: str = "hybrid"
    filter: dict[str, Any] | None = None
    document_ids: Sequence[str] = ()
    sources: Sequence[str] = ()
    min_score: float | None = None
    fusion: str = "weighted"
    keyword_weight: float = 1.0
    vector_weight: float = 1.0
    k1: float | None = None
    b: float | None = None
    candidates: int | None = None  # per side before fusion; default max(4 * top_k, 50)
    ef_search: int | None = None  # None: the HNSW_EF_SEARCH setting
    exact: bool = False  # vector side without the index (benchmarks: recall of the index)


@dataclass
class SearchHit:
    chunk_id: int
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    document_id: str = ""
    namespace: str = ""
    source: str = ""
    title: str | None = None
    text: str = ""
    position: int = 0
    heading_path: list[str] = field(default_factory=list)
    page: int | None = None
    char_start: int = 0
    char_end: int = 0
    token_count: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id, "document_id": self.document_id, "source": self.source,
            "title": self.title, "text": self.text, "score": round(self.score, 6),
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "heading_path": self.heading_path, "page": self.page, "position": self.position,
            "char_start": self.char_start, "char_end": self.char_end, "metadata": self.metadata,
        }


Ranking = list[tuple[int, float]]  # (chunk id, score), best first


class SearchHits(list):
    """The hits, best first, and what ran to find them: `mode` is the mode that actually ran
    (hybrid falls back to keyword when the namespace's embedding model is unavailable), and
    `notice` says why when it differs from the mode asked for."""

    def __init__(self, hits: Sequence[SearchHit] = (), mode: str = "hybrid", notice: str | None = None) -> None:
        super().__init__(hits)
        self.mode = mode
        self.notice = notice

    def report(self) -> dict[str, Any]:
        return {"mode": self.mode, **({"notice": self.notice} if self.notice else {})}


# --- scope: namespace, documents, sources, metadata --------------------------------------------


def scope_sql(options: SearchOptions, alias: str = "c") -> tuple[str, dict[str, Any]]:
    """The WHERE conditions every ranking shares, over chunk alias `alias`."""
    compiled = compile_filter(options.filter, column=f"{alias}.metadata")
    conditions = [f"{alias}.namespace = %(namespace)s"]
    params: dict[str, Any] = {"namespace": options.namespace, **compiled.params}
    if options.document_ids:
        conditions.append(f"{alias}.document_id = ANY(%(document_ids)s::uuid[])")
        params["document_ids"] = list(options.document_ids)
    if options.sources:
        conditions.append(
            f"{alias}.document_id IN (SELECT id FROM documents WHERE namespace = %(namespace)s"
            " AND source = ANY(%(sources)s))"
        )
        params["sources"] = list(options.sources)
    if compiled.sql != "TRUE":
        conditions.append(compiled.sql)
    return " AND ".join(conditions), params


def _is_filtered(options: SearchOptions) -> bool:
    return bool(options.filter or options.document_ids or options.sources)


# --- keyword: BM25 ----------------------------------------------------------------------------

BM25_SQL = """
WITH query_terms AS (
    SELECT DISTINCT lexeme AS term FROM unnest(to_tsvector('english', %(query)s))
),
stats AS (
    SELECT greatest(sum(chunks), 1)::float8 AS n,
           greatest(sum(terms), 1)::float8 / greatest(sum(chunks), 1)::float8 AS avgdl
    FROM keyword_stats WHERE namespace = %(namespace)s
),
postings AS (
    SELECT p.chunk_id, p.tf, p.length, count(*) OVER (PARTITION BY p.term) AS df
    FROM chunk_terms p JOIN query_terms q ON q.term = p.term
    WHERE p.namespace = %(namespace)s
),
scored AS (
    SELECT p.chunk_id,
           sum(ln(1 + (s.n - p.df + 0.5) / (p.df + 0.5))
               * p.tf * (%(k1)s + 1)
               / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.length / s.avgdl))) AS score
    FROM postings p CROSS JOIN stats s
    GROUP BY p.chunk_id
)
"""


async def keyword_ranking(
    conn: AsyncConnection, query: str, options: SearchOptions, limit: int, settings: Settings
) -> Ranking:
    """BM25 over every chunk of the namespace that contains a query term."""
    k1 = settings.bm25_k1 if options.k1 is None else options.k1
    b = settings.bm25_b if options.b is None else options.b
    params: dict[str, Any] = {"query": query, "k1": float(k1), "b": float(b), "limit": limit}
    if _is_filtered(options):
        where, scope_params = scope_sql(options)
        params.update(scope_params)
        sql = (BM25_SQL + "SELECT s.chunk_id, s.score FROM scored s JOIN chunks c ON c.id = s.chunk_id"
               f" WHERE {where} ORDER BY s.score DESC, s.chunk_id LIMIT %(limit)s")
    else:
        params["namespace"] = options.namespace
        sql = BM25_SQL + "SELECT chunk_id, score FROM scored ORDER BY score DESC, chunk_id LIMIT %(limit)s"
    cur = await conn.execute(sql, params)
    return [(int(row[0]), float(row[1])) for row in await cur.fetchall()]


# --- vector: HNSW -----------------------------------------------------------------------------


async def namespace_models(conn: AsyncConnection, namespace: str) -> list[str]:
    """The embedding models of the namespace's documents, most used first (usually one)."""
    cur = await conn.execute(
        "SELECT embedding_model FROM documents WHERE namespace = %s"
        " GROUP BY embedding_model ORDER BY count(*) DESC, embedding_model",
        (namespace,),
    )
    return [row[0] for row in await cur.fetchall()]


async def embed_query(query: str, model: str, settings: Settings) -> list[float]:
    """The query's vector with the same model (and cache) the documents were embedded with."""
    from lib.ingest.embedding import embed_texts

    result = await embed_texts([query], model, settings=settings)
    return result.vectors[0]


async def vector_ranking_for_model(
    conn: AsyncConnection, vector: Sequence[float], model: str, options: SearchOptions, limit: int
) -> Ranking:
    """Nearest chunks by cosine similarity among the chunks embedded with `model`."""
    from psycopg import sql as pgsql

    from lib.db.vector import Vector
    from lib.ingest.store import indexed_vector_type

    dims = len(vector)
    where, params = scope_sql(options)
    params.update({"vector": Vector(vector), "limit": limit})
    # The model is a literal (safely quoted), not a parameter, so the planner can match the
    # partial index `WHERE embedding_model = '<model>'`.
    query = pgsql.SQL(
        "WITH nearest AS MATERIALIZED ("
        " SELECT c.id, c.embedding::{kind}({dims}) <=> %(vector)s::{kind}({dims}) AS distance"
        " FROM chunks c WHERE c.embedding_model = {model} AND c.embedding IS NOT NULL AND {where}"
        " ORDER BY c.embedding::{kind}({dims}) <=> %(vector)s::{kind}({dims}) LIMIT %(limit)s)"
        " SELECT id, 1 - distance FROM nearest ORDER BY distance, id"
    ).format(dims=pgsql.Literal(dims), kind=pgsql.SQL(indexed_vector_type(dims)),
             model=pgsql.Literal(model), where=pgsql.SQL(where))
    ef_search = min(MAX_EF_SEARCH, max(options.ef_search or limit, limit))
    async with conn.transaction():
        if options.exact:
            await conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
        else:
            await conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            await conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
        cur = await conn.execute(query, params)
        rows = await cur.fetchall()
    return [(int(row[0]), float(row[1])) for row in rows]


async def vector_ranking(
    conn: AsyncConnection, query: str, options: SearchOptions, limit: int, settings: Settings,
    query_vectors: dict[str, Sequence[float]] | None = None,
) -> Ranking:
    """Vector ranking with each model present in the namespace (one, except mid-migration by
    ingestion with another model), merged by similarity."""
    models = await namespace_models(conn, options.namespace)
    merged: dict[int, float] = {}
    for model in models:
        vector = (query_vectors or {}).get(model)
        if vector is None:
            vector = await embed_query(query, model, settings)
        for chunk_id, similarity in await vector_ranking_for_model(conn, vector, model, options, limit):
            merged[chunk_id] = max(similarity, merged.get(chunk_id, -math.inf))
    return sorted(merged.items(), key=lambda item: (-item[1], item[0]))[:limit]


# --- fusion -----------------------------------------------------------------------------------


def fuse_rrf(keyword: Ranking, vector: Ranking, keyword_weight: float, vector_weight: float,
             k: int = RRF_K) -> Ranking:
    """Reciprocal rank fusion: sum of weight / (k + rank) over the lists a chunk appears in."""
    scores: dict[int, float] = {}
    for weight, ranking in ((keyword_weight, keyword), (vector_weight, vector)):
        for rank, (chunk_id, _score) in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _min_max(ranking: Ranking) -> dict[int, float]:
    if not ranking:
        return {}
    values = [score for _, score in ranking]
    low, high = min(values), max(values)
    span = high - low
    return {chunk_id: (score - low) / span if span > 0 else 1.0 for chunk_id, score in ranking}


def fuse_weighted(keyword: Ranking, vector: Ranking, keyword_weight: float,
                  vector_weight: float) -> Ranking:
    """Min-max normalize each list to [0, 1], then a weighted sum (absent from a list: 0)."""
    kw, vec = _min_max(keyword), _min_max(vector)
    total = (keyword_weight + vector_weight) or 1.0
    scores = {
        chunk_id: (keyword_weight * kw.get(chunk_id, 0.0) + vector_weight * vec.get(chunk_id, 0.0)) / total
        for chunk_id in kw.keys() | vec.keys()
    }
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


# --- the search -------------------------------------------------------------------------------

HYDRATE_SQL = """
SELECT c.id, c.document_id::text, c.namespace, c.text, c.position, c.heading_path, c.page,
       c.char_start, c.char_end, c.token_count, c.metadata, d.source, d.title
FROM chunks c JOIN documents d ON d.id = c.document_id
WHERE c.id = ANY(%s)
"""


async def hydrate(conn: AsyncConnection, ranking: Ranking,
                  scores: dict[str, dict[int, float]] | None = None) -> list[SearchHit]:
    """Turn (chunk id, score) pairs into hits with text and document fields, in ranking order."""
    if not ranking:
        return []
    cur = await conn.execute(HYDRATE_SQL, ([chunk_id for chunk_id, _ in ranking],))
    rows = {row[0]: row for row in await cur.fetchall()}
    hits = []
    for chunk_id, score in ranking:
        row = rows.get(chunk_id)
        if row is None:  # deleted between ranking and hydration
            continue
        per_side = {name: side[chunk_id] for name, side in (scores or {}).items() if chunk_id in side}
        hits.append(SearchHit(
            chunk_id=chunk_id, score=score, scores=per_side, document_id=row[1], namespace=row[2],
            text=row[3], position=row[4], heading_path=list(row[5] or []), page=row[6],
            char_start=row[7], char_end=row[8], token_count=row[9], metadata=row[10] or {},
            source=row[11], title=row[12],
        ))
    return hits


def validate_options(options: SearchOptions) -> None:
    if options.mode not in MODES:
        raise errors.field_error("mode", f"unknown mode {options.mode!r}; use one of {', '.join(MODES)}")
    if options.fusion not in FUSIONS:
        raise errors.field_error("fusion", f"unknown fusion {options.fusion!r}; use one of {', '.join(FUSIONS)}")
    if not 1 <= options.top_k <= 200:
        raise errors.field_error("top_k", "must be between 1 and 200")
    if options.keyword_weight < 0 or options.vector_weight < 0:
        raise errors.field_error("weights", "weights must not be negative")
    if options.ef_search is not None and not MIN_EF_SEARCH <= options.ef_search <= MAX_EF_SEARCH:
        raise errors.field_error("ef_search", f"must be between {MIN_EF_SEARCH} and {MAX_EF_SEARCH}")
    compile_filter(options.filter)  # a bad filter is a 422 before any work


async def rank(conn: AsyncConnection, query: str, options: SearchOptions, settings: Settings,
               query_vectors: dict[str, Sequence[float]] | None = None
               ) -> tuple[Ranking, dict[str, dict[int, float]], str | None]:
    """The fused ranking (not cut to top_k), each side's scores by chunk id, and a notice when
    hybrid search had to answer from keywords alone."""
    validate_options(options)
    if options.ef_search is None:
        options = replace(options, ef_search=settings.hnsw_ef_search)
    limit = options.top_k if options.mode != "hybrid" else max(options.candidates or 0,
                                                                4 * options.top_k, MIN_CANDIDATES)
    keyword: Ranking = []
    vector: Ranking = []
    if options.mode == "hybrid":
        # Both sides at once, the vector side on a second pooled connection: the query's
        # embedding (often a provider call) overlaps the keyword search.
        async def vector_side() -> Ranking:
            from lib import db

            nonlocal notice
            try:
                async with db.connect(settings) as other:
                    return await vector_ranking(other, query, options, limit, settings, query_vectors)
            except errors.ApiError as exc:
                if not _embedding_unavailable(exc):
                    raise
                # No key, the provider down, the local model missing: keywords still answer.
                log("warning", "vector_search_unavailable", namespace=options.namespace, code=exc.code,
                    detail=exc.message)
                notice = (f"answered from keyword search alone: the namespace's embedding model is "
                          f"unavailable ({exc.code})")
                return []

        notice: str | None = None
        keyword, vector = await asyncio.gather(keyword_ranking(conn, query, options, limit, settings),
                                               vector_side())
    elif options.mode == "keyword":
        keyword = await keyword_ranking(conn, query, options, limit, settings)
    else:
        vector = await vector_ranking(conn, query, options, limit, settings, query_vectors)
    sides = {"keyword": dict(keyword), "vector": dict(vector)}
    if options.mode == "keyword":
        return keyword, sides, None
    if options.mode == "vector":
        return vector, sides, None
    if notice is not None:
        return keyword, sides, notice
    if options.fusion == "weighted":
        fused = fuse_weighted(keyword, vector, options.keyword_weight, options.vector_weight)
    else:
        fused = fuse_rrf(keyword, vector, options.keyword_weight, options.vector_weight)
    return fused, sides, None


def _embedding_unavailable(exc: errors.ApiError) -> bool:
    """Errors that mean the query cannot be embedded right now, as opposed to a bad request."""
    return exc.status in (502, 503, 504) and exc.code not in ("database_busy", "service_unavailable")


async def search(conn: AsyncConnection, query: str, options: SearchOptions, settings: Settings,
                 query_vectors: dict[str, Sequence[float]] | None = None) -> SearchHits:
    """The `top_k` best chunks for `query` in `options.namespace`, at or above `min_score`."""
    if not query.strip():
        raise errors.field_error("query", "must not be empty")
    auto_notice = None
    if options.mode == "auto":
        models = await namespace_models(conn, options.namespace)
        lexical = bool(models) and all(m.startswith(LEXICAL_EMBEDDERS) for m in models)
        options = replace(options, mode="keyword" if lexical else "hybrid")
        if lexical:
            auto_notice = (f"keyword search: the namespace's embedding model ({models[0]}) matches words, "
                           "not meaning, and fusing it would rank worse; send mode hybrid to fuse anyway")
    ranking, sides, notice = await rank(conn, query, options, settings, query_vectors)
    notice = notice or auto_notice
    if options.min_score is not None:
        ranking = [(chunk_id, score) for chunk_id, score in ranking if score >= options.min_score]
    hits = await hydrate(conn, ranking[: options.top_k], sides)
    if options.mode == "hybrid" and notice is None:
        for hit in hits:
            hit.scores["hybrid"] = hit.score
    return SearchHits(hits, "keyword" if notice else options.mode, notice)
