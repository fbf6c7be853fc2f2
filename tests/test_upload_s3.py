"""Large files through S3: presign, PUT to the URL, ingest the key; against moto's S3 server on loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import use_s3_bucket

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BUCKET = "bundle-uploads"


@pytest.fixture
def s3(s3_server: str, env) -> str:
    use_s3_bucket(env, s3_server, BUCKET)
    return s3_server


def presign(client, **fields) -> httpx.Response:
    return client.post("/api/upload", json={"action": "presign", "namespace": "big", **fields})


def test_presign_put_then_ingest(client, s3) -> None:
    pdf = (FIXTURES / "sample.pdf").read_bytes()
    answer = presign(client, filename="annual report.pdf", media_type="application/pdf", size=len(pdf))
    assert answer.status_code == 200, answer.text
    grant = answer.json()
    assert grant["key"].startswith("uploads/big/") and grant["key"].endswith("/annual_report.pdf")
    assert grant["headers"] == {"content-type": "application/pdf"} and grant["expires_in"] == 900
    put = httpx.put(grant["url"], content=pdf, headers=grant["headers"])
    assert put.status_code == 200, put.text

    ingested = client.post("/api/upload", json={"action": "ingest", "key": grant["key"], "namespace": "big",
                                                "filename": "annual report.pdf", "metadata": {"year": 2026}})
    assert ingested.status_code == 200, ingested.text
    body = ingested.json()
    assert body["status"] == "indexed" and body["chunks"] == 2 and body["source"] == "annual report.pdf"
    listed = client.get("/api/upload", params={"namespace": "big"}).json()["documents"]
    assert [(d["source"], d["blob_key"], d["metadata"]) for d in listed] == [
        ("annual report.pdf", grant["key"], {"year": 2026})]

    again = client.post("/api/upload", json={"action": "ingest", "key": grant["key"], "namespace": "big",
                                             "filename": "annual report.pdf", "metadata": {"year": 2026}})
    assert again.json()["status"] == "unchanged"


def test_ingesting_a_key_that_was_never_uploaded_is_404(client, s3) -> None:
    grant = presign(client, filename="ghost.txt").json()
    response = client.post("/api/upload", json={"action": "ingest", "key": grant["key"], "namespace": "big"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "blob_not_found"


def test_a_key_from_another_namespace_is_refused(client, s3) -> None:
    grant = client.post("/api/upload", json={"action": "presign", "namespace": "hr", "filename": "pay.txt"}).json()
    httpx.put(grant["url"], content=b"salaries", headers=grant["headers"])
    response = client.post("/api/upload", json={"action": "ingest", "key": grant["key"], "namespace": "big"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "key_not_allowed"


def test_presign_refuses_oversized_and_unsupported_files(client, s3, env) -> None:
    env(MAX_DOCUMENT_BYTES="1000")
    too_big = presign(client, filename="huge.pdf", size=5000)
    assert too_big.status_code == 413 and "huge.pdf" in too_big.json()["error"]["message"]
    unsupported = presign(client, filename="movie.mp4", media_type="video/mp4")
    assert unsupported.status_code == 415


def test_an_uploaded_object_over_the_maximum_is_413_before_download(client, s3, env) -> None:
    grant = presign(client, filename="grown.txt").json()
    httpx.put(grant["url"], content=b"x" * 5000, headers=grant["headers"])
    env(MAX_DOCUMENT_BYTES="1000")
    response = client.post("/api/upload", json={"action": "ingest", "key": grant["key"], "namespace": "big"})
    assert response.status_code == 413


def test_without_a_bucket_presign_is_a_configuration_error(client, env) -> None:
    env(S3_BUCKET=None)
    response = presign(client, filename="a.pdf")
    assert response.status_code == 503 and "S3_BUCKET" in response.json()["error"]["message"]


@pytest.mark.parametrize(("owner", "intruder"), [("team:x", "team_x"), ("team_x", "team:x"), ("a/b", "a_b"),
                                                 ("u@x", "u_x")])
def test_namespaces_that_look_alike_never_share_a_prefix(client, s3, env, owner, intruder) -> None:
    # A key limited to the intruder's namespace must not ingest the owner's presigned upload.
    env(API_KEYS=f"owner-key:{owner},intruder-key:{intruder}")
    grant = client.post("/api/upload", json={"action": "presign", "namespace": owner, "filename": "pay.txt"},
                        headers={"authorization": "Bearer owner-key"}).json()
    httpx.put(grant["url"], content=b"salaries", headers=grant["headers"])
    stolen = client.post("/api/upload", json={"action": "ingest", "key": grant["key"], "namespace": intruder},
                         headers={"authorization": "Bearer intruder-key"})
    assert stolen.status_code == 403 and stolen.json()["error"]["code"] == "key_not_allowed"
    own = client.post("/api/upload", json={"action": "ingest", "key": grant["key"], "namespace": owner},
                      headers={"authorization": "Bearer owner-key"})
    assert own.status_code == 200, own.text
