"""End-user tokens: verified, then read into an `Identity`. Imported only when a token arrives.

Two kinds, told apart by shape:

- a signed JWT (three parts) from any OIDC/JWT issuer: its keys from `AUTH_JWKS_URL` (RS*, PS*,
  ES*, EdDSA, each only with a key of its kind) or, for HS256/384/512, `AUTH_JWT_SECRET`; it must
  come from `AUTH_ISSUER` and, when `AUTH_AUDIENCE` is set, be meant for one of those audiences;
- an Auth.js session (five parts): a JWE, `dir` with `A256CBC-HS512` (or `A256GCM`), whose key
  is derived from `AUTH_SECRET` with HKDF-SHA256, the cookie's name as salt and
  `Auth.js Generated Encryption Key (<salt>)` as info, 64 bytes (32 for A256GCM), as
  @auth/core's `jwt.ts` does; its `kid` is the key's RFC 7638 thumbprint.

Both must carry `exp`; `exp`, `nbf` and `iat` are checked with `CLOCK_SKEW_S` of tolerance. Every
refusal is a 401 saying what was wrong (`token_expired` for an expired token, which the client
answers by refreshing it; `invalid_token` otherwise). The claims then give the user id
(`AUTH_USER_CLAIM`), the namespaces (`AUTH_NAMESPACES_CLAIM`, `AUTH_NAMESPACE_TEMPLATE`) and the
role (`AUTH_ROLE_CLAIM`, else `AUTH_DEFAULT_ROLE`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwe import JWERegistry
from joserfc.jwk import OctKey, thumbprint
from joserfc.jws import JWSRegistry

from lib import errors
from lib.config import ROLES, Settings
from lib.web.auth import Identity, session_cookie_names, short_hash
from lib.web.jwks import ASYMMETRIC, key_set

CLOCK_SKEW_S = 30  # issuers' and our clocks may disagree by this much (Auth.js itself allows 15 s)
HMAC = frozenset({"HS256", "HS384", "HS512"})
SESSION_ENCRYPTIONS = {"A256CBC-HS512": 64, "A256GCM": 32}  # content encryption -> key bytes
MAX_TOKEN_CHARS = 64_000
MAX_USER_ID_CHARS = 256
# What a namespace may hold (lib/web/fields.py); anything else in a templated claim is escaped.
_NAMESPACE_SAFE = re.compile(r"[A-Za-z0-9._:/-]")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def refuse(message: str, *, code: str = "invalid_token") -> errors.Unauthorized:
    return errors.Unauthorized(message, code=code,
                               headers={"www-authenticate": f'Bearer error="invalid_token", error_description="{code}"'})


async def verify_user_token(settings: Settings, token: str, *, via: str, cookie: str | None = None) -> Identity:
    """The identity a token proves, or a 401 saying why it proves none."""
    if len(token) > MAX_TOKEN_CHARS:
        raise refuse(f"token is over {MAX_TOKEN_CHARS} characters")
    if token.count(".") == 4:
        claims = read_session(settings, token, [cookie] if cookie else session_cookie_names(settings))
        issuer = "authjs"
    else:
        claims = await verify_jwt(settings, token)
        issuer = claims.get("iss") if isinstance(claims.get("iss"), str) else "jwt-secret"
    check_times(claims, time.time())
    return identity_from_claims(settings, claims, issuer, via)


# --- signed tokens (JWS) --------------------------------------------------------------------


def read_header(token: str) -> dict[str, Any]:
    try:
        segment = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        raise refuse("malformed token: its header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise refuse("malformed token: its header is not a JSON object")
    return header


async def verify_jwt(settings: Settings, token: str) -> dict[str, Any]:
    """The claims of a signed JWT whose signature, algorithm, issuer and audience check out."""
    header = read_header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise refuse("unsigned token refused (alg: none)")
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    if alg in HMAC:
        if not settings.auth_jwt_secret:
            raise refuse(f"{alg} (shared-secret) tokens are not accepted here: AUTH_JWT_SECRET is not set"
                         + ("; this deployment verifies public-key tokens from AUTH_JWKS_URL"
                            if settings.auth_jwks_url else ""))
        keys = [shared_secret_key(settings.auth_jwt_secret)]
    elif alg in ASYMMETRIC:
        if not settings.auth_jwks_url:
            raise refuse(f"{alg} tokens are not accepted here: AUTH_JWKS_URL is not set")
        cache = key_set(settings.auth_jwks_url)
        found = await cache.find(kid, alg)
        if not found:
            held = cache.holds(kid) if kid is not None else None
            if held is not None:
                raise refuse(f"algorithm {alg} does not fit signing key {kid!r}, an {held.kty} key"
                             + (f" for {held.alg}" if held.alg else ""))
            raise refuse(f"unknown signing key id {kid!r}: not in the key set at AUTH_JWKS_URL" if kid is not None
                         else f"token names no signing key (kid) and no key at AUTH_JWKS_URL signs {alg}")
        keys = [k.key for k in found]
    else:
        raise refuse(f"algorithm {alg!r} is not accepted")
    registry = JWSRegistry(algorithms=[alg], strict_check_header=False)  # providers add header fields
    for key in keys:
        try:
            payload = jws.deserialize_compact(token, key, registry=registry).payload
            break
        except BadSignatureError:
            continue
        except (JoseError, ValueError) as exc:
            raise refuse(f"malformed token: {exc.__class__.__name__}") from None
    else:
        raise refuse("bad signature")
    claims = _json_object(payload)
    check_issuer_and_audience(settings, claims)
    return claims


@lru_cache(maxsize=4)
def shared_secret_key(secret: str) -> OctKey:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns about secrets under 14 bytes; they still verify
        return OctKey.import_key(secret.encode())


def check_issuer_and_audience(settings: Settings, claims: Mapping[str, Any]) -> None:
    issuer = claims.get("iss")
    if settings.auth_issuer and (not isinstance(issuer, str)
                                 or issuer.rstrip("/") != settings.auth_issuer.rstrip("/")):
        raise refuse(f"wrong issuer: the token is from {issuer!r}, this deployment accepts "
                     f"{settings.auth_issuer!r} (AUTH_ISSUER)", code="invalid_issuer")
    if settings.auth_audience:
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if not set(audiences) & set(settings.auth_audience):
            raise refuse(f"wrong audience: the token is for {audience!r}, this deployment is "
                         f"{', '.join(settings.auth_audience)} (AUTH_AUDIENCE)", code="invalid_audience")


# --- Auth.js sessions (JWE) -----------------------------------------------------------------


@lru_cache(maxsize=64)
def session_key(secret: str, salt: str, encryption: str) -> tuple[OctKey, str]:
    """The key Auth.js derives from its secret for one cookie name, and its thumbprint (the kid)."""
    # only Auth.js sessions need HKDF; joserfc has already loaded cryptography itself
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    length = SESSION_ENCRYPTIONS[encryption]
    raw = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt.encode(),
               info=f"Auth.js Generated Encryption Key ({salt})".encode()).derive(secret.encode())
    key = OctKey.import_key(raw)
    digest = "sha512" if length == 64 else "sha256"  # @auth/core: `sha${bytes << 3}`
    return key, thumbprint({"kty": "oct", "k": key.as_dict()["k"]}, digest)


def read_session(settings: Settings, token: str, salts: list[str]) -> dict[str, Any]:
    """The claims of an Auth.js session token, decrypted with AUTH_SECRET (each secret, newest first)."""
    if not settings.auth_secret:
        raise refuse("encrypted (Auth.js session) tokens are not accepted here: AUTH_SECRET is not set")
    header = read_header(token)
    encryption = header.get("enc")
    if header.get("alg") != "dir" or encryption not in SESSION_ENCRYPTIONS:
        raise refuse(f"not an Auth.js session token: alg {header.get('alg')!r}, enc {encryption!r}; "
                     "expected dir with A256CBC-HS512")
    kid = header.get("kid")
    registry = JWERegistry(algorithms=["dir", encryption])
    for secret in settings.auth_secret:
        for salt in salts:
            key, key_id = session_key(secret, salt, encryption)
            if kid is not None and kid != key_id:
                continue
            try:
                plaintext = jwe.decrypt_compact(token, key, registry=registry).plaintext
            except (JoseError, ValueError):
                continue
            return _json_object(plaintext)
    raise refuse("session token does not decrypt with AUTH_SECRET (made with another secret, or altered)")


def _json_object(payload: bytes | None) -> dict[str, Any]:
    try:
        claims = json.loads(payload or b"")
    except ValueError:
        raise refuse("malformed token: its claims are not JSON") from None
    if not isinstance(claims, dict):
        raise refuse("malformed token: its claims are not a JSON object")
    return claims


# --- claims ---------------------------------------------------------------------------------


def check_times(claims: Mapping[str, Any], now: float) -> None:
    """exp (required), nbf and iat, each with CLOCK_SKEW_S of tolerance."""
    exp, nbf, iat = (claims.get(name) for name in ("exp", "nbf", "iat"))
    if not _is_number(exp):
        raise refuse("token has no expiry (exp); tokens that never expire are not accepted")
    if now > exp + CLOCK_SKEW_S:
        raise refuse(f"token expired at {_when(exp)} ({int(now - exp)} s ago; {CLOCK_SKEW_S} s of clock "
                     "skew allowed): get a fresh one", code="token_expired")
    if nbf is not None and (not _is_number(nbf) or now + CLOCK_SKEW_S < nbf):
        raise refuse(f"token is not valid yet: nbf is {_when(nbf)} ({CLOCK_SKEW_S} s of clock skew allowed)",
                     code="token_not_yet_valid")
    if iat is not None and (not _is_number(iat) or now + CLOCK_SKEW_S < iat):
        raise refuse(f"token was issued in the future: iat is {_when(iat)}", code="token_not_yet_valid")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _when(value: Any) -> str:
    try:
        return datetime.fromtimestamp(float(value), UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return repr(value)


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by its name, or by a dotted path into nested claims (`app_metadata.role`) when no
    claim has that name (Auth0's namespaced claims are URLs, dots and all)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def identity_from_claims(settings: Settings, claims: Mapping[str, Any], issuer: str, via: str) -> Identity:
    user = claim(claims, settings.auth_user_claim)
    if isinstance(user, int) and not isinstance(user, bool):
        user = str(user)
    if not isinstance(user, str) or not user.strip() or len(user) > MAX_USER_ID_CHARS or not user.isprintable():
        raise refuse(f"token has no usable user id in its {settings.auth_user_claim!r} claim (AUTH_USER_CLAIM)")
    return Identity("user", f"user:{short_hash(issuer)}/{user}", token_role(settings, claims),
                    token_namespaces(settings, claims, user), user_id=user, via=via)


def token_role(settings: Settings, claims: Mapping[str, Any]) -> str:
    """The highest of our roles the role claim names (a string or a list), else AUTH_DEFAULT_ROLE.
    Roles we do not know (Supabase's `authenticated`) are ignored, never raised to one we do."""
    if not settings.auth_role_claim:
        return settings.auth_default_role
    value = claim(claims, settings.auth_role_claim)
    named = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    known = [ROLES.index(r.lower()) for r in named if isinstance(r, str) and r.lower() in ROLES]
    return ROLES[max(known)] if known else settings.auth_default_role


def token_namespaces(settings: Settings, claims: Mapping[str, Any], user: str) -> frozenset[str] | None:
    """The namespaces the claim lists and the template gives; None (every namespace) when neither
    is configured."""
    if not settings.auth_namespaces_claim and not settings.auth_namespace_template:
        return None
    namespaces: set[str] = set()
    if settings.auth_namespaces_claim:
        value = claim(claims, settings.auth_namespaces_claim)
        if isinstance(value, str):
            value = re.split(r"[\s,]+", value)
        if isinstance(value, list):
            namespaces.update(v.strip() for v in value if isinstance(v, str) and v.strip())
    if settings.auth_namespace_template:
        templated = namespace_from_template(settings.auth_namespace_template, claims, user)
        if templated:
            namespaces.add(templated)
    return frozenset(namespaces)


def namespace_from_template(template: str, claims: Mapping[str, Any], user: str) -> str | None:
    """`user:{sub}` -> `user:user_2abc`. A claim's characters that a namespace cannot hold are
    written `@xx` (hex of each UTF-8 byte; `@` itself too), so two users never share one:
    Auth0's `auth0|42` gives `user:auth0@7c42`. None when a placeholder names no claim."""
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        value = user if name == "user" else claim(claims, name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            missing = True
            return ""
        return "".join(c if _NAMESPACE_SAFE.fullmatch(c) else "".join(f"@{b:02x}" for b in c.encode())
                       for c in value)

    namespace = _PLACEHOLDER.sub(fill, template)
    return None if missing else namespace
