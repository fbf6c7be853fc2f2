"""What each caller may do, through the real functions on the local server: roles and namespaces
for keys and tokens alike, the end user taken from the token (never the body), per-user budgets,
rate limits and the ledger keyed by the verified identity, and anonymous access per address."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from lib.cli import call_app
from lib.config import parse_api_keys
from lib.web import Endpoint, Request
from lib.web.jwks import forget_key_sets
from tests.conftest import run_async
from tests.fakes.issuer import AUDIENCE, ISSUER, FakeIssuer
from tests.fakes.provider_server import Reply

PRICEY = {"input": 10_000, "output": 1000}  # $0.0021 on openai/gpt-4o-mini
whoami = Endpoint("whoami")


@whoami.get(role="reader")
async def who(request: Request, _query: object) -> dict:
    return {"caller": request.caller}


def unique(text: str) -> str:
    return f"{text}-{uuid.uuid4().hex[:8]}"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def fresh_minute() -> None:
    """Rate limits count in wall-clock minutes: start a test's burst well inside one."""
    if time.time() % 60 > 50:
        time.sleep(60 - time.time() % 60 + 0.1)


def ledger_rows(database: str, request_id: str) -> list[tuple]:
    with psycopg.connect(database) as conn:
        return conn.execute("SELECT caller, user_id FROM usage_ledger WHERE request_id = %s",
                            (request_id,)).fetchall()


@pytest.fixture
def tokens(issuer: FakeIssuer, env):
    forget_key_sets()
    env(AUTH_JWKS_URL=issuer.jwks_url, AUTH_ISSUER=ISSUER, AUTH_AUDIENCE=AUDIENCE, AUTH_ROLE_CLAIM="role",
        AUTH_NAMESPACES_CLAIM="namespaces")
    yield issuer
    forget_key_sets()


# --- keys: roles in API_KEYS ------------------------------------------------------------------


def test_api_keys_take_an_optional_role_after_their_namespaces() -> None:
    keys = {k.key: k for k in parse_api_keys("k1,k2:docs|faq,k3:reader,k4:docs|faq:writer,k5:user:abc,k6::ADMIN")}
    assert (keys["k1"].namespaces, keys["k1"].role, keys["k1"].effective_role) == (None, None, "admin")
    assert (keys["k2"].namespaces, keys["k2"].effective_role) == (frozenset({"docs", "faq"}), "writer")
    assert (keys["k3"].namespaces, keys["k3"].effective_role) == (None, "reader")
    assert (keys["k4"].namespaces, keys["k4"].effective_role) == (frozenset({"docs", "faq"}), "writer")
    assert (keys["k5"].namespaces, keys["k5"].role) == (frozenset({"user:abc"}), None)  # `:` in a namespace
    assert (keys["k6"].namespaces, keys["k6"].role) == (None, "admin")


def test_a_reader_key_may_search_but_not_upload(client, env) -> None:
    env(API_KEYS="reader-key:reader,writer-key:writer")
    document = {"namespace": "roles", "filename": "a.txt", "content": "Kettles boil water quickly."}
    r = client.post("/api/upload", json=document, headers=bearer("reader-key"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "writer_required"
    assert "'writer'" in r.json()["error"]["message"] and "'reader'" in r.json()["error"]["message"]
    assert r.json()["error"]["details"] == {"required_role": "writer", "role": "reader"}
    assert client.get("/api/upload", params={"namespace": "roles"}, headers=bearer("reader-key")).status_code == 403
    assert client.post("/api/upload", json=document, headers=bearer("writer-key")).status_code == 200
    search = {"query": "kettle", "namespace": "roles", "answer": False}
    assert client.post("/api/rag", json=search, headers=bearer("reader-key")).status_code == 200


def test_a_key_limited_to_namespaces_is_refused_elsewhere(client, env) -> None:
    env(API_KEYS="docs-key:docs|faq:reader")
    r = client.post("/api/rag", json={"query": "x", "namespace": "billing", "answer": False},
                    headers=bearer("docs-key"))
    assert r.status_code == 403 and "'billing'" in r.json()["error"]["message"]
    assert client.post("/api/rag", json={"query": "x", "namespace": "faq", "answer": False},
                       headers=bearer("docs-key")).status_code == 200


def test_only_a_named_admin_may_run_the_reindex_by_hand(client, env) -> None:
    env(API_KEYS="ops-key:admin,app-key,writer-key:writer", CRON_SECRET="cron-s3cret-value")
    assert client.get("/api/reindex", headers=bearer("ops-key")).status_code == 200
    assert client.get("/api/reindex", headers=bearer("app-key")).status_code == 401  # from before roles
    assert client.get("/api/reindex", headers=bearer("writer-key")).status_code == 401
    assert client.get("/api/reindex", headers=bearer("cron-s3cret-value")).status_code == 200


def test_an_admin_token_may_run_the_reindex_by_hand(client, tokens: FakeIssuer, env) -> None:
    env(CRON_SECRET="cron-s3cret-value")
    assert client.get("/api/reindex", headers=bearer(tokens.mint(role="admin"))).status_code == 200
    assert client.get("/api/reindex", headers=bearer(tokens.mint(role="writer"))).status_code == 401


# --- tokens: the same roles and namespaces ---------------------------------------------------


def test_prompts_and_experiments_are_changed_by_admin_tokens_only(client, tokens: FakeIssuer) -> None:
    name = unique("prompt")
    reader, admin = bearer(tokens.mint(sub="r")), bearer(tokens.mint(sub="a", role="admin"))
    refused = client.post("/api/prompts", json={"name": name, "template": "hi"}, headers=reader)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    assert client.post("/api/prompts", json={"name": name, "template": "hi"}, headers=admin).status_code == 201
    assert client.get("/api/prompts", params={"name": name}, headers=reader).status_code == 200
    experiment = {"name": unique("exp"), "variants": [{"name": "a", "model": "local/echo"},
                                                      {"name": "b", "model": "local/echo"}]}
    refused = client.post("/api/experiments", json=experiment, headers=reader)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    assert client.get("/api/experiments", headers=reader).status_code == 403


def test_an_experiment_by_user_assigns_a_signed_in_user_by_their_token(client, tokens: FakeIssuer) -> None:
    admin = bearer(tokens.mint(sub="a", role="admin"))
    name = unique("by-user")
    variants = [{"name": "a", "model": "local/echo"}, {"name": "b", "model": "local/echo"}]
    assert client.post("/api/experiments", json={"name": name, "unit": "user", "variants": variants},
                       headers=admin).status_code == 201
    assert client.post("/api/experiments", json={"action": "start", "name": name}, headers=admin).status_code == 200
    user = bearer(tokens.mint(sub=unique("carol")))
    ask = {"prompt": "hi", "experiment": name}
    served = [client.post("/api/ai_execute", json=ask, headers=user) for _ in range(3)]
    assert all(r.status_code == 200 for r in served), served[0].text  # no `user` needed: the token names them
    assert len({r.json()["experiment"]["variant"] for r in served}) == 1


def test_a_reader_token_is_refused_on_upload_naming_the_role(client, tokens: FakeIssuer) -> None:
    document = {"namespace": "mine", "filename": "b.txt", "content": "Toasters toast bread."}
    r = client.post("/api/upload", json=document, headers=bearer(tokens.mint(namespaces=["mine"])))
    assert r.status_code == 403 and "needs role 'writer'" in r.json()["error"]["message"]
    writer = tokens.mint(role="writer", namespaces=["mine"])
    assert client.post("/api/upload", json=document, headers=bearer(writer)).status_code == 200
    elsewhere = client.post("/api/upload", json={**document, "namespace": "theirs"}, headers=bearer(writer))
    assert elsewhere.status_code == 403 and "'theirs'" in elsewhere.json()["error"]["message"]


def test_a_signed_in_user_cannot_act_for_another(client, tokens: FakeIssuer, database) -> None:
    alice = bearer(tokens.mint(sub="alice"))
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "local/echo", "user": "bob"}, headers=alice)
    assert r.status_code == 403 and r.json()["error"]["code"] == "user_mismatch"
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "local/echo", "user": "alice"}, headers=alice)
    assert r.status_code == 200
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "local/echo"}, headers=alice)
    [(caller, user_id)] = ledger_rows(database, r.json()["id"])
    assert user_id == "alice" and caller.startswith("user:") and caller.endswith("/alice")


def test_a_signed_in_users_stored_chats_are_theirs_alone(client, tokens: FakeIssuer) -> None:
    chat = unique("chat")
    alice, bob = (bearer(tokens.mint(sub=name, namespaces=["default"])) for name in ("alice", "bob"))
    ask = {"conversation_id": chat, "model": "local/echo", "messages": [{"role": "user", "content": "Hi"}]}
    assert client.post("/api/ai_execute", json=ask, headers=alice).status_code == 200
    assert client.post("/api/ai_execute", json={**ask, "user": "alice"}, headers=alice).status_code == 200
    mine = client.get("/api/ai_execute", params={"conversation_id": chat}, headers=alice)
    assert mine.status_code == 200 and len(mine.json()["messages"]) == 4  # with or without `user`: one chat
    assert client.get("/api/ai_execute", params={"conversation_id": chat}, headers=bob).status_code == 404
    spoofed = client.get("/api/ai_execute", params={"conversation_id": chat, "user": "alice"}, headers=bob)
    assert spoofed.status_code == 403 and spoofed.json()["error"]["code"] == "user_mismatch"
    assert client.delete("/api/ai_execute", params={"conversation_id": chat}, headers=bob).status_code == 404
    assert client.delete("/api/ai_execute", params={"conversation_id": chat}, headers=alice).status_code == 200


def test_a_server_with_a_key_names_the_user_as_before(client, env, database) -> None:
    env(API_KEYS="server-key")
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "local/echo", "user": "carol"},
                    headers=bearer("server-key"))
    [(caller, user_id)] = ledger_rows(database, r.json()["id"])
    assert user_id == "carol" and caller.startswith("key:")


def test_embeddings_record_the_token_user(client, tokens: FakeIssuer, fake_provider, database) -> None:
    token = bearer(tokens.mint(sub="dora"))
    ask = {"input": unique("hello"), "model": "openai/text-embedding-3-small", "cache": False}
    assert client.post("/api/embeddings", json={**ask, "user": "eve"}, headers=token).status_code == 403
    assert client.post("/api/embeddings", json=ask, headers=token).status_code == 200
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT caller, user_id FROM usage_ledger WHERE kind = 'embedding' "
                            "AND user_id = 'dora'").fetchall()
    assert len(rows) == 1 and rows[0][0].endswith("/dora")


def test_per_user_budget_is_keyed_by_the_token_subject(client, tokens: FakeIssuer, fake_provider, env) -> None:
    env(BUDGET_USER_DAILY_USD="0.001")
    alice, bob = unique("alice"), unique("bob")
    fake_provider.queue(Reply(text="pricey", usage=PRICEY))
    ask = {"prompt": "x", "model": "openai/gpt-4o-mini"}
    assert client.post("/api/ai_execute", json=ask, headers=bearer(tokens.mint(sub=alice))).status_code == 200
    spent = client.post("/api/ai_execute", json=ask, headers=bearer(tokens.mint(sub=alice)))
    assert spent.status_code == 402 and alice in spent.json()["error"]["message"]
    fake_provider.queue(Reply(text="fine"))
    assert client.post("/api/ai_execute", json=ask, headers=bearer(tokens.mint(sub=bob))).status_code == 200
    assert len(fake_provider.requests) == 2  # alice's refusal reached no provider


def test_per_user_rate_limit_is_keyed_by_the_token_subject(client, tokens: FakeIssuer, env) -> None:
    env(RATE_LIMIT_RPM="2")
    alice, bob = unique("alice"), unique("bob")
    ask = {"prompt": "x", "model": "local/echo"}
    fresh_minute()
    codes = [client.post("/api/ai_execute", json=ask, headers=bearer(tokens.mint(sub=alice))).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.post("/api/ai_execute", json=ask, headers=bearer(tokens.mint(sub=bob))).status_code == 200


# --- anonymous access ------------------------------------------------------------------------


@pytest.fixture
def anonymous(env):
    env(API_KEYS="ops-key", ANONYMOUS_ROLE="reader", ANONYMOUS_NAMESPACES="public", ANONYMOUS_RATE_LIMIT_RPM="3",
        VERCEL="1")


def test_anonymous_callers_read_their_namespaces_only(client, anonymous) -> None:
    address = {"x-forwarded-for": f"203.0.113.{uuid.uuid4().int % 250}"}
    search = {"query": "x", "answer": False}
    assert client.post("/api/rag", json={**search, "namespace": "public"}, headers=address).status_code == 200
    r = client.post("/api/rag", json={**search, "namespace": "private"}, headers=address)
    assert r.status_code == 403 and "anonymous" in r.json()["error"]["message"]
    r = client.post("/api/upload", json={"namespace": "public", "filename": "x.txt", "content": "x"}, headers=address)
    assert r.status_code == 403 and r.json()["error"]["code"] == "writer_required"
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "local/echo", "user": "mallory"}, headers=address)
    assert r.status_code == 403 and r.json()["error"]["code"] == "user_mismatch"
    assert client.post("/api/rag", json=search, headers={**address, "authorization": "Bearer wrong"}).status_code == 401


def test_anonymous_callers_are_rate_limited_per_address(client, anonymous) -> None:
    first, second = (f"198.51.100.{uuid.uuid4().int % 250}, 10.0.0.1" for _ in range(2))
    ask = {"prompt": "x", "model": "local/echo"}
    fresh_minute()
    codes = [client.post("/api/ai_execute", json=ask, headers={"x-forwarded-for": first}).status_code
             for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.post("/api/ai_execute", json=ask, headers={"x-forwarded-for": first})
    assert "anonymous" in limited.json()["error"]["message"] and int(limited.headers["retry-after"]) >= 1
    assert client.post("/api/ai_execute", json=ask, headers={"x-forwarded-for": second}).status_code == 200
    assert client.post("/api/ai_execute", json=ask, headers=bearer("ops-key")).status_code == 200  # keys unaffected


def test_off_vercel_a_forwarded_address_is_not_trusted(anonymous, env, database) -> None:
    # in process, so the socket peer is fixed (uvicorn itself trusts x-forwarded-for from loopback)
    env(VERCEL=None, ANONYMOUS_RATE_LIMIT_RPM="1")
    fresh_minute()

    async def twice() -> list[int]:
        return [(await call_app(whoami, "GET", None, headers={"x-forwarded-for": f"192.0.2.{i}"}))[0]
                for i in range(2)]

    assert run_async(twice) == [200, 429]  # one peer, whatever the header claims


def test_anonymous_spend_has_its_own_daily_budget(client, anonymous, fake_provider, env) -> None:
    env(BUDGET_ANONYMOUS_DAILY_USD="0.001", ANONYMOUS_RATE_LIMIT_RPM="0")
    ask = {"prompt": "x", "model": "openai/gpt-4o-mini"}
    fake_provider.queue(Reply(text="pricey", usage=PRICEY))
    client.post("/api/ai_execute", json=ask, headers={"x-forwarded-for": "192.0.2.10"})
    r = client.post("/api/ai_execute", json=ask, headers={"x-forwarded-for": "192.0.2.11"})
    assert r.status_code == 402 and "anonymous callers" in r.json()["error"]["message"]
    assert r.json()["error"]["details"]["scope"] == "anonymous"
    fake_provider.queue(Reply(text="fine"))
    assert client.post("/api/ai_execute", json=ask, headers=bearer("ops-key")).status_code == 200


def test_health_says_how_callers_are_identified_and_never_a_secret(client, tokens: FakeIssuer, env) -> None:
    env(API_KEYS="very-secret-key", AUTH_SECRET="authjs-secret-value-0123456789", AUTH_COOKIE="__session",
        AUTH_JWT_SECRET="jwt-secret-value-0123456789", ANONYMOUS_ROLE="reader")
    r = client.get("/api/health")
    identity = r.json()["identity"]
    assert identity["end_user_tokens"] == ["jwks", "jwt_secret", "authjs_session"]
    assert identity["issuer"] == ISSUER and identity["api_keys"] == 1
    assert identity["session_cookies"] == ["__session", "__Secure-authjs.session-token", "authjs.session-token"]
    assert identity["anonymous"]["role"] == "reader"
    assert r.json()["auth"] == "api_keys+jwks+jwt_secret+authjs_session"
    for secret in ("very-secret-key", "authjs-secret-value", "jwt-secret-value"):
        assert secret not in r.text
