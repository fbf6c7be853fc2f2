"""Auth.js sessions minted by the real @auth/core under Node: the cookie (plain and chunked, on
http and https), the same token as a Bearer, and the refusals. Skipped only without Node.js."""

from __future__ import annotations

import asyncio
import json

import pytest

from lib.cli import call_app
from lib.web import Endpoint, Request
from tests.authjs import mint_session, needs_node

pytestmark = [pytest.mark.node, needs_node]

SECRET = "kQ3t9m0xV1b2n3m4q5w6e7r8t9y0u1i2o3p4a5s6d7f="  # what `npx auth secret` makes
app = Endpoint("session")


@app.post(role="reader")
async def who(request: Request, _body: object) -> dict:
    return {"user_id": request.user_id, "caller": request.caller, "via": request.identity.via}


def call(headers: dict[str, str]) -> tuple[int, dict]:
    headers = {"origin": "https://app.example.com", "host": "app.example.com", **headers}
    status, _, raw = asyncio.run(call_app(app, "POST", {}, headers=headers))
    return status, json.loads(raw)


def cookie_header(cookies: list[dict]) -> dict[str, str]:
    return {"cookie": "; ".join(["theme=dark", *(f"{c['name']}={c['value']}" for c in cookies)])}


@pytest.fixture
def authjs(env):
    env(AUTH_SECRET=SECRET)


@pytest.mark.parametrize("cookie_name", ["authjs.session-token", "__Secure-authjs.session-token"])
def test_the_session_cookie_names_the_user(authjs, cookie_name: str) -> None:
    minted = mint_session(SECRET, cookie_name, {"sub": "authjs-user-1", "name": "Ada", "email": "ada@example.com"})
    assert [c["name"] for c in minted["cookies"]] == [cookie_name]
    status, body = call(cookie_header(minted["cookies"]))
    assert status == 200, body
    assert body["user_id"] == "authjs-user-1" and body["via"] == "cookie"
    assert body["caller"].startswith("user:") and body["caller"].endswith("/authjs-user-1")


def test_a_chunked_session_cookie_is_joined(authjs) -> None:
    # a session over 4 KB (a big profile picture URL, many claims) is split into .0, .1, ...
    minted = mint_session(SECRET, "__Secure-authjs.session-token",
                          {"sub": "big-session-user", "picture": "https://cdn.example/" + "p" * 9000})
    names = [c["name"] for c in minted["cookies"]]
    assert names == [f"__Secure-authjs.session-token.{i}" for i in range(len(names))] and len(names) >= 3
    status, body = call(cookie_header(minted["cookies"]))
    assert status == 200 and body["user_id"] == "big-session-user"
    status, body = call(cookie_header(minted["cookies"][:-1]))  # a chunk missing: not a session
    assert status == 401


def test_the_session_token_as_a_bearer(authjs) -> None:
    minted = mint_session(SECRET, "authjs.session-token", {"sub": "bearer-session-user"})
    status, body = call({"authorization": f"Bearer {minted['jwt']}", "origin": ""})
    assert status == 200 and body["user_id"] == "bearer-session-user" and body["via"] == "authorization"


def test_a_rotated_secret_still_opens_sessions_made_with_the_old_one(env) -> None:
    minted = mint_session("the-old-secret-0123456789abcdef0123456789", "authjs.session-token", {"sub": "u-old"})
    env(AUTH_SECRET=f"{SECRET},the-old-secret-0123456789abcdef0123456789")
    assert call(cookie_header(minted["cookies"]))[1]["user_id"] == "u-old"


def test_refusals(authjs) -> None:
    other = mint_session("not-our-secret-0123456789abcdef0123456789", "authjs.session-token", {"sub": "u"})
    status, body = call(cookie_header(other["cookies"]))
    assert status == 401 and "AUTH_SECRET" in body["error"]["message"]
    expired = mint_session(SECRET, "authjs.session-token", {"sub": "u"}, max_age=-3600)
    status, body = call(cookie_header(expired["cookies"]))
    assert status == 401 and body["error"]["code"] == "token_expired"
    # minted for one cookie name, presented under the other: the name is the key's salt
    renamed = [{"name": "__Secure-authjs.session-token", "value": c["value"]}
               for c in mint_session(SECRET, "authjs.session-token", {"sub": "u"})["cookies"]]
    assert call(cookie_header(renamed))[0] == 401
    fresh = mint_session(SECRET, "authjs.session-token", {"sub": "u"})
    status, body = call({**cookie_header(fresh["cookies"]), "origin": "https://evil.example"})
    assert status == 403 and body["error"]["code"] == "origin_not_allowed"


def test_our_key_derivation_matches_auth_js(authjs) -> None:
    from lib.web.user_tokens import read_header, session_key

    minted = mint_session(SECRET, "authjs.session-token", {"sub": "u"})
    _, thumbprint = session_key(SECRET, "authjs.session-token", "A256CBC-HS512")
    assert read_header(minted["jwt"]) == {"alg": "dir", "enc": "A256CBC-HS512", "kid": thumbprint}
