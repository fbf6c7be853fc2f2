"""BM25 at scale: bounded (impact-ordered) ranking agrees with exact ranking, filters apply
before scoring, impacts are refreshed when the avgdl drifts, and the migration upgrades a
database that already has chunks."""

from __future__ import annotations

import random
from dataclasses import replace

import psycopg
import pytest

from lib import db
from lib.config import Settings
from lib.reindex import refresh_impacts
from lib.retrieval.search import SearchOptions, keyword_ranking
from tests.conftest import _admin_execute, _admin_url, _with_dbname
from tests.conftest import run_async as run
from tests.test_search_bm25 import add_document

EXACT = Settings(bm25_k1=1.2, bm25_b=0.75)
BOUNDED = replace(EXACT, bm25_exact_postings=0)  # every query takes the impact-ordered path
WORDS = ("apple banana cherry damson elder fig grape hazel iris juniper kiwi lemon mango nectar olive "
         "peach quince rowan sloe tamarind").split()


def texts(count: int, seed: int = 3) -> list[str]:
    """Chunks of Zipf-like words: the first words are in most chunks, the last in few."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(WORDS))]
    return [" ".join(rng.choices(WORDS, weights, k=rng.randint(4, 30))) for _ in range(count)]


async def load(conn, namespace: str, count: int) -> None:
    corpus = texts(count)
    for start in range(0, count, 50):
        await add_document(conn, namespace, f"d{start}.txt", corpus[start:start + 50])
    await conn.execute("UPDATE chunks SET metadata = jsonb_build_object('kind', CASE WHEN id %% 7 = 0"
                       " THEN 'faq' ELSE 'note' END) WHERE namespace = %s", (namespace,))


@pytest.mark.parametrize("query", ["apple banana", "apple banana cherry damson", "tamarind apple", "sloe"])
def test_bounded_ranking_returns_the_exact_top_results(database: str, query: str) -> None:
    async def main():
        async with db.connect() as conn:
            cur = await conn.execute("SELECT count(*) FROM chunks WHERE namespace = 'orchard'")
            if (await cur.fetchone())[0] == 0:
                await load(conn, "orchard", 600)
            options = SearchOptions(namespace="orchard")
            exact = await keyword_ranking(conn, query, options, 10, EXACT)
            bounded = await keyword_ranking(conn, query, options, 10, BOUNDED)
            shallow = await keyword_ranking(conn, query, options, 10, replace(BOUNDED, bm25_max_depth=10))
        return exact, bounded, shallow

    exact, bounded, shallow = run(main)
    assert len(exact) == 10
    assert [c for c, _ in bounded] == [c for c, _ in exact]
    assert [s for _, s in bounded] == pytest.approx([s for _, s in exact])
    # a depth too small to prove anything still answers, with exact scores for what it found
    assert len(shallow) == 10
    assert all(score == pytest.approx(dict(exact).get(chunk, score)) for chunk, score in shallow)


def test_filters_apply_before_scoring_on_every_path(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.retrieval import search

    async def main():
        async with db.connect() as conn:
            await load(conn, "grove", 400)
            cur = await conn.execute("SELECT id, metadata->>'kind' FROM chunks WHERE namespace = 'grove'")
            kinds = dict(await cur.fetchall())
            found = {}
            for kind in ("faq", "note"):  # 57 chunks of 400, and the other 343
                options = SearchOptions(namespace="grove", filter={"kind": kind})
                # the scope scored from the chunks, from a hashed scope (every posting, or
                # in-scope heads), or past both caps with each posting's chunk checked; and a
                # broad filter's scope cut from the unfiltered ranking (POST_FILTER_SHARE), which
                # falls back to those paths when too few of it are in scope
                for caps in ((5000, 100_000, 2.0), (10, 100_000, 2.0), (10, 20, 2.0), (10, 20, 0.0)):
                    monkeypatch.setattr(search, "SCOPE_CAP", caps[0])
                    monkeypatch.setattr(search, "SCOPE_HASH_CAP", caps[1])
                    monkeypatch.setattr(search, "POST_FILTER_SHARE", caps[2])
                    for label, settings in (("exact", EXACT), ("bounded", BOUNDED)):
                        found[kind, label, caps] = await keyword_ranking(conn, "apple cherry", options, 10, settings)
                monkeypatch.setattr(search, "POST_FILTER_SHARE", 0.0)
                monkeypatch.setattr(search, "POST_FILTER_MAX", 5)  # too shallow to fill 10: the fallback
                found[kind, "fallback"] = await keyword_ranking(conn, "apple cherry", options, 10, EXACT)
                monkeypatch.undo()
            # the unfiltered ranking, cut to the filter afterwards: what the filtered one must equal
            everything = await keyword_ranking(conn, "apple cherry", SearchOptions(namespace="grove"), 400, EXACT)
        return kinds, found, everything

    kinds, found, everything = run(main)
    for key, ranking in found.items():
        expected = [(c, s) for c, s in everything if kinds[c] == key[0]][:10]
        assert [c for c, _ in ranking] == [c for c, _ in expected], key
        assert [s for _, s in ranking] == pytest.approx([s for _, s in expected]), key


def test_impacts_are_refreshed_when_the_average_length_drifts(database: str) -> None:
    async def main():
        async with db.connect() as conn:
            await add_document(conn, "drift", "short.txt", ["plum pear", "plum fig"])
            cur = await conn.execute("SELECT avgdl FROM bm25_basis WHERE namespace = 'drift'")
            first = (await cur.fetchone())[0]
            untouched = (await refresh_impacts(conn, EXACT)).get("drift", 0)
            await add_document(conn, "drift", "long.txt", [" ".join(["plum", "kiwi", "lime", "sloe"] * 5)])
            rewritten = (await refresh_impacts(conn, EXACT)).get("drift", 0)
            cur = await conn.execute("SELECT avgdl FROM bm25_basis WHERE namespace = 'drift'")
            second = (await cur.fetchone())[0]
            cur = await conn.execute(
                "SELECT count(*) FROM postings p JOIN terms t ON t.id = p.term_id JOIN bm25_basis b USING (namespace)"
                " WHERE t.namespace = 'drift' AND p.impact <> bm25_impact(p.tf, p.length, b.avgdl, b.k1, b.b)")
            stale = (await cur.fetchone())[0]
        return first, untouched, rewritten, second, stale

    first, untouched, rewritten, second, stale = run(main)
    assert first == 2.0 and untouched == 0
    # lengths 2, 2, 20 (four lexemes, five times each): avgdl 8, a drift of 300%
    assert rewritten > 0 and second == 8.0 and stale == 0


def test_uploads_and_searches_succeed_while_impacts_are_refreshed(database: str) -> None:
    """A refresh in progress (its basis switched, one batch of postings rewritten and not yet
    committed) holds neither an upload nor a search back, even with a short lock timeout; when
    it finishes, every impact is on the new basis and bounded search still equals exact."""
    async def main():
        async with db.connect() as conn, db.connect() as refresher:
            await add_document(conn, "busy", "short.txt", ["plum pear", "plum fig", "pear fig plum"])
            await add_document(conn, "busy", "long.txt", [" ".join(["plum", "kiwi", "lime", "sloe"] * 6)] * 3)
            cur = await refresher.execute("SELECT bm25_refresh_begin('busy', 1.2, 0.75, 0.1)")
            began = (await cur.fetchone())[0]
            async with refresher.transaction():
                cur = await refresher.execute("SELECT bm25_refresh_batch('busy', 0, 1000000000)")
                rewritten = (await cur.fetchone())[0]
                async with await db.open_connection(database) as other:
                    await other.execute("SET lock_timeout = 300")  # a lock wait fails fast
                    await add_document(other, "busy", "new.txt", ["kiwi plum lime", "pear sloe"])
                    during = await keyword_ranking(other, "plum kiwi", SearchOptions(namespace="busy"), 5, BOUNDED)
            await refresher.execute("SELECT bm25_refresh_finish('busy')")
            cur = await conn.execute(
                "SELECT count(*) FROM postings p JOIN terms t ON t.id = p.term_id JOIN bm25_basis b USING (namespace)"
                " WHERE t.namespace = 'busy' AND p.impact <> bm25_impact(p.tf, p.length, b.avgdl, b.k1, b.b)")
            stale = (await cur.fetchone())[0]
            options = SearchOptions(namespace="busy")
            after = await keyword_ranking(conn, "plum kiwi", options, 5, BOUNDED)
            exact = await keyword_ranking(conn, "plum kiwi", options, 5, EXACT)
        return began, rewritten, during, stale, after, exact

    began, rewritten, during, stale, after, exact = run(main)
    assert began and rewritten > 0
    assert len(during) == 5  # the new document's chunks are searchable too
    assert stale == 0
    assert [c for c, _ in after] == [c for c, _ in exact]
    assert [s for _, s in after] == pytest.approx([s for _, s in exact])


def test_the_migration_upgrades_a_database_with_chunks_in_place(pg_template: str) -> None:
    from lib.db import migration_files

    name = "bundle_test_upgrade_bm25"
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_execute(f'CREATE DATABASE "{name}"')
    url = _with_dbname(_admin_url(), name)
    corpus = texts(120, seed=5)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for path in migration_files():
                if path.stem < "071":
                    conn.execute(path.read_text())
            document = conn.execute(
                "INSERT INTO documents (namespace, source, media_type, content_hash, embedding_model)"
                " VALUES ('old', 'a.txt', 'text/plain', 'h', 'm') RETURNING id").fetchone()[0]
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO chunks (document_id, namespace, position, text, content_hash, token_count,"
                    " char_start, char_end, embedding_model) VALUES (%s, 'old', %s, %s, 'h', 1, 0, 1, 'm')",
                    [(document, i, text) for i, text in enumerate(corpus)])
            before = conn.execute("SELECT count(*) FROM chunk_terms").fetchone()[0]
            for path in migration_files():
                if path.stem >= "071":
                    conn.execute(path.read_text())
            after = conn.execute("SELECT count(*) FROM postings").fetchone()[0]
            df = dict(conn.execute("SELECT lexeme, term_df(id) FROM terms WHERE term_df(id) <> 0").fetchall())
            truth = dict(conn.execute("SELECT t.lexeme, count(*) FROM chunks c, unnest(to_tsvector('english', c.text)) t"
                                      " GROUP BY t.lexeme").fetchall())
            stale = conn.execute(
                "SELECT count(*) FROM postings p JOIN terms t ON t.id = p.term_id JOIN bm25_basis b USING (namespace)"
                " WHERE p.impact <> bm25_impact(p.tf, p.length, b.avgdl, b.k1, b.b)").fetchone()[0]
            # writes after the upgrade go through the new triggers
            conn.execute("DELETE FROM chunks WHERE position < 20")
            df_after = dict(conn.execute(
                "SELECT lexeme, term_df(id) FROM terms WHERE term_df(id) <> 0").fetchall())
            truth_after = dict(conn.execute(
                "SELECT t.lexeme, count(*) FROM chunks c, unnest(to_tsvector('english', c.text)) t"
                " GROUP BY t.lexeme").fetchall())
    finally:
        db.forget_database(url)
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert before > 0 and after == before
    assert df == truth and stale == 0
    assert df_after == truth_after


def test_ingestion_computes_impacts_as_the_database_does(database: str) -> None:
    from lib.ingest.keywords import impact

    rng = random.Random(11)
    cases = [(rng.randint(1, 256), rng.randint(1, 5000), rng.uniform(1, 900), rng.choice([0.9, 1.2, 2.0]),
              rng.choice([0.0, 0.4, 0.75, 1.0])) for _ in range(2000)]

    async def main():
        async with db.connect() as conn:
            cur = await conn.execute(
                "SELECT bm25_impact(tf, length, avgdl, k1, b) FROM unnest(%s::int[], %s::int[], %s::float8[],"
                " %s::float8[], %s::float8[]) AS c(tf, length, avgdl, k1, b)", [list(column) for column in zip(*cases, strict=True)])
            return [row[0] for row in await cur.fetchall()]

    assert run(main) == [impact(*case) for case in cases]
