"""Who may call, verified on every request, and what they may do.

Three kinds of caller, the same roles (`reader` < `writer` < `admin`) and namespace lists for each:

- servers presenting an `API_KEYS` key as `Authorization: Bearer <key>`; they may name the end
  `user` in the body;
- end users presenting a token: a JWT from the app's identity provider (`Authorization: Bearer`,
  or the cookie named in `AUTH_COOKIE`), or the Auth.js session cookie. Their user id is the
  token's subject, never the body's (`lib/web/user_tokens.py`, imported only when a token comes);
- with `ANONYMOUS_ROLE`, anyone else, counted per client address.

A bearer value equal to a key is that key; otherwise one shaped like a JWT is a user token. A
cookie rides along with every request the browser makes, so a cookie-authenticated request that
changes state must come from this site or an `ALLOWED_ORIGINS` origin. With nothing configured a
function serves anyone locally and refuses to serve in production. The reindex cron presents
`CRON_SECRET`. Secrets are compared in constant time (`matching_secret`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from lib import errors
from lib.config import ROLES, ApiKey, Settings

if TYPE_CHECKING:
    from lib.web import Request

# Auth.js's session cookie, on https (`__Secure-`) and on http://localhost.
AUTHJS_COOKIES = ("__Secure-authjs.session-token", "authjs.session-token")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Identity(NamedTuple):
    """Who is calling, as verified at the edge. (A NamedTuple, not a dataclass: building a
    dataclass costs a cold start about a millisecond, and this module is on every one.)"""

    kind: str  # "key" | "user" | "anonymous" | "open" (nothing configured, local) | "public" (auth off)
    caller: str  # stable and not secret: key:<hash>, user:<issuer hash>/<user id>, anon:<address hash>
    role: str  # one of ROLES; "" for a public function's caller, who has none
    namespaces: frozenset[str] | None = None  # None: every namespace
    user_id: str | None = None  # a token's subject
    api_key: ApiKey | None = None
    via: str = ""  # "authorization" | "cookie"
    named_role: bool = True  # False for a key from before roles (it may not run the cron)

    def may(self, role: str) -> bool:
        return bool(self.role) and ROLES.index(self.role) >= ROLES.index(role)

    def allows(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    @property
    def described(self) -> str:
        """How messages name this caller: "this API key (role 'reader')"."""
        who = {"key": "this API key", "user": "this user's token", "anonymous": "an anonymous caller"}
        return f"{who.get(self.kind, 'this caller')} (role {self.role or 'none'!r})"


# Nothing configured (local): every caller may do everything, as before auth existed.
OPEN = Identity("open", "anonymous", "admin")
# A function with auth off (health): nobody was asked who they are.
PUBLIC = Identity("public", "anonymous", "")


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of `Authorization: Bearer <token>` (headers named in lower case), or None when
    the header is missing, empty or another scheme."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def matching_secret(token: str | None, secrets: Sequence[str]) -> int | None:
    """The index of the secret equal to `token`, or None. Every secret is compared, in constant
    time, so the timing says nothing about which one matched or how much of it."""
    import hmac  # not at the top: it costs a cold start that never checks a secret (health)

    if token is None:
        return None
    sent = token.encode()
    match = None
    for index, secret in enumerate(secrets):
        if hmac.compare_digest(secret.encode(), sent):
            match = index
    return match


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts (a signed JWT, its signature empty when unsigned) or five (an
    encrypted one, such as Auth.js's)."""
    return token.count(".") in (2, 4) and bool(token.split(".", 1)[0])


def short_hash(text: str, length: int = 12) -> str:
    import hashlib  # not at the top, like hmac: a function that never checks a caller skips it

    return hashlib.sha256(text.encode()).hexdigest()[:length]


def key_identity(key: ApiKey) -> Identity:
    caller = "key:" + short_hash(key.key)
    return Identity("key", caller, key.effective_role, key.namespaces, api_key=key, via="authorization",
                    named_role=key.role is not None)


def anonymous_identity(settings: Settings, client_address: str) -> Identity:
    # the address is hashed: the ledger and the rate-limit table need a name, not the address
    caller = "anon:" + short_hash(client_address, 16)
    return Identity("anonymous", caller, settings.anonymous_role, frozenset(settings.anonymous_namespaces))


async def authenticate(settings: Settings, headers: Mapping[str, str], method: str,
                       client_address: str) -> Identity:
    """The verified caller of one request; 401 when it cannot be verified, 403 for a cookie sent
    from a foreign page, 503 when the deployment cannot verify anyone."""
    if not (settings.api_keys or settings.identity_methods or settings.anonymous_role):
        if settings.is_production:
            raise errors.ConfigurationError(
                "API_KEYS is not set and no end-user identity (AUTH_JWKS_URL, AUTH_JWT_SECRET or "
                "AUTH_SECRET) is configured on a production deployment; refusing to serve "
                "unauthenticated requests")
        return OPEN
    check_identity_settings(settings)
    token = bearer_token(headers)
    if token is not None:
        index = matching_secret(token, [key.key for key in settings.api_keys])
        if index is not None:
            return key_identity(settings.api_keys[index])
        if settings.identity_methods and looks_like_jwt(token):
            from lib.web.user_tokens import verify_user_token

            return await verify_user_token(settings, token, via="authorization")
        raise errors.Unauthorized("invalid API key" if settings.api_keys else "invalid token: not a JWT",
                                  headers={"www-authenticate": "Bearer"})
    session = session_cookie(settings, headers)
    if session is not None:
        check_cookie_origin(settings, headers, method)
        from lib.web.user_tokens import verify_user_token

        name, value = session
        return await verify_user_token(settings, value, via="cookie", cookie=name)
    if settings.anonymous_role:
        return anonymous_identity(settings, client_address)
    raise errors.Unauthorized(_missing_credentials(settings), headers={"www-authenticate": "Bearer"})


def check_identity_settings(settings: Settings) -> None:
    """Settings that cannot work together: a 503 naming them, on every request, until fixed."""
    if settings.is_production and not (settings.api_keys or settings.identity_methods):
        raise errors.ConfigurationError(
            "ANONYMOUS_ROLE alone on a production deployment leaves nobody able to manage it; set "
            "API_KEYS or an end-user identity (AUTH_JWKS_URL, AUTH_JWT_SECRET or AUTH_SECRET)")
    if settings.auth_jwks_url and not settings.auth_issuer:
        # a key set may sign for many tenants (Firebase's signs for every project): the issuer says whose
        raise errors.ConfigurationError("AUTH_JWKS_URL is set without AUTH_ISSUER; set it to the "
                                        "issuer's URL exactly as its tokens carry it in `iss`")
    if settings.is_production and settings.auth_jwks_url.startswith("http://"):
        raise errors.ConfigurationError("AUTH_JWKS_URL must be an https:// URL in production: whoever can "
                                        "change the keys in transit can sign in as anyone")
    if settings.auth_cookie and not settings.identity_methods:
        raise errors.ConfigurationError("AUTH_COOKIE is set but nothing can verify it: set AUTH_JWKS_URL, "
                                        "AUTH_JWT_SECRET or AUTH_SECRET")


def _missing_credentials(settings: Settings) -> str:
    if not settings.identity_methods:
        return "missing API key: send Authorization: Bearer <key>"
    ways = ["Authorization: Bearer <the user's token>"] + (["an API key"] if settings.api_keys else [])
    cookies = session_cookie_names(settings)
    if cookies:
        ways.append(f"the session cookie ({', '.join(cookies)})")
    return "missing credentials: send " + ", or ".join(ways)


# --- cookies --------------------------------------------------------------------------------


def session_cookie_names(settings: Settings) -> list[str]:
    names = [settings.auth_cookie] if settings.auth_cookie else []
    return names + [name for name in AUTHJS_COOKIES if settings.auth_secret and name not in names]


def read_cookies(header: str) -> dict[str, str]:
    """`a=1; b="2"` -> {"a": "1", "b": "2"}; the first of two cookies with one name wins (the
    browser sends the most specific path first). Lenient where http.cookies gives up entirely."""
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in cookies:
            value = value.strip()
            cookies[name] = value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value
    return cookies


def session_cookie(settings: Settings, headers: Mapping[str, str]) -> tuple[str, str] | None:
    """(cookie name, token) of the first session cookie present, its `.0`, `.1`, ... chunks joined
    (Auth.js splits a session over 4 KB into numbered cookies)."""
    names = session_cookie_names(settings)
    if not names or not headers.get("cookie"):
        return None
    cookies = read_cookies(headers["cookie"])
    for name in names:
        value = cookies.get(name)
        if not value and f"{name}.0" in cookies:
            chunks = []
            while f"{name}.{len(chunks)}" in cookies:
                chunks.append(cookies[f"{name}.{len(chunks)}"])
            value = "".join(chunks)
        if value:
            return name, value
    return None


def request_host(settings: Settings, headers: Mapping[str, str]) -> str:
    """The host the browser addressed: Vercel's proxy passes it on in x-forwarded-host."""
    forwarded = headers.get("x-forwarded-host", "").split(",")[0].strip() if settings.on_vercel else ""
    return (forwarded or headers.get("host", "")).lower()


def same_site(settings: Settings, headers: Mapping[str, str], origin: str) -> bool:
    """Whether `origin` is this deployment itself (the page and the function share a host)."""
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:
        return False
    return bool(netloc) and netloc == request_host(settings, headers)


def check_cookie_origin(settings: Settings, headers: Mapping[str, str], method: str) -> None:
    """Refuse (403) a cookie-authenticated request that changes state unless it comes from this
    site or an origin listed in ALLOWED_ORIGINS (`*` does not count: it would let any page ride
    the cookie). Browsers always send Origin on such requests, so a missing one is refused too."""
    if method.upper() not in STATE_CHANGING:
        return
    origin = headers.get("origin", "")
    if not origin or origin == "null":
        raise errors.Forbidden(
            f"a {method} authenticated by a session cookie must carry the Origin header of a page of this "
            "site or of ALLOWED_ORIGINS; servers should send Authorization: Bearer instead",
            code="origin_required")
    if origin not in settings.allowed_origins and not same_site(settings, headers, origin):
        raise errors.Forbidden(
            f"origin {origin!r} may not use the session cookie: it is neither this site nor in "
            "ALLOWED_ORIGINS", code="origin_not_allowed")


def client_address(settings: Settings, headers: Mapping[str, str], peer: str) -> str:
    """The client's IP address: on Vercel the one its proxy forwards (it overwrites whatever the
    client sent), elsewhere the socket's peer (a forwarded header there could be forged)."""
    if settings.on_vercel:
        forwarded = headers.get("x-forwarded-for", "").split(",")[0].strip() or headers.get("x-real-ip", "").strip()
        if forwarded:
            return forwarded
    return peer


def auth_report(settings: Settings) -> dict[str, Any]:
    """For /api/health: which ways of calling are configured, for the developer wiring a frontend.
    Names, the issuer and cookie names (which the browser sees anyway); never a key or secret."""
    methods = settings.identity_methods
    if settings.api_keys or methods:
        summary = "+".join((["api_keys"] if settings.api_keys else []) + list(methods))
    elif settings.is_production:
        summary = "missing: neither API_KEYS nor an end-user identity is set, so every other function refuses to serve"
    else:
        summary = "anonymous only" if settings.anonymous_role else "open (local: no API_KEYS)"
    anonymous = {"role": settings.anonymous_role, "namespaces": list(settings.anonymous_namespaces),
                 "rate_limit_rpm": settings.anonymous_rate_limit_rpm}
    return {"auth": summary, "identity": {
        "api_keys": len(settings.api_keys),
        "end_user_tokens": list(methods),
        "issuer": settings.auth_issuer or None,
        "audience": list(settings.auth_audience),
        "session_cookies": session_cookie_names(settings),
        "user_claim": settings.auth_user_claim,
        "default_role": settings.auth_default_role,
        "anonymous": anonymous if settings.anonymous_role else None,
    }}


# --- API keys and the cron ------------------------------------------------------------------


def authenticate_api_key(settings: Settings, headers: Mapping[str, str]) -> ApiKey | None:
    """The caller's key; None when no keys are configured (outside production). 401 otherwise."""
    if not settings.api_keys:
        if settings.is_production:
            raise errors.ConfigurationError(
                "API_KEYS is not set on a production deployment; refusing to serve unauthenticated requests")
        return None
    token = bearer_token(headers)
    if token is None:
        raise errors.Unauthorized("missing API key: send Authorization: Bearer <key>", headers={"www-authenticate": "Bearer"})
    index = matching_secret(token, [key.key for key in settings.api_keys])
    if index is None:
        raise errors.Unauthorized("invalid API key", headers={"www-authenticate": "Bearer"})
    return settings.api_keys[index]


def check_cron_secret(request: Request) -> None:
    """Let the reindex cron through when it presents CRON_SECRET; 401 otherwise."""
    secret = request.settings.cron_secret
    if not secret:
        if request.settings.is_production:
            raise errors.ConfigurationError(
                "CRON_SECRET is not set on a production deployment; refusing to run the reindex cron")
        return
    if matching_secret(bearer_token(request.headers), [secret]) is None:
        raise errors.Unauthorized("missing or wrong cron secret: send Authorization: Bearer <CRON_SECRET>",
                                  headers={"www-authenticate": "Bearer"})


def is_admin(request: Request) -> bool:
    """An administrator: a caller whose role is admin (a key that says so, a key from before roles
    with no namespace list, a token whose role claim says so, anyone on a local deployment with
    nothing configured)."""
    return request.identity.may("admin")


def require_admin(request: Request) -> None:
    """Refuse (403 `admin_required`) a caller who is not an administrator."""
    request.require_role("admin")


async def check_cron_or_admin(request: Request) -> None:
    """Let through the cron with CRON_SECRET, or an administrator running it by hand: a key or
    token whose role is admin by name (a key from before roles keeps what it had: not the cron)."""
    settings = request.settings
    if settings.cron_secret and matching_secret(bearer_token(request.headers), [settings.cron_secret]) is not None:
        return
    if settings.api_keys or settings.identity_methods:
        try:
            identity = await authenticate(settings, request.headers, request.method, request.client_ip)
        except errors.ApiError:
            identity = PUBLIC
        if identity.kind in ("key", "user") and identity.role == "admin" and identity.named_role:
            request.identity = identity
            return
    check_cron_secret(request)
