"""End users' tokens: RS256 and ES256 JWTs checked against a JWKS served on loopback, HS256 with a
shared secret, the refusals (each a 401 saying why), the key-set cache, claims, and cookies."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from lib.cli import call_app
from lib.web import Endpoint, Request
from lib.web.jwks import COOLDOWN_S, forget_key_sets, key_set
from lib.web.user_tokens import CLOCK_SKEW_S, namespace_from_template
from tests.fakes.issuer import AUDIENCE, ISSUER, FakeIssuer

app = Endpoint("whoami")


def described(request: Request) -> dict:
    identity = request.identity
    return {"kind": identity.kind, "caller": request.caller, "user_id": request.user_id, "role": identity.role,
            "namespaces": None if identity.namespaces is None else sorted(identity.namespaces), "via": identity.via}


@app.get(role="reader")
async def whoami(request: Request, _query: object) -> dict:
    return described(request)


@app.post(role="reader")
async def act(request: Request, _body: object) -> dict:
    return described(request)


def call(headers: dict[str, str] | None = None, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    status, _, raw = asyncio.run(call_app(app, method, body, headers=headers))
    return status, json.loads(raw)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def refused(headers: dict[str, str], code: str = "invalid_token") -> str:
    status, body = call(headers)
    assert status == 401, body
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


@pytest.fixture
def jwks(issuer: FakeIssuer, env):
    """The fake issuer's keys, as a deployment with AUTH_JWKS_URL sees them; a fresh cache per test."""
    forget_key_sets()
    issuer.published, issuer.fail = ["rsa-1", "ec-1"], False
    env(AUTH_JWKS_URL=issuer.jwks_url, AUTH_ISSUER=ISSUER, AUTH_AUDIENCE=AUDIENCE)
    yield issuer
    forget_key_sets()


# --- what a valid token gives ----------------------------------------------------------------


def test_rs256_and_es256_tokens_name_the_user(jwks: FakeIssuer) -> None:
    for kid in ("rsa-1", "ec-1"):
        status, body = call(bearer(jwks.mint(kid=kid, sub="user_alice")))
        assert status == 200, body
        assert body["kind"] == "user" and body["user_id"] == "user_alice" and body["via"] == "authorization"
        assert body["caller"].startswith("user:") and body["caller"].endswith("/user_alice")
        assert body["role"] == "reader" and body["namespaces"] is None  # AUTH_DEFAULT_ROLE, no namespace rule


def test_two_users_of_one_issuer_are_two_callers(jwks: FakeIssuer) -> None:
    alice = call(bearer(jwks.mint(sub="alice")))[1]["caller"]
    bob = call(bearer(jwks.mint(sub="bob")))[1]["caller"]
    assert alice != bob and alice.rsplit("/", 1)[0] == bob.rsplit("/", 1)[0]


# --- refusals --------------------------------------------------------------------------------


def test_expired_token_is_refused_with_its_own_code_but_the_clock_skew_is_allowed(jwks: FakeIssuer) -> None:
    now = int(time.time())
    message = refused(bearer(jwks.mint(exp=now - 600)), code="token_expired")
    assert "expired" in message and f"{CLOCK_SKEW_S} s of clock skew" in message
    assert call(bearer(jwks.mint(exp=now - CLOCK_SKEW_S // 2)))[0] == 200


def test_token_not_yet_valid_is_refused(jwks: FakeIssuer) -> None:
    now = int(time.time())
    assert "not valid yet" in refused(bearer(jwks.mint(nbf=now + 600)), code="token_not_yet_valid")
    assert call(bearer(jwks.mint(nbf=now + CLOCK_SKEW_S // 2)))[0] == 200
    assert "future" in refused(bearer(jwks.mint(iat=now + 600)), code="token_not_yet_valid")


def test_wrong_audience_and_wrong_issuer_are_refused_naming_which(jwks: FakeIssuer) -> None:
    message = refused(bearer(jwks.mint(aud="someone-else")), code="invalid_audience")
    assert "someone-else" in message and "AUTH_AUDIENCE" in message
    message = refused(bearer(jwks.mint(iss="https://evil.example")), code="invalid_issuer")
    assert "https://evil.example" in message and "AUTH_ISSUER" in message
    assert call(bearer(jwks.mint(aud=["other", AUDIENCE])))[0] == 200  # a list naming us is fine
    assert call(bearer(jwks.mint(iss=ISSUER + "/")))[0] == 200  # a trailing slash is the same issuer


def test_token_without_expiry_is_refused(jwks: FakeIssuer) -> None:
    assert "no expiry" in refused(bearer(jwks.mint(exp=None)))


def test_unsigned_token_is_refused(jwks: FakeIssuer) -> None:
    assert "alg: none" in refused(bearer(jwks.mint(alg="none")))
    assert "alg: none" in refused(bearer(jwks.mint(alg="None")))


def test_hs256_signed_with_the_rsa_public_key_is_refused(jwks: FakeIssuer, env) -> None:
    forged = jwks.mint(kid="rsa-1", secret=jwks.public_pem("rsa-1"))
    assert "AUTH_JWT_SECRET is not set" in refused(bearer(forged))
    env(AUTH_JWT_SECRET="the-real-shared-secret-of-the-issuer")  # HS accepted, but only with our secret
    assert refused(bearer(forged)) == "bad signature"


def test_an_algorithm_that_does_not_fit_the_key_is_refused(jwks: FakeIssuer) -> None:
    # ES256 claimed with the RSA key's id: the key decides which algorithms are possible
    token = jwks.mint(kid="ec-1", header={"kid": "rsa-1"})
    assert "does not fit signing key 'rsa-1'" in refused(bearer(token))


def test_tampered_claims_and_signatures_are_refused(jwks: FakeIssuer) -> None:
    head, payload, signature = jwks.mint(sub="alice").split(".")
    other = jwks.mint(sub="admin").split(".")[1]
    assert refused(bearer(f"{head}.{other}.{signature}")) == "bad signature"
    assert refused(bearer(f"{head}.{payload}.{signature[:-4]}AAAA")) == "bad signature"
    assert "malformed" in refused(bearer(f"not-base64!.{payload}.{signature}"))


def test_unknown_kid_refetches_once_and_a_flood_of_them_cannot_hammer_the_issuer(jwks: FakeIssuer) -> None:
    now = [1000.0]
    key_set(jwks.jwks_url).clock = lambda: now[0]
    assert call(bearer(jwks.mint()))[0] == 200
    fetched = jwks.fetches
    for i in range(50):  # made-up key ids: at most one refetch per cooldown
        assert "unknown signing key id" in refused(bearer(jwks.mint(header={"kid": f"made-up-{i}"})))
    assert jwks.fetches == fetched  # the cache was fetched just now: no refetch within the cooldown
    now[0] += COOLDOWN_S + 1
    for i in range(50):
        refused(bearer(jwks.mint(header={"kid": f"made-up-again-{i}"})))
    assert jwks.fetches == fetched + 1


def test_key_rotation_is_picked_up_by_one_refetch(jwks: FakeIssuer) -> None:
    now = [1000.0]
    key_set(jwks.jwks_url).clock = lambda: now[0]
    assert call(bearer(jwks.mint()))[0] == 200
    jwks.rotate()
    token = jwks.mint(kid="rsa-2")
    assert "unknown signing key id 'rsa-2'" in refused(bearer(token))  # within the cooldown: not fetched
    now[0] += COOLDOWN_S + 1
    fetched = jwks.fetches
    assert call(bearer(token))[0] == 200
    assert call(bearer(jwks.mint(kid="rsa-1")))[0] == 200  # the old key still verifies while published
    assert jwks.fetches == fetched + 1


def test_keys_are_kept_for_their_lifetime_and_while_the_issuer_is_down(jwks: FakeIssuer) -> None:
    from lib.web.jwks import MAX_AGE_S

    now = [1000.0]
    key_set(jwks.jwks_url).clock = lambda: now[0]
    assert call(bearer(jwks.mint()))[0] == 200
    fetched = jwks.fetches
    for _ in range(5):
        assert call(bearer(jwks.mint()))[0] == 200
    assert jwks.fetches == fetched  # served from memory
    jwks.fail = True
    now[0] += MAX_AGE_S + 1
    assert call(bearer(jwks.mint()))[0] == 200  # the refetch failed: the keys held stay in use
    assert jwks.fetches == fetched + 1


def test_an_unreachable_key_set_is_a_503_not_a_401(jwks: FakeIssuer) -> None:
    jwks.fail = True
    status, body = call(bearer(jwks.mint()))
    assert status == 503 and body["error"]["code"] == "jwks_unavailable"


def test_hs256_with_the_shared_secret(env) -> None:
    issuer = FakeIssuer()
    secret = "super-secret-jwt-token-with-at-least-32-characters-long"
    env(AUTH_JWT_SECRET=secret)
    status, body = call(bearer(issuer.mint(kid=None, secret=secret.encode(), sub="supa-user")))
    assert status == 200 and body["user_id"] == "supa-user"
    assert refused(bearer(issuer.mint(kid=None, secret=b"another secret"))) == "bad signature"
    env(AUTH_ISSUER="https://project.supabase.co/auth/v1")  # checked for HS tokens too, when set
    assert "wrong issuer" in refused(bearer(issuer.mint(kid=None, secret=secret.encode())), code="invalid_issuer")


# --- API keys next to tokens -----------------------------------------------------------------


def test_a_bearer_equal_to_a_key_is_the_key_and_anything_else_must_be_a_valid_token(jwks: FakeIssuer, env) -> None:
    env(API_KEYS="server-key:reader")
    status, body = call(bearer("server-key"))
    assert status == 200 and body["kind"] == "key" and body["caller"].startswith("key:")
    assert refused(bearer("not-a-key"), code="unauthorized") == "invalid API key"
    assert call(bearer(jwks.mint()))[1]["kind"] == "user"
    env(AUTH_JWKS_URL=None, AUTH_ISSUER=None)
    assert refused(bearer(jwks.mint()), code="unauthorized") == "invalid API key"  # tokens not configured


def test_missing_credentials_say_what_to_send(jwks: FakeIssuer, env) -> None:
    env(AUTH_COOKIE="__session")
    message = refused({}, code="unauthorized")
    assert "Bearer" in message and "__session" in message


# --- configuration ---------------------------------------------------------------------------


def test_production_refuses_to_serve_with_no_way_to_authenticate(env) -> None:
    env(VERCEL_ENV="Production")  # Vercel's value in any case
    status, body = call()
    assert status == 503 and "API_KEYS" in body["error"]["message"]
    env(ANONYMOUS_ROLE="reader")
    assert call()[0] == 503  # anonymous access alone would leave nobody to manage the deployment


def test_production_with_tokens_only_serves_signed_in_users(env) -> None:
    secret = "production-shared-secret-0123456789abcdef"
    env(VERCEL_ENV="production", AUTH_JWT_SECRET=secret)
    assert call()[0] == 401
    assert call(bearer(FakeIssuer().mint(kid=None, secret=secret.encode())))[0] == 200


def test_production_fetches_keys_over_https_only(jwks: FakeIssuer, env) -> None:
    env(VERCEL_ENV="production")
    status, body = call(bearer(jwks.mint()))
    assert status == 503 and "https://" in body["error"]["message"]  # keys must not travel in the clear


def test_a_key_set_without_an_issuer_is_a_configuration_error(jwks: FakeIssuer, env) -> None:
    env(AUTH_ISSUER=None)
    status, body = call(bearer(jwks.mint()))
    assert status == 503 and "AUTH_ISSUER" in body["error"]["message"]


# --- claims ----------------------------------------------------------------------------------


def test_role_and_namespaces_from_claims(jwks: FakeIssuer, env) -> None:
    env(AUTH_ROLE_CLAIM="app_metadata.role", AUTH_NAMESPACES_CLAIM="namespaces")
    body = call(bearer(jwks.mint(app_metadata={"role": "writer"}, namespaces=["docs", "faq"])))[1]
    assert body["role"] == "writer" and body["namespaces"] == ["docs", "faq"]
    body = call(bearer(jwks.mint(app_metadata={"role": ["reader", "ADMIN"]}, namespaces="docs faq,help")))[1]
    assert body["role"] == "admin" and body["namespaces"] == ["docs", "faq", "help"]
    body = call(bearer(jwks.mint(app_metadata={"role": "authenticated"})))[1]  # Supabase's: not ours
    assert body["role"] == "reader" and body["namespaces"] == []


def test_a_private_namespace_per_user_from_a_template(jwks: FakeIssuer, env) -> None:
    env(AUTH_NAMESPACE_TEMPLATE="user:{sub}", AUTH_USER_CLAIM="uid")
    body = call(bearer(jwks.mint(uid="u-42", sub="user_2abc")))[1]
    assert body["user_id"] == "u-42" and body["namespaces"] == ["user:user_2abc"]
    assert "'uid' claim" in refused(bearer(jwks.mint()))  # no user id: no identity


def test_template_escapes_what_a_namespace_cannot_hold_so_users_never_share_one() -> None:
    assert namespace_from_template("user:{sub}", {"sub": "auth0|42"}, "x") == "user:auth0@7c42"
    assert namespace_from_template("user:{sub}", {"sub": "auth0@7c42"}, "x") == "user:auth0@407c42"
    assert namespace_from_template("t:{org}/{user}", {"org": "acme"}, "u1") == "t:acme/u1"
    assert namespace_from_template("user:{missing}", {}, "u1") is None


# --- cookies ---------------------------------------------------------------------------------


def test_a_session_cookie_authenticates_reads_from_anywhere(jwks: FakeIssuer, env) -> None:
    env(AUTH_COOKIE="__session")
    status, body = call({"cookie": f"theme=dark; __session={jwks.mint(sub='cookie-user')}"})
    assert status == 200 and body["user_id"] == "cookie-user" and body["via"] == "cookie"


def test_a_cookie_authenticated_change_must_come_from_an_allowed_origin(jwks: FakeIssuer, env) -> None:
    env(AUTH_COOKIE="__session", ALLOWED_ORIGINS="https://app.example.com")
    cookie = {"cookie": f"__session={jwks.mint()}", "host": "api.example.com"}
    status, body = call({**cookie, "origin": "https://evil.example"}, method="POST", body={})
    assert status == 403 and body["error"]["code"] == "origin_not_allowed"
    status, body = call(cookie, method="POST", body={})
    assert status == 403 and body["error"]["code"] == "origin_required" and "Origin" in body["error"]["message"]
    assert call({**cookie, "origin": "https://app.example.com"}, method="POST", body={})[0] == 200
    assert call({**cookie, "origin": "https://api.example.com"}, method="POST", body={})[0] == 200  # this site
    env(ALLOWED_ORIGINS="*")  # any site for CORS, but never for riding a cookie
    assert call({**cookie, "origin": "https://evil.example"}, method="POST", body={})[0] == 403


def test_a_bearer_token_is_not_ambient_so_no_origin_is_needed(jwks: FakeIssuer, env) -> None:
    env(AUTH_COOKIE="__session")
    headers = {**bearer(jwks.mint(sub="bearer-user")), "cookie": f"__session={jwks.mint(sub='cookie-user')}"}
    status, body = call(headers, method="POST", body={})
    assert status == 200 and body["user_id"] == "bearer-user" and body["via"] == "authorization"
