"""BM25 in SQL: scores match a hand-computed example, and stay right after delete and replace."""

from __future__ import annotations

import asyncio
import math

import pytest

from lib import db
from lib.config import Settings
from lib.retrieval.search import SearchOptions, keyword_ranking, search
from tests.conftest import run_async as run

SETTINGS = Settings(bm25_k1=1.2, bm25_b=0.75)


async def add_document(conn, namespace: str, source: str, texts: list[str]) -> str:
    cur = await conn.execute(
        "INSERT INTO documents (namespace, source, media_type, content_hash, embedding_model)"
        " VALUES (%s, %s, 'text/plain', %s, 'local/hash-8') RETURNING id::text",
        (namespace, source, source),
    )
    document_id = (await cur.fetchone())[0]
    for position, text in enumerate(texts):
        await conn.execute(
            "INSERT INTO chunks (document_id, namespace, position, text, content_hash, token_count,"
            " char_start, char_end, embedding_model) VALUES (%s, %s, %s, %s, 'h', 3, 0, %s, 'local/hash-8')",
            (document_id, namespace, position, text, len(text)),
        )
    return document_id


def bm25(tf: int, length: int, df: int, n: int, avgdl: float, k1: float = 1.2, b: float = 0.75) -> float:
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))


async def scores(conn, namespace: str, query: str, **kw) -> dict[str, float]:
    ranking = await keyword_ranking(conn, query, SearchOptions(namespace=namespace, **kw), 10, SETTINGS)
    cur = await conn.execute("SELECT id, text FROM chunks WHERE id = ANY(%s)", ([c for c, _ in ranking],))
    text_of = dict(await cur.fetchall())
    return {text_of[chunk_id]: score for chunk_id, score in ranking}


def test_scores_match_a_hand_computed_example(database: str) -> None:
    async def main():
        async with db.connect() as conn:
            # lexemes: cat chase mice (3) | cat cat sleep (3) | dog bark loud night (4): N=3, avgdl=10/3
            await add_document(conn, "zoo", "a.txt", ["Cats chase mice", "cats, cats sleep"])
            await add_document(conn, "zoo", "b.txt", ["Dogs bark loudly at night"])
            await add_document(conn, "elsewhere", "c.txt", ["cats everywhere cats"])
            found = await scores(conn, "zoo", "the cats")
            barking = await scores(conn, "zoo", "barking dogs")
        return found, barking

    found, barking = run(main)
    # hand computation: idf(cat) = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln(1.6) = 0.470004
    # "Cats chase mice": tf 1, |D| 3 -> 0.470004 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 0.9)) = 0.490052
    # "cats, cats sleep": tf 2, |D| 3 -> 0.470004 * 4.4 / (2 + 1.11) = 0.664958
    assert found == pytest.approx({"Cats chase mice": 0.490052, "cats, cats sleep": 0.664958}, abs=1e-5)
    assert list(found) == ["cats, cats sleep", "Cats chase mice"]
    assert found["Cats chase mice"] == pytest.approx(bm25(1, 3, 2, 3, 10 / 3))
    # both query terms in one chunk: idf(dog) = idf(bark) = ln(1 + 2.5 / 1.5)
    expected = 2 * bm25(1, 4, 1, 3, 10 / 3)
    assert barking == pytest.approx({"Dogs bark loudly at night": expected})


def test_statistics_follow_delete_and_replace(database: str) -> None:
    async def main():
        async with db.connect() as conn:
            await add_document(conn, "farm", "a.txt", ["cows graze", "cows cows moo loudly"])
            b_id = await add_document(conn, "farm", "b.txt", ["sheep graze on the hill"])
            before = await scores(conn, "farm", "graze")
            # delete a whole document (chunks go by cascade)
            async with conn.transaction():
                await conn.execute("DELETE FROM documents WHERE id = %s", (b_id,))
            after_delete = await scores(conn, "farm", "graze")
            # replace a chunk's text in place, as a re-ingest that keeps positions would
            async with conn.transaction():
                await conn.execute("UPDATE chunks SET text = 'goats graze and graze' WHERE text = 'cows graze'")
            after_replace = await scores(conn, "farm", "graze")
            # a re-embedding does not touch the statistics
            await conn.execute("UPDATE chunks SET embedding_model = 'other'")
            cur = await conn.execute("SELECT sum(chunks), sum(terms) FROM keyword_stats WHERE namespace = 'farm'")
            stats_after_reembed = await cur.fetchone()
            cur = await conn.execute("SELECT compact_keyword_stats()")
            await cur.fetchone()
            cur = await conn.execute("SELECT count(*), sum(chunks), sum(terms) FROM keyword_stats WHERE namespace = 'farm'")
            compacted = await cur.fetchone()
            cur = await conn.execute("SELECT count(*) FROM postings p JOIN terms t ON t.id = p.term_id"
                                     " WHERE t.namespace = 'farm'")
            postings = (await cur.fetchone())[0]
        return before, after_delete, after_replace, stats_after_reembed, compacted, postings

    before, after_delete, after_replace, stats, compacted, postings = run(main)
    # before: cow graze (2) | cow cow moo loud (4) | sheep graze hill (3): N=3, avgdl=3
    assert before == pytest.approx({"cows graze": bm25(1, 2, 2, 3, 3.0),
                                    "sheep graze on the hill": bm25(1, 3, 2, 3, 3.0)})
    # after deleting b.txt: N=2, avgdl=3, df(graze)=1
    assert after_delete == pytest.approx({"cows graze": bm25(1, 2, 1, 2, 3.0)})
    # after replacing: goat graze graze (3) | cow cow moo loud (4): N=2, avgdl=3.5
    assert after_replace == pytest.approx({"goats graze and graze": bm25(2, 3, 1, 2, 3.5)})
    assert tuple(stats) == (2, 7)
    assert tuple(compacted) == (1, 2, 7)
    assert postings == 2 + 3  # goat graze | cow moo loud


def test_keyword_search_returns_hits_with_document_fields(database: str) -> None:
    async def main():
        async with db.connect() as conn:
            await add_document(conn, "docs", "guide.md", ["Install the package with pip", "Run the server"])
            return await search(conn, "how to install", SearchOptions(namespace="docs", mode="keyword",
                                                                        top_k=3), SETTINGS)

    hits = run(main)
    assert [h.text for h in hits] == ["Install the package with pip"]
    hit = hits[0].to_json()
    assert hit["source"] == "guide.md" and hit["position"] == 0 and hit["scores"]["keyword"] > 0


def test_a_query_of_stop_words_finds_nothing(database: str) -> None:
    async def main():
        async with db.connect() as conn:
            await add_document(conn, "stop", "a.txt", ["the and of"])
            return await scores(conn, "stop", "the of")

    assert run(main) == {}


@pytest.mark.parametrize("path", ["triggers", "per document"])
def test_statistics_stay_exact_under_concurrent_ingests_replaces_and_deletes(database: str, path: str,
                                                                            monkeypatch) -> None:
    from lib.config import get_settings
    from lib.ingest import store
    from lib.ingest.store import IngestOptions, delete_document, ingest_document

    settings = get_settings()
    if path == "per document":  # every document large enough for the batched keyword path
        monkeypatch.setattr(store, "EMBED_SLICE", 1)
    else:
        monkeypatch.setattr(store, "EMBED_SLICE", 10_000)
    namespace = f"busy-{path.replace(' ', '-')}"

    async def main():
        async def ingest(i: int, version: int):
            text = f"Report {i} version {version}. " + " ".join(["alpha beta gamma delta"] * (i + version))
            await ingest_document(text.encode(), f"r{i}.txt", IngestOptions(namespace=namespace), settings=settings)

        await asyncio.gather(*(ingest(i, 1) for i in range(8)))
        # replace half, delete two, add more, all at once
        await asyncio.gather(*(ingest(i, 2) for i in range(4)),
                             delete_document(namespace, settings=settings, source="r6.txt"),
                             delete_document(namespace, settings=settings, source="r7.txt"),
                             *(ingest(i, 1) for i in range(8, 12)))
        async with db.connect() as conn:
            cur = await conn.execute("SELECT sum(chunks), sum(terms) FROM keyword_stats WHERE namespace = %s", (namespace,))
            kept = await cur.fetchone()
            cur = await conn.execute(
                "SELECT count(*), sum(n) FROM (SELECT c.id, sum(coalesce(array_length(t.positions, 1), 1)) AS n"
                " FROM chunks c, unnest(to_tsvector('english', c.text)) t WHERE c.namespace = %s"
                " GROUP BY c.id) per_chunk", (namespace,))
            truth = await cur.fetchone()
            cur = await conn.execute(
                "SELECT count(*) FROM postings p JOIN terms t ON t.id = p.term_id LEFT JOIN chunks c ON c.id = p.chunk_id"
                " WHERE t.namespace = %s AND c.id IS NULL", (namespace,))
            dangling = (await cur.fetchone())[0]
            cur = await conn.execute("SELECT lexeme, term_df(id) FROM terms WHERE namespace = %s"
                                     " AND term_df(id) <> 0", (namespace,))
            df_kept = dict(await cur.fetchall())
            cur = await conn.execute(
                "SELECT t.lexeme, count(*) FROM chunks c, unnest(to_tsvector('english', c.text)) t"
                " WHERE c.namespace = %s GROUP BY t.lexeme", (namespace,))
            df_truth = dict(await cur.fetchall())
        return kept, truth, dangling, df_kept, df_truth

    kept, truth, dangling, df_kept, df_truth = run(main)
    assert tuple(kept) == tuple(truth)
    assert truth[0] == 10  # twelve reports, two deleted (one chunk each)
    assert dangling == 0
    assert df_kept == df_truth  # document frequencies kept as data are exact too


def test_counters_fold_themselves_and_stay_exact(database: str) -> None:
    async def main():
        async with db.connect() as conn:
            await add_document(conn, "many", "many.txt", [f"note number {i} about apples" for i in range(150)])
            cur = await conn.execute("SELECT count(*), sum(chunks), sum(terms) FROM keyword_stats WHERE namespace = 'many'")
            after_inserts = await cur.fetchone()
            async with conn.transaction():
                for _ in range(100):  # one statement per chunk: one delta row each
                    await conn.execute("DELETE FROM chunks WHERE id = (SELECT min(id) FROM chunks WHERE namespace = 'many')")
            cur = await conn.execute("SELECT count(*), sum(chunks), sum(terms) FROM keyword_stats WHERE namespace = 'many'")
            after_deletes = await cur.fetchone()
            cur = await conn.execute("SELECT compact_keyword_stats()")
            await cur.fetchone()
            cur = await conn.execute("SELECT count(*), sum(chunks), sum(terms) FROM keyword_stats WHERE namespace = 'many'")
            compacted = await cur.fetchone()
            cur = await conn.execute("SELECT (SELECT count(*) FROM term_stats_delta WHERE namespace = 'many'),"
                                     " (SELECT term_df(id) FROM terms WHERE namespace = 'many' AND lexeme = 'appl')")
            deltas_left, apples = await cur.fetchone()
        return after_inserts, after_deletes, compacted, deltas_left, apples

    after_inserts, after_deletes, compacted, deltas_left, apples = run(main)
    assert deltas_left == 0 and apples == 50  # document frequencies fold with the counters
    # lexemes per chunk: note, number, <i>, appl -> 4
    assert after_inserts[0] <= 65 and tuple(after_inserts[1:]) == (150, 600)
    assert after_deletes[0] <= 65 and tuple(after_deletes[1:]) == (50, 200)
    assert tuple(compacted) == (1, 50, 200)


def test_folding_under_concurrent_writers_loses_nothing(database: str) -> None:
    async def writer(n: int) -> None:
        async with db.connect() as conn:
            document_id = await add_document(conn, "race", f"w{n}.txt", [])
            for position in range(25):
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO chunks (document_id, namespace, position, text, content_hash, token_count,"
                        " char_start, char_end, embedding_model) VALUES (%s, 'race', %s, 'pears and plums', 'h', 3,"
                        " 0, 15, 'local/hash-8')", (document_id, position))
                    if position % 5 == 4:
                        await conn.execute("DELETE FROM chunks WHERE document_id = %s AND position = %s",
                                           (document_id, position - 1))

    async def main():
        await asyncio.gather(*(writer(n) for n in range(4)))
        async with db.connect() as conn:
            cur = await conn.execute("SELECT sum(chunks), sum(terms) FROM keyword_stats WHERE namespace = 'race'")
            return await cur.fetchone()

    # 4 writers x (25 inserted - 5 deleted) chunks of two lexemes (pear, plum)
    assert tuple(run(main)) == (80, 160)
