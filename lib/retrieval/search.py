"""Hybrid search over a namespace's chunks: BM25 keyword ranking, HNSW vector ranking, and fusion.

- keyword: Okapi BM25 computed in SQL from `postings`, `term_df()` and `keyword_stats`
  (071_bm25_postings.sql): idf = ln(1 + (N - df + 0.5) / (df + 0.5)), tf saturation with k1,
  length normalisation with b. Exact over every posting of the query terms while they have at most
  BM25_EXACT_POSTINGS postings; past that, each term's postings are read in impact order and the
  top results are exact whenever the bound proves it (see `keyword_ranking`). A filter selects
  the chunks in scope before their postings are scored, unless the planner expects it to keep a
  fifth of the namespace or more: then the unfiltered ranking, deep enough, is cut to the scope.
- vector: cosine similarity through the partial HNSW index of the namespace's embedding model,
  `(embedding::halfvec(D)) halfvec_cosine_ops WHERE embedding_model = ...` (or `vector(D)`, as
  lib/ingest/vector_index.py built it), with `hnsw.ef_search` by the index's size and
  `hnsw.iterative_scan = relaxed_order` so filtered searches still fill `top_k` (or, for a scope
  small enough, exact distances over the scope's own vectors); optionally a binary-quantized
  first pass re-ranked by exact cosine distance (VECTOR_BINARY_RERANK).
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
# hnsw.ef_search, the HNSW candidate list, is the request's own within these bounds (pgvector's
# own limit is 1000), else HNSW_EF_SEARCH, else by the size of the model's index
# (lib/ingest/vector_index.py); it is never below the ranking's limit.
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
    ef_search: int | None = None  # None: the HNSW_EF_SEARCH setting, else by the index's size
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


async def estimated_scope(conn: AsyncConnection, where: str, params: dict[str, Any]) -> float:
    """The planner's estimate of the chunks `where` (over alias `c`) keeps: no rows are read, and
    a wrong estimate only sends a ranking down its slower path."""
    cur = await conn.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM chunks c WHERE {where}", params)
    return float((await cur.fetchone())[0][0]["Plan"]["Plan Rows"])


async def count_in_scope(conn: AsyncConnection, where: str, params: dict[str, Any], cap: int) -> int:
    """How many chunks `where` (over alias `c`) keeps, counted no further than `cap` + 1: enough
    to tell whether the scope is small enough for the path that starts from it."""
    cur = await conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM chunks c WHERE {where} LIMIT %(cap)s) s",
                             {**params, "cap": cap + 1})
    return (await cur.fetchone())[0]


# --- keyword: BM25 ----------------------------------------------------------------------------

# The query's terms in the namespace, with their document frequencies and the namespace's
# statistics: N and avgdl now, and the basis its postings' impacts were computed with.
QUERY_TERMS_SQL = """
WITH stats AS (
    SELECT greatest(sum(chunks), 1)::float8 AS n,
           greatest(sum(terms), 1)::float8 / greatest(sum(chunks), 1)::float8 AS avgdl
    FROM keyword_stats WHERE namespace = %(namespace)s
)
SELECT t.id, t.df, stats.n, stats.avgdl, b.avgdl, b.k1, b.b, b.prior_avgdl, b.prior_k1, b.prior_b
FROM (
    SELECT d.id, term_df(d.id) AS df
    FROM (SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %(query)s))) q
    JOIN terms d ON d.namespace = %(namespace)s AND d.lexeme = q.lexeme
) t
CROSS JOIN stats
LEFT JOIN bm25_basis b ON b.namespace = %(namespace)s
WHERE t.df > 0
"""

# Okapi BM25 over the query terms (`q`: term id and df) for the postings a ranking reads (`p`).
# The chunk's part of each term's score is tf (k1 + 1) / (tf + k1 (1 - b + b |D| / avgdl)).
BM25_SQL = """
WITH q AS (
    SELECT term_id, ln(1 + (%(n)s - df + 0.5) / (df + 0.5)) AS idf
    FROM unnest(%(term_ids)s::integer[], %(dfs)s::float8[]) AS q(term_id, df)
),
{postings},
scored AS (
    SELECT p.chunk_id,
           sum(q.idf * p.tf * (%(k1)s + 1)
               / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.length / %(avgdl)s))) AS score
    FROM postings_read p JOIN q USING (term_id)
    GROUP BY p.chunk_id
)
SELECT chunk_id, score FROM scored ORDER BY score DESC, chunk_id LIMIT %(limit)s
"""

# Every posting of every query term: exact, for queries whose terms are not common.
ALL_POSTINGS = """postings_read AS (
    SELECT p.term_id, p.chunk_id, p.tf, p.length FROM postings p JOIN q USING (term_id) {scope}
)"""

# Every posting of every query term whose chunk is in the scope, the scope's ids hashed once.
SCOPED_POSTINGS = """scope AS MATERIALIZED (
    SELECT c.id FROM chunks c WHERE {where}
),
postings_read AS (
    SELECT p.term_id, p.chunk_id, p.tf, p.length FROM postings p JOIN q USING (term_id)
    WHERE p.chunk_id IN (SELECT id FROM scope)
)"""

# The chunks in scope first, then their postings of the query terms (the chunk index is
# (chunk_id, term_id)): a filter narrows the work before any posting is scored.
SCOPE_POSTINGS = """scope AS MATERIALIZED (
    SELECT c.id FROM chunks c WHERE {where}
),
postings_read AS (
    SELECT p.term_id, p.chunk_id, p.tf, p.length
    FROM scope s JOIN postings p ON p.chunk_id = s.id
    WHERE p.term_id = ANY(%(term_ids)s::integer[])
)"""

# Bounded: each term's `depth` highest-impact postings (all of them when it has fewer), read from
# the impact index alone. A chunk's `known` score sums the parts of the postings read; for a term
# whose list was cut, a posting not read adds at most `cap` (idf (k1 + 1) times the impact where
# reading stopped, scaled back from 32767 and by the avgdl drift). So a chunk scores at most
# `known` plus the caps of the cut terms it was not seen with (`upper`), and a chunk never seen
# at most the sum of all caps. The `contenders` are the `limit` chunks with the highest known
# scores and those whose upper bound reaches the limit-th known score (the highest bounds first,
# at most `contenders` of them): any other chunk scores less than `limit` chunks already do. They
# are scored exactly from their own postings of the query terms, found by the chunk index in one
# scan over the contenders' ids in order (per contender, each lookup was a random descent: at 1M
# chunks, resolving 640 contenders that way added 33 ms to p50, in one scan 13 ms).
# `bound` is the most any other chunk can score: when the k-th contender scores at least that,
# the top k are exact.
#
# The heads of a term with at most `read_all` postings are the whole list (never cut).
#
# With a filter whose scope is hashed (`{scope_cte}` defines `scope`, `{head_scope}` checks each
# posting against it), the heads are each term's `depth` highest-impact postings *in scope*, read
# in impact order until that many are found, and the caps bound the scope's unread postings.
BOUNDED_SQL = """
WITH {scope_cte}q AS (
    SELECT term_id, df, ln(1 + (%(n)s - df + 0.5) / (df + 0.5)) AS idf
    FROM unnest(%(term_ids)s::integer[], %(dfs)s::float8[]) AS q(term_id, df)
),
head AS MATERIALIZED (
    SELECT q.term_id, h.chunk_id, h.impact,
           q.idf * h.tf * (%(k1)s + 1) / (h.tf + %(k1)s * (1 - %(b)s + %(b)s * h.length / %(avgdl)s)) AS part
    FROM q CROSS JOIN LATERAL (
        SELECT p.chunk_id, p.tf, p.length, p.impact FROM postings p WHERE p.term_id = q.term_id {head_scope}
        ORDER BY p.impact DESC LIMIT CASE WHEN q.df <= %(read_all)s THEN NULL ELSE %(depth)s END) h
),
cut AS MATERIALIZED (
    SELECT h.term_id, q.idf, q.idf * (%(k1)s + 1) * min(h.impact) / 32767.0 * %(drift)s AS cap
    FROM head h JOIN q USING (term_id)
    GROUP BY h.term_id, q.idf, q.df HAVING count(*) >= %(depth)s AND q.df > %(read_all)s
),
unseen AS (
    SELECT coalesce(sum(cap), 0) AS cap FROM cut
),
known AS MATERIALIZED (
    SELECT h.chunk_id, sum(h.part) AS score,
           sum(h.part) + (SELECT cap FROM unseen) - coalesce(sum(x.cap), 0) AS upper
    FROM head h LEFT JOIN cut x USING (term_id) {scope}
    GROUP BY h.chunk_id
),
kth AS (
    SELECT score FROM known ORDER BY score DESC, chunk_id OFFSET %(limit)s - 1 LIMIT 1
),
contenders AS MATERIALIZED (
    (SELECT chunk_id FROM known ORDER BY score DESC, chunk_id LIMIT %(limit)s)
    UNION
    (SELECT chunk_id FROM known WHERE upper >= coalesce((SELECT score FROM kth), 0)
     ORDER BY upper DESC, chunk_id LIMIT %(contenders)s)
),
resolved AS (
    SELECT p.chunk_id, sum(q.idf * p.tf * (%(k1)s + 1)
                           / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.length / %(avgdl)s))) AS score
    FROM postings p JOIN q USING (term_id)
    WHERE p.chunk_id = ANY(ARRAY(SELECT chunk_id FROM contenders ORDER BY chunk_id))
      AND p.term_id = ANY(%(term_ids)s::integer[])
    GROUP BY p.chunk_id
)
SELECT chunk_id, score,
       greatest((SELECT cap FROM unseen),
                (SELECT max(upper) FROM known WHERE chunk_id NOT IN (SELECT chunk_id FROM contenders))) AS bound,
       {scope_size} AS scope_size
FROM resolved ORDER BY score DESC, chunk_id LIMIT %(limit)s
"""

# The scope hashed for the bounded ranking, read no further than SCOPE_HASH_CAP + 1 chunks: a
# larger scope is not used (its size says so) and the ranking runs again checking each posting's
# chunk instead. `IS TRUE` keeps the check a hashed lookup on each posting read in impact order;
# as a plain `IN`, the planner made it a semi-join that read every posting and sorted them.
HASHED_SCOPE_CTE = """scope AS MATERIALIZED (
    SELECT c.id FROM chunks c WHERE {where} LIMIT %(scope_cap)s
),
"""
HASHED_HEAD_SCOPE = "AND (p.chunk_id IN (SELECT id FROM scope)) IS TRUE"

# With a filter: up to SCOPE_CAP chunks in scope, their postings of the query terms are scored
# (from the chunks). Up to SCOPE_HASH_CAP, the scope's ids are hashed once and each posting read
# from the impact index is checked against them: every posting of the query terms while they have
# at most SCOPED_EXACT_FACTOR times BM25_EXACT_POSTINGS (exact), else the bounded ranking over
# each term's highest-impact postings in scope. Past SCOPE_HASH_CAP the query is scored as without
# a filter, each posting read checked against the chunk it belongs to.
SCOPE_CAP = 5_000
SCOPE_HASH_CAP = 100_000
# A filter the planner expects to keep at least POST_FILTER_SHARE of the namespace: the unfiltered
# ranking, POST_FILTER_MARGIN times as deep as the scope's share says `limit` needs (at most
# POST_FILTER_MAX), cut to the scope; when fewer than `limit` of it are in scope, the paths above.
POST_FILTER_SHARE = 0.2
POST_FILTER_MARGIN = 1.5
POST_FILTER_MAX = 1_000
SCOPED_EXACT_FACTOR = 4
BOUNDED_START_DEPTH = 2_000
# in-scope postings per term the hashed bounded ranking starts from (deepened as without a filter);
# a term with at most SCOPED_READ_ALL postings is read whole, so only common terms are cut
SCOPED_START_DEPTH = 200
SCOPED_READ_ALL = 100_000
# contenders besides the top `limit` known scores (chunks whose upper bound reaches the limit-th
# known score): so many per result (more where the heads are shallow), and at least
# MIN_CONTENDERS in the last round, the one whose answer stands even unproven. A chunk that holds
# several of the query terms without being near the top of any term's list is found only this
# way: at 1M chunks, with common-term queries at top 10, 40 contenders returned 71% of the exact
# top 10 and 640 returned 91% (score sums 97.6% and 99.3%).
CONTENDERS = 4
SCOPED_CONTENDERS = 16
MIN_CONTENDERS = 640


@dataclass
class QueryTerms:
    """A query's terms in one namespace and the statistics BM25 needs."""

    term_ids: list[int]
    dfs: list[int]
    n: float
    avgdl: float
    basis_avgdl: float | None
    basis_k1: float | None
    basis_b: float | None
    # while an impact refresh is rewriting (072_bm25_write_path.sql): the basis of the rest
    prior_avgdl: float | None = None
    prior_k1: float | None = None
    prior_b: float | None = None

    @property
    def postings(self) -> int:
        return sum(self.dfs)


async def query_terms(conn: AsyncConnection, query: str, namespace: str) -> QueryTerms | None:
    cur = await conn.execute(QUERY_TERMS_SQL, {"query": query, "namespace": namespace})
    rows = await cur.fetchall()
    if not rows:
        return None
    first = rows[0]
    return QueryTerms([row[0] for row in rows], [row[1] for row in rows], *first[2:10])


async def keyword_ranking(
    conn: AsyncConnection, query: str, options: SearchOptions, limit: int, settings: Settings
) -> Ranking:
    """BM25: exact over every posting of the query terms when they have few (or the filter leaves
    few chunks), else over the candidates of the impact-ordered heads, exact when the bound
    proves it and bounded by BM25_MAX_DEPTH postings per term when it cannot."""
    k1 = settings.bm25_k1 if options.k1 is None else options.k1
    b = settings.bm25_b if options.b is None else options.b
    terms = await query_terms(conn, query, options.namespace)
    if terms is None:
        return []
    params: dict[str, Any] = {"term_ids": terms.term_ids, "dfs": terms.dfs, "n": terms.n, "avgdl": terms.avgdl,
                              "k1": float(k1), "b": float(b), "limit": limit}
    if not _is_filtered(options):
        return await _unfiltered_ranking(conn, terms, params, settings)
    where, scope_params = scope_sql(options)
    share = min(1.0, await estimated_scope(conn, where, scope_params) / max(terms.n, 1.0))
    if share >= POST_FILTER_SHARE:  # a broad filter: rank as without it, then keep the chunks in scope
        ranking = await _post_filtered(conn, terms, params, settings, share, where, scope_params)
        if ranking is not None:
            return ranking
    params.update(scope_params)
    hashable = terms.postings <= settings.bm25_exact_postings * SCOPED_EXACT_FACTOR
    cap = SCOPE_HASH_CAP if hashable else SCOPE_CAP  # count no further than a path needs
    in_scope = await count_in_scope(conn, where, scope_params, cap)
    if in_scope == 0:
        return []
    if in_scope <= SCOPE_CAP:
        return await _exact_ranking(conn, SCOPE_POSTINGS.replace("{where}", where), params)
    if hashable and in_scope <= SCOPE_HASH_CAP:
        return await _exact_ranking(conn, SCOPED_POSTINGS.replace("{where}", where), params)
    if not hashable and in_scope <= SCOPE_HASH_CAP:  # counted to SCOPE_CAP only: hash it if it fits
        ranking = await _bounded_ranking(conn, terms, {**params, "scope_cap": SCOPE_HASH_CAP + 1},
                                         settings, hashed_scope=where)
        if ranking is not None:
            return ranking
    if terms.postings <= settings.bm25_exact_postings:
        scope = "JOIN chunks c ON c.id = p.chunk_id WHERE " + where
        return await _exact_ranking(conn, ALL_POSTINGS.replace("{scope}", scope), params)
    return await _bounded_ranking(conn, terms, params, settings,
                                  joined_scope="JOIN chunks c ON c.id = h.chunk_id WHERE " + where)


async def _unfiltered_ranking(conn: AsyncConnection, terms: QueryTerms, params: dict[str, Any],
                              settings: Settings) -> Ranking:
    if terms.postings <= settings.bm25_exact_postings:
        return await _exact_ranking(conn, ALL_POSTINGS.replace("{scope}", ""), params)
    return await _bounded_ranking(conn, terms, params, settings)


async def _post_filtered(conn: AsyncConnection, terms: QueryTerms, params: dict[str, Any], settings: Settings,
                         share: float, where: str, scope_params: dict[str, Any]) -> Ranking | None:
    """The unfiltered ranking, deep enough that `limit` of it should be in a scope holding `share`
    of the chunks, cut to the scope: the scope's own top results, as exact as the unfiltered
    ranking is. None when too few of them were in scope to tell."""
    limit = params["limit"]
    wide = min(POST_FILTER_MAX, math.ceil(limit / share * POST_FILTER_MARGIN))
    ranking = await _unfiltered_ranking(conn, terms, {**params, "limit": wide}, settings)
    if not ranking:
        return []
    cur = await conn.execute(f"SELECT c.id FROM chunks c WHERE c.id = ANY(%(ids)s::bigint[]) AND {where}",
                             {**scope_params, "ids": [chunk_id for chunk_id, _ in ranking]})
    kept = {row[0] for row in await cur.fetchall()}
    in_scope = [(chunk_id, score) for chunk_id, score in ranking if chunk_id in kept]
    if len(in_scope) >= limit or len(ranking) < wide:  # enough, or every matching chunk was ranked
        return in_scope[:limit]
    return None


async def _exact_ranking(conn: AsyncConnection, postings: str, params: dict[str, Any]) -> Ranking:
    cur = await conn.execute(BM25_SQL.format(postings=postings), params)
    return [(int(row[0]), float(row[1])) for row in await cur.fetchall()]


async def _bounded_ranking(conn: AsyncConnection, terms: QueryTerms, params: dict[str, Any], settings: Settings,
                           joined_scope: str = "", hashed_scope: str = "") -> Ranking | None:
    """Impact-ordered heads, deepened fourfold until the bound proves the top results exact or
    the depth reaches BM25_MAX_DEPTH. A filter is either `joined_scope` (each head posting's chunk
    checked) or `hashed_scope` (the heads are postings in scope; None when the scope turns out
    larger than SCOPE_HASH_CAP, which the hash does not hold)."""
    limit = params["limit"]
    same_basis = (terms.basis_avgdl is not None and terms.basis_k1 == params["k1"]
                  and terms.basis_b == params["b"]
                  and (terms.prior_avgdl is None or (terms.prior_k1 == params["k1"] and terms.prior_b == params["b"])))
    # impacts were computed with the basis avgdl (or, mid-refresh, some with the prior one): a
    # larger avgdl now makes every part up to this much larger
    lowest = terms.basis_avgdl if terms.prior_avgdl is None else min(terms.basis_avgdl, terms.prior_avgdl)
    drift = max(1.0, terms.avgdl / lowest) if same_basis else math.inf
    hashed = bool(hashed_scope)
    sql = (BOUNDED_SQL.replace("{scope}", joined_scope)
           .replace("{scope_cte}", HASHED_SCOPE_CTE.replace("{where}", hashed_scope) if hashed else "")
           .replace("{head_scope}", HASHED_HEAD_SCOPE if hashed else "")
           .replace("{scope_size}", "(SELECT count(*) FROM scope)" if hashed else "0"))
    start = SCOPED_START_DEPTH if hashed else BOUNDED_START_DEPTH
    deepest = settings.bm25_max_depth
    depth = min(deepest, max(start, 4 * limit))
    while True:
        contenders = (SCOPED_CONTENDERS if hashed else CONTENDERS) * limit
        if depth >= deepest:  # the last round: what it does not prove, it answers
            contenders = max(MIN_CONTENDERS, contenders)
        cur = await conn.execute(sql, {**params, "depth": depth, "drift": drift, "contenders": contenders,
                                       "read_all": SCOPED_READ_ALL if hashed else 0})
        rows = await cur.fetchall()
        if hashed and not rows:  # no posting of the query terms in scope, unless the scope was cut
            fits = await count_in_scope(conn, hashed_scope, params, SCOPE_HASH_CAP) <= SCOPE_HASH_CAP
            return [] if fits else None
        if hashed and rows[0][3] > SCOPE_HASH_CAP:
            return None  # the scope is too large to hash
        if hashed:  # `depth` postings in scope take about depth * chunks / scope reads: cap them as unfiltered
            deepest = min(deepest, max(depth, int(settings.bm25_max_depth * rows[0][3] / terms.n)))
        ranking = [(int(row[0]), float(row[1])) for row in rows]
        if rows:
            bound = float(rows[0][2])
        else:  # no candidate in scope: only exhausted lists prove there is none
            bound = math.inf if joined_scope else 0.0
        proven = bound == 0.0 or (len(ranking) == limit and ranking[-1][1] >= bound)
        if proven or depth >= deepest:
            if not proven:
                log("debug", "bm25_bounded", depth=depth, bound=bound, last=ranking[-1][1] if ranking else None)
            return ranking
        depth = deepest if depth * 8 > deepest else depth * 4  # no short last step


# --- vector: HNSW -----------------------------------------------------------------------------


async def namespace_models(conn: AsyncConnection, namespace: str) -> list[str]:
    """The embedding models of the namespace's documents, most used first (usually one)."""
    cur = await conn.execute(
        "SELECT embedding_model FROM documents WHERE namespace = %s"
        " GROUP BY embedding_model ORDER BY count(*) DESC, embedding_model",
        (namespace,),
    )
    return [row[0] for row in await cur.fetchall()]


async def embed_query(query: str, model: str, settings: Settings) -> Sequence[float]:
    """The query's vector with the same model (and cache) the documents were embedded with."""
    from lib.ingest.embedding import embed_texts

    result = await embed_texts([query], model, settings=settings)
    return result.vectors[0]


# The model is a literal (safely quoted), not a parameter, so the planner can match the partial
# index `WHERE embedding_model = '<model>'`; the cast is the one the index's expression uses.
VECTOR_SQL = """
WITH nearest AS MATERIALIZED (
    SELECT c.id, c.embedding::{kind}({dims}) <=> %(vector)s::{kind}({dims}) AS distance
    FROM chunks c WHERE c.embedding_model = {model} AND c.embedding IS NOT NULL AND {where}
    ORDER BY c.embedding::{kind}({dims}) <=> %(vector)s::{kind}({dims}) LIMIT %(limit)s
)
SELECT id, 1 - distance FROM nearest ORDER BY distance, id
"""

# Binary-quantized first pass: the `first` nearest by Hamming distance between the vectors' sign
# bits (the model's `bit` HNSW index), then exact cosine distance on the stored vectors.
BINARY_RERANK_SQL = """
WITH first_pass AS MATERIALIZED (
    SELECT c.id, c.embedding FROM chunks c
    WHERE c.embedding_model = {model} AND c.embedding IS NOT NULL AND {where}
    ORDER BY binary_quantize(c.embedding::vector({dims}))::bit({dims})
             <~> binary_quantize(%(vector)s::vector({dims}))
    LIMIT %(first)s
),
nearest AS MATERIALIZED (
    SELECT id, embedding::vector({dims}) <=> %(vector)s::vector({dims}) AS distance
    FROM first_pass ORDER BY distance LIMIT %(limit)s
)
SELECT id, 1 - distance FROM nearest ORDER BY distance, id
"""


# A filter that keeps few chunks: exact cosine distance over the scope itself. Through the HNSW
# index, pgvector's iterative scan reads about limit / selectivity entries to fill `limit` (at 1M
# chunks and a 1% filter, 50 candidates took three times as long as 10), while the scope's own
# vectors may be few enough to compare them all, and the answer is then exact. The scope is read
# once, each distance computed as its row is read, no further than the cap: its size comes back
# with the nearest, and past the cap they are not used. Measured at 1M and 1% (60 queries): the
# index 36 ms p50 for 10 and 121 ms for 50, the exact read of 10,000 vectors 27-29 ms for either;
# SCOPE_EXACT_RATIO puts the switch between the two.
SCOPE_EXACT_CAP = 20_000
SCOPE_EXACT_RATIO = 12
# the planner's estimate of the scope decides whether to try: past this many times the cap, the
# index straight away (a scope read to the cap and found larger is time lost)
SCOPE_ESTIMATE_SLACK = 2

SCOPE_EXACT_SQL = """
WITH scope AS MATERIALIZED (
    SELECT c.id, c.embedding::vector({dims}) <=> %(vector)s::vector({dims}) AS distance FROM chunks c
    WHERE {where} LIMIT %(scope_cap)s
)
SELECT id, 1 - distance, (SELECT count(*) FROM scope) FROM scope ORDER BY distance, id LIMIT %(limit)s
"""


async def vector_ranking_for_model(
    conn: AsyncConnection, vector: Sequence[float], model: str, options: SearchOptions, limit: int,
    binary_rerank: int = 0,
) -> Ranking:
    """Nearest chunks by cosine similarity among the chunks embedded with `model`, through the
    model's HNSW index (or its binary index and an exact re-rank, when `binary_rerank` is set and
    that index exists). `hnsw.ef_search` is the request's, else by the index's size."""
    from psycopg import sql as pgsql

    from lib.db.vector import to_vector
    from lib.ingest.vector_index import search_index, size_class

    dims = len(vector)
    where, params = scope_sql(options)
    params.update({"vector": to_vector(vector), "limit": limit})
    async with conn.transaction():
        index = await search_index(conn, model, dims)
        if _is_filtered(options) and not options.exact:
            # The index reads about limit * rows / in_scope entries, the exact scan in_scope
            # vectors: exact while in_scope² <= ratio * limit * rows. Count no further than that.
            cap = min(SCOPE_EXACT_CAP, math.isqrt(int(SCOPE_EXACT_RATIO * limit * max(index.rows, 1))))
            of_model = pgsql.SQL("c.embedding_model = {model} AND c.embedding IS NOT NULL AND ").format(
                model=pgsql.Literal(model)).as_string(conn) + where
            if await estimated_scope(conn, of_model, params) <= SCOPE_ESTIMATE_SLACK * cap:
                query = pgsql.SQL(SCOPE_EXACT_SQL).format(dims=pgsql.Literal(dims), where=pgsql.SQL(of_model))
                cur = await conn.execute(query, {**params, "scope_cap": cap + 1})
                rows = await cur.fetchall()
                if not rows or rows[0][2] <= cap:
                    return [(int(row[0]), float(row[1])) for row in rows]
        binary = bool(binary_rerank) and index.binary and not options.exact
        params["first"] = limit * binary_rerank
        query = pgsql.SQL(BINARY_RERANK_SQL if binary else VECTOR_SQL).format(
            dims=pgsql.Literal(dims), kind=pgsql.SQL("vector" if options.exact else index.kind),
            model=pgsql.Literal(model),
            where=pgsql.SQL(where))
        if options.exact:
            await conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
        else:
            wanted = options.ef_search or size_class(index.rows).ef_search
            ef_search = min(MAX_EF_SEARCH, max(wanted, params["first"] if binary else limit))
            await conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                               " set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
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
        ranking = await vector_ranking_for_model(conn, vector, model, options, limit, settings.vector_binary_rerank)
        for chunk_id, similarity in ranking:
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
    if options.ef_search is None and settings.hnsw_ef_search is not None:
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
