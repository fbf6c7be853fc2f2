"""POST/GET/DELETE /api/upload: every format end to end into Postgres, idempotency, replacement,
failure midway, streaming, listing, deleting and each bad input."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import psycopg
import pytest

from tests.fakes.provider_server import Reply
from tests.fixtures.make_fixtures import minimal_pdf

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def upload(client, filename: str, data: bytes | str, **fields):
    body = {"filename": filename, **fields}
    if isinstance(data, bytes):
        body["content_base64"] = base64.b64encode(data).decode()
    else:
        body["content"] = data
    return client.post("/api/upload", json=body)


def chunks_of(database: str, document_id: str) -> list[dict]:
    async def read() -> list[dict]:
        import psycopg
        from psycopg.rows import dict_row

        async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT position, text, heading_path, page, char_start, char_end, token_count, metadata,"
                " embedding_model, vector_dims(embedding) AS dims FROM chunks WHERE document_id = %s"
                " ORDER BY position", (document_id,))
            return await cur.fetchall()

    return asyncio.run(read())


def sql(database: str, statement: str, *params) -> list[tuple]:
    async def run() -> list[tuple]:
        import psycopg

        async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
            cur = await conn.execute(statement, params)
            return await cur.fetchall() if cur.description else []

    return asyncio.run(run())


# --- one document of every format ----------------------------------------------------------------

MARKDOWN = """# Handbook

Welcome to the team.

## Holidays

Everyone gets twenty-five days.

```python
print("rest")
```

## Equipment

Laptops are replaced every three years.
"""

HTML = """<html><head><title>Status page</title><style>body{}</style></head><body>
<nav>Home | About</nav><h1>Service status</h1><p>All systems <b>operational</b>.</p>
<h2>Incidents</h2><table><tr><th>Date</th><th>Impact</th></tr><tr><td>May 2</td><td>minor</td></tr></table>
<script>track()</script></body></html>"""

CODE = '''import math


def area(radius):
    """Area of a circle."""
    return math.pi * radius ** 2


class Shape:
    pass
'''


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        ("notes.txt", "Plain notes about the launch.\n\nSecond paragraph here.",
         [("Plain notes about the launch.\n\nSecond paragraph here.", [], None)]),
        ("handbook.md", MARKDOWN,
         [("# Handbook\n\nWelcome to the team.", ["Handbook"], None),
          ("## Holidays\n\nEveryone gets twenty-five days.", ["Handbook", "Holidays"], None),
          ('```python\nprint("rest")\n```', ["Handbook", "Holidays"], None),
          ("## Equipment\n\nLaptops are replaced every three years.", ["Handbook", "Equipment"], None)]),
        ("status.html", HTML,
         [("Service status\n\nAll systems operational.", ["Service status"], None),
          ("Incidents", ["Service status", "Incidents"], None),
          ("Date | Impact\n\nMay 2 | minor", ["Service status", "Incidents"], None)]),
        ("sample.pdf", (FIXTURES / "sample.pdf").read_bytes(),
         [("Quarterly report\nRevenue grew in the third quarter.\nCosts stayed flat.", [], 1),
          ("Outlook\nWe expect steady growth next year.", [], 2)]),
        ("sample.docx", (FIXTURES / "sample.docx").read_bytes(),
         [("Onboarding guide", [], None),
          ("Accounts\n\nAsk the service desk for a laptop and an account on your first day.", ["Accounts"], None),
          ("Contacts", ["Accounts", "Contacts"], None),
          ("Name: Ada; Role: Engineer\n\nName: Grace; Role: Manager", ["Accounts", "Contacts"], None),
          ("Expenses\n\nSubmit receipts within thirty days.", ["Expenses"], None)]),
        ("people.csv", "name,team\nAda,platform\nGrace,compilers\n",
         [("name: Ada; team: platform\nname: Grace; team: compilers", [], None)]),
        ("config.json", json.dumps({"server": {"port": 8080, "hosts": ["a", "b"]}, "debug": False}),
         [("server.port: 8080\nserver.hosts[0]: a\nserver.hosts[1]: b", ["server"], None),
          ("debug: false", ["debug"], None)]),
        ("shapes.py", CODE,
         [("import math", [], None),
          ('def area(radius):\n    """Area of a circle."""\n    return math.pi * radius ** 2', ["area"], None),
          ("class Shape:\n    pass", ["Shape"], None)]),
    ],
)
def test_every_format_is_extracted_chunked_and_stored(client, database, filename, content, expected) -> None:
    response = upload(client, filename, content, namespace="formats", metadata={"team": "docs"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "indexed" and body["namespace"] == "formats" and body["source"] == filename
    assert body["embedding_model"] == "local/hash-384" and body["dimensions"] == 384
    assert body["chunks"] == len(expected)
    rows = chunks_of(database, body["document_id"])
    assert [(r["text"], r["heading_path"], r["page"]) for r in rows] == expected
    assert [r["position"] for r in rows] == list(range(len(expected)))
    assert all(r["dims"] == 384 and r["metadata"] == {"team": "docs"} for r in rows)
    assert all(r["char_end"] - r["char_start"] == len(r["text"]) for r in rows)
    assert body["tokens"] == sum(r["token_count"] for r in rows)


def test_each_embedding_model_gets_its_own_partial_hnsw_index(client, database) -> None:
    from lib.ingest.vector_index import vector_index_name

    upload(client, "a.txt", "Indexed with the default model.", namespace="hnsw")
    upload(client, "b.txt", "Indexed with a smaller hashing model.", namespace="hnsw",
           embedding_model="local/hash-64")
    rows = sql(database, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks'"
                         " AND indexdef LIKE %s ORDER BY indexname", "%hnsw%")
    definitions = {name: definition for name, definition in rows}
    assert "::halfvec(384)) halfvec_cosine_ops" in definitions[vector_index_name("local/hash-384")]  # the default storage
    assert "'local/hash-64'" in definitions[vector_index_name("local/hash-64")]


def test_pdf_title_and_page_count_come_from_the_file(client) -> None:
    body = upload(client, "report.pdf", (FIXTURES / "sample.pdf").read_bytes(), namespace="titles").json()
    assert body["title"] == "Quarterly report" and body["media_type"] == "application/pdf"


def test_multipart_upload(client, database) -> None:
    response = client.post(
        "/api/upload",
        files={"file": ("guide.md", b"# Guide\n\nMultipart works.", "text/markdown")},
        data={"namespace": "forms", "metadata": json.dumps({"lang": "en"}), "chunk_size_tokens": "64"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "indexed" and body["source"] == "guide.md"
    rows = chunks_of(database, body["document_id"])
    assert rows[0]["heading_path"] == ["Guide"] and rows[0]["metadata"] == {"lang": "en"}


def test_chunking_options_apply_per_request(client, database) -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(200))
    body = upload(client, "long.txt", text, namespace="sizes", chunk_size_tokens=50,
                  chunk_overlap_tokens=10).json()
    rows = chunks_of(database, body["document_id"])
    assert len(rows) > 10 and all(r["token_count"] <= 50 for r in rows)
    assert all(r["text"].endswith(".") for r in rows)  # cut at sentence ends
    assert rows[1]["char_start"] < rows[0]["char_end"]  # overlapping


# --- idempotency, replacement, failure midway ----------------------------------------------------


def test_reupload_of_identical_content_is_a_no_op(client, database) -> None:
    first = upload(client, "same.md", "# Same\n\nNothing changes.", namespace="idem").json()
    second = upload(client, "same.md", "# Same\n\nNothing changes.", namespace="idem").json()
    assert second["status"] == "unchanged" and second["document_id"] == first["document_id"]
    assert second["version"] == 1 and second["chunks"] == first["chunks"]
    assert sql(database, "SELECT count(*) FROM documents WHERE namespace = 'idem'") == [(1,)]


def test_changed_document_replaces_the_old_and_reembeds_only_changed_chunks(client, database, fake_provider) -> None:
    model = {"embedding_model": "openai/text-embedding-3-small", "chunk_size_tokens": 20, "chunk_overlap_tokens": 0}
    paragraphs = [f"Paragraph {i} talks about topic {i} in some detail." for i in range(6)]
    first = upload(client, "doc.md", "\n\n".join(paragraphs), namespace="replace", **model).json()
    assert first["status"] == "indexed" and first["chunks"] == 6 and first["embedded"] == 6
    paragraphs[2] = "Paragraph 2 now says something entirely different."
    second = upload(client, "doc.md", "\n\n".join(paragraphs), namespace="replace", **model)
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["status"] == "replaced" and body["document_id"] == first["document_id"]
    assert body["version"] == 2 and body["embedded"] == 1 and body["cached"] == 5
    sent = fake_provider.requests_to("/embeddings")
    assert sent[-1].body["input"] == [paragraphs[2]]
    rows = chunks_of(database, body["document_id"])
    assert [r["text"] for r in rows] == paragraphs
    assert sql(database, "SELECT count(*) FROM chunks WHERE namespace = 'replace'") == [(6,)]


def test_provider_failing_on_the_third_batch_leaves_the_previous_version(client, database, fake_provider, env) -> None:
    env(EMBEDDING_BATCH_SIZE="2", EMBEDDING_CONCURRENCY="1")
    options = {"embedding_model": "openai/text-embedding-3-small", "namespace": "midway",
               "chunk_size_tokens": 20, "chunk_overlap_tokens": 0}
    old = [f"Old paragraph {i} is about apples and pears from the orchard." for i in range(6)]
    first = upload(client, "report.md", "\n\n".join(old), **options).json()
    assert first["status"] == "indexed" and first["chunks"] == 6
    before = sql(database, "SELECT version, content_hash FROM documents WHERE id = %s", first["document_id"])
    fake_provider.reset()
    fake_provider.queue(Reply(), Reply(), Reply(status=400))
    new = [f"New paragraph {i} is about oranges and lemons from the grove." for i in range(6)]
    failed = upload(client, "report.md", "\n\n".join(new), **options)
    assert failed.status_code == 502, failed.text
    assert failed.json()["error"]["code"] == "upstream_bad_request"
    assert len(fake_provider.requests_to("/embeddings")) == 3
    rows = chunks_of(database, first["document_id"])
    assert [r["text"] for r in rows] == old
    assert sql(database, "SELECT version, content_hash FROM documents WHERE id = %s", first["document_id"]) == before
    statuses = [r[0] for r in sql(database, "SELECT status FROM usage_ledger WHERE model = %s ORDER BY id",
                                  "openai/text-embedding-3-small")]
    assert statuses[-3:] == ["ok", "ok", "error"]
    # the two batches that succeeded are cached: the retry sends only what is left
    retry = upload(client, "report.md", "\n\n".join(new), **options).json()
    assert retry["status"] == "replaced" and retry["cached"] == 4 and retry["embedded"] == 2
    assert [r["text"] for r in chunks_of(database, first["document_id"])] == new


def test_provider_failing_while_earlier_slices_are_written_leaves_the_previous_version(
        client, database, fake_provider, env, monkeypatch) -> None:
    from lib.ingest import store

    # two chunks per slice: the third slice is embedded while the first two are being copied
    monkeypatch.setattr(store, "EMBED_SLICE", 2)
    env(EMBEDDING_BATCH_SIZE="2", EMBEDDING_CONCURRENCY="1")
    options = {"embedding_model": "openai/text-embedding-3-small", "namespace": "sliced",
               "chunk_size_tokens": 20, "chunk_overlap_tokens": 0}
    old = [f"Old paragraph {i} is about plums and figs from the garden." for i in range(6)]
    first = upload(client, "report.md", "\n\n".join(old), **options).json()
    assert first["status"] == "indexed" and first["chunks"] == 6
    stats = "SELECT sum(chunks), sum(terms) FROM keyword_stats WHERE namespace = 'sliced'"
    before = sql(database, stats)
    fake_provider.reset()
    fake_provider.queue(Reply(), Reply(), Reply(status=400))
    new = [f"New paragraph {i} is about kiwis and limes from the hillside." for i in range(6)]
    failed = upload(client, "report.md", "\n\n".join(new), **options)
    assert failed.status_code == 502, failed.text
    assert [r["text"] for r in chunks_of(database, first["document_id"])] == old
    assert sql(database, stats) == before
    assert sql(database, "SELECT count(*) FROM postings p JOIN terms t ON t.id = p.term_id"
                         " LEFT JOIN chunks c ON c.id = p.chunk_id WHERE t.namespace = 'sliced' AND c.id IS NULL") == [(0,)]
    retry = upload(client, "report.md", "\n\n".join(new), **options).json()
    assert retry["status"] == "replaced" and retry["cached"] == 4 and retry["embedded"] == 2
    assert [r["text"] for r in chunks_of(database, first["document_id"])] == new


# --- streaming, listing, deleting ----------------------------------------------------------------


def test_streamed_upload_reports_each_stage(client) -> None:
    text = "\n\n".join(f"Paragraph {i} of a streamed upload." for i in range(40))
    with client.stream("POST", "/api/upload", json={"filename": "s.txt", "content": text, "stream": True,
                                                   "namespace": "stream", "chunk_size_tokens": 16,
                                                   "chunk_overlap_tokens": 0}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    stages = [e.get("stage") for e in events if e["type"] == "progress"]
    assert stages[:3] == ["extract", "chunk", "embed"] and stages[-1] == "write"
    assert any(e.get("batches_done") for e in events if e.get("stage") == "embed")
    assert events[-1]["type"] == "result" and events[-1]["status"] == "indexed" and events[-1]["chunks"] == 40


def test_streamed_upload_reports_errors_as_an_event(client) -> None:
    with client.stream("POST", "/api/upload", json={"filename": "e.txt", "content": "   \n ", "stream": True,
                                                   "namespace": "stream"}) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "empty_document"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"filename": "photo.png", "content_base64": base64.b64encode(b"\x89PNG").decode()}, 415,
         "unsupported_document_type"),
        ({"filename": "big.txt", "content": "word " * 50}, 413, "payload_too_large"),
        ({"filename": "x.txt", "content": "a", "embedding_model": "nope/nothing"}, 422, "validation_error"),
    ],
)
def test_streamed_upload_refused_before_its_first_stage_is_a_plain_json_error(client, env, body, status,
                                                                             code) -> None:
    env(MAX_DOCUMENT_BYTES="100")
    response = client.post("/api/upload", json={**body, "stream": True, "namespace": "stream"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code


def test_list_and_delete(client, database) -> None:
    a = upload(client, "a.txt", "Alpha document.", namespace="listing").json()
    b = upload(client, "b.txt", "Beta document.", namespace="listing").json()
    upload(client, "c.txt", "Other namespace.", namespace="elsewhere")
    listed = client.get("/api/upload", params={"namespace": "listing"}).json()
    assert {d["source"] for d in listed["documents"]} == {"a.txt", "b.txt"}
    assert all(d["chunks"] == 1 and d["embedding_model"] == "local/hash-384" for d in listed["documents"])

    deleted = client.delete("/api/upload", params={"namespace": "listing", "document_id": a["document_id"]})
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert chunks_of(database, a["document_id"]) == []
    by_action = client.post("/api/upload", json={"action": "delete", "namespace": "listing", "source": "b.txt"})
    assert by_action.status_code == 200 and chunks_of(database, b["document_id"]) == []
    assert client.get("/api/upload", params={"namespace": "listing"}).json()["documents"] == []
    again = client.delete("/api/upload", params={"namespace": "listing", "document_id": a["document_id"]})
    assert again.status_code == 404


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "mentions"),
    [
        ({"filename": "photo.png", "content_base64": base64.b64encode(b"\x89PNG....").decode()}, 415,
         "unsupported_document_type", "photo.png"),
        ({"filename": "broken.pdf", "content_base64": base64.b64encode(b"%PDF-1.4 garbage").decode()}, 422,
         "corrupt_document", "broken.pdf"),
        ({"filename": "broken.docx", "content_base64": base64.b64encode(b"PK not a zip").decode()}, 422,
         "corrupt_document", "broken.docx"),
        ({"filename": "bad.json", "content": "{\"a\": "}, 422, "corrupt_document", "bad.json"),
        ({"filename": "empty.txt", "content": "  \n\n "}, 422, "empty_document", "empty.txt"),
        ({"filename": "blank.pdf", "content_base64": base64.b64encode(minimal_pdf([[]])).decode()}, 422,
         "empty_document", "blank.pdf"),
        ({"content": "no name"}, 422, "validation_error", "filename"),
        ({"filename": "x.txt", "content": "a", "content_base64": "YQ=="}, 422, "validation_error", "content"),
        ({"filename": "x.txt", "content_base64": "not base64!"}, 422, "validation_error", "content_base64"),
        ({"filename": "x.txt", "content": "a", "chunk_size_tokens": 4}, 422, "validation_error", "chunk_size_tokens"),
        ({"filename": "x.txt", "content": "a", "namespace": "bad namespace"}, 422, "validation_error", "namespace"),
        ({"filename": "x.txt", "content": "a", "embedding_model": "nope/nothing"}, 422, "validation_error", "model"),
        ({"action": "explode"}, 422, "validation_error", "action"),
        ({"action": "presign", "filename": "a.pdf", "content": "x"}, 422, "validation_error", "content"),
    ],
)
def test_bad_uploads_get_a_clear_error(client, database, body, status, code, mentions) -> None:
    response = client.post("/api/upload", json={"namespace": "bad", **body})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and mentions in error["message"]
    assert sql(database, "SELECT count(*) FROM documents WHERE namespace = 'bad'") == [(0,)]


@pytest.mark.parametrize(
    ("method", "params", "parameter"),
    [
        ("GET", {"limit": "0"}, "limit"),
        ("GET", {"limit": "ten"}, "limit"),
        ("GET", {"offset": "-1"}, "offset"),
        ("GET", {"namespace": "bad namespace"}, "namespace"),
        ("GET", {"namespce": "typo"}, "namespce"),
        ("DELETE", {"namespace": "bad/../name space", "document_id": "x"}, "namespace"),
        ("DELETE", {"namespace": "bad", "document_id": "x", "force": "1"}, "force"),
    ],
)
def test_bad_query_parameters_are_a_422_naming_them(client, method, params, parameter) -> None:
    response = client.request(method, "/api/upload", params=params)
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == [parameter]


def test_blank_query_parameters_take_their_defaults(client) -> None:
    listed = client.get("/api/upload", params={"namespace": "", "limit": "", "offset": ""})
    assert listed.status_code == 200, listed.text
    assert {k: listed.json()[k] for k in ("namespace", "limit", "offset")} == {
        "namespace": "default", "limit": 100, "offset": 0}


def test_document_over_the_configured_maximum_is_413(client, env) -> None:
    env(MAX_DOCUMENT_BYTES="100")
    response = upload(client, "big.txt", "word " * 50, namespace="bad")
    assert response.status_code == 413 and "big.txt" in response.json()["error"]["message"]


def test_namespace_limited_key_cannot_upload_list_or_delete_elsewhere(client, env) -> None:
    env(API_KEYS="docs-key:docs")
    auth = {"authorization": "Bearer docs-key"}
    assert client.post("/api/upload", json={"filename": "a.txt", "content": "x", "namespace": "hr"},
                       headers=auth).status_code == 403
    assert client.get("/api/upload", params={"namespace": "hr"}, headers=auth).status_code == 403
    assert client.delete("/api/upload", params={"namespace": "hr", "document_id": "x"},
                         headers=auth).status_code == 403
    assert upload(client, "a.txt", "Allowed.", namespace="docs").status_code == 401  # no key sent
    ok = client.post("/api/upload", json={"filename": "a.txt", "content": "Allowed.", "namespace": "docs"},
                     headers=auth)
    assert ok.status_code == 200


def test_model_spellings_are_one_model_and_only_allowed_models_get_an_index(client, database, env) -> None:
    env(EMBEDDING_MODELS=None)  # the default list: the default model, offline ones, known provider models
    spellings = ["local/hash-0384", "LOCAL/hash-384", "local/hash-384@384", "local/hash-00384"]
    for i, model in enumerate(spellings):
        r = upload(client, f"n{i}.txt", f"note number {i}", namespace="spell", embedding_model=model)
        assert r.status_code == 200 and r.json()["embedding_model"] == "local/hash-384", r.text
    for model in ["local/hash-9", "local/hash-10", "compat/anything", "openai/text-embedding-3-small@64"]:
        r = upload(client, "x.txt", "text", namespace="spell", embedding_model=model)
        assert r.status_code == 422 and "embedding_model" in r.json()["error"]["message"], r.text
    r = client.post("/api/embeddings", json={"input": "x", "model": "local/hash-9"})
    assert r.status_code == 422 and "not enabled" in r.json()["error"]["message"]
    with psycopg.connect(database) as conn:
        indexes = [r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'chunks' AND indexdef ILIKE '%hash-9%'")]
    assert indexes == []
    env(EMBEDDING_MODELS="local/hash-384,local/hash-9")
    assert upload(client, "y.txt", "text", namespace="other", embedding_model="local/hash-9").status_code == 200
    r = client.post("/api/embeddings", json={"input": "x", "model": "local/hash-²"})
    assert r.status_code == 422


def test_a_namespace_keeps_its_model_when_the_default_changes(client, database, env, fake_provider) -> None:
    env(OPENAI_API_KEY=None)
    first = upload(client, "a.txt", "the first note", namespace="keeps").json()
    assert first["embedding_model"] == "local/hash-384"
    env(OPENAI_API_KEY="sk-test-openai")  # the default for new namespaces becomes OpenAI's model
    second = upload(client, "b.txt", "the second note", namespace="keeps").json()
    assert second["embedding_model"] == "local/hash-384"
    assert upload(client, "c.txt", "a new namespace", namespace="fresh-ns").json()["embedding_model"] == \
        "openai/text-embedding-3-small"
    planned = client.get("/api/reindex").json()  # no EMBEDDING_MODEL named: nothing is re-embedded
    with psycopg.connect(database) as conn:
        kinds = [r[0] for r in conn.execute("SELECT DISTINCT kind FROM reindex_jobs")]
    assert "reembed" not in kinds and "switch_model" not in kinds, (planned, kinds)
