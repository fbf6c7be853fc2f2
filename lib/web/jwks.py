"""The identity provider's signing keys (`AUTH_JWKS_URL`), kept per process.

The key set is fetched on first use and kept for `MAX_AGE_S`. A token signed with a key id the set
does not hold makes one refetch (the issuer may have rotated its keys), but fetches are at least
`COOLDOWN_S` apart, so a flood of made-up key ids costs the issuer one request per cooldown, not one
per token. When a refetch fails the keys already held stay in use (a provider's outage does not
sign everybody out); with none held, the request is a 503. These are the `jose` library's defaults
(10 minutes, 30 s), which the Node side of most apps uses.

Fetches run in a thread, one at a time per key set, so a burst of requests after expiry waits for
one fetch rather than starting many.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lib import errors
from lib.logs import log, scrub

MAX_AGE_S = 600.0
COOLDOWN_S = 30.0
FETCH_TIMEOUT_S = 5.0
MAX_DOCUMENT_BYTES = 512_000

# Which algorithms each kind of key signs with: an algorithm is accepted only with a key of its
# kind, so an RSA public key can never be used as an HMAC secret (HS/RS confusion).
ALGORITHMS = {
    ("RSA", ""): frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
    ("EC", "P-521"): frozenset({"ES512"}),
    ("OKP", "Ed25519"): frozenset({"EdDSA", "Ed25519"}),
}
ASYMMETRIC = frozenset().union(*ALGORITHMS.values())


@dataclass(frozen=True)
class SigningKey:
    """One verification key of the set, with what its JWK says it is for."""

    kid: str | None
    kty: str
    crv: str
    alg: str | None  # the JWK's own `alg`, when it pins one
    key: Any  # a joserfc key

    def signs_with(self, alg: str) -> bool:
        return alg in ALGORITHMS.get((self.kty, self.crv), ()) and self.alg in (None, alg)


def fetch_document(url: str) -> Any:
    """GET the key set (JSON, at most MAX_DOCUMENT_BYTES)."""
    from urllib.request import Request, urlopen  # http.client and ssl: ~15 ms, once per key set fetch

    request = Request(url, headers={"accept": "application/json", "user-agent": "ai-bundle-jwks"})
    with urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 - an operator's https URL
        body = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"key set is over {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


def read_key_set(document: Any) -> list[SigningKey]:
    """The signature keys of a JWKS document; keys for encryption or of unknown kinds are skipped."""
    from joserfc.jwk import import_key

    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWKS document: no "keys" list')
    keys = []
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        kty, crv = jwk.get("kty"), jwk.get("crv", "")
        if (kty, crv) not in ALGORITHMS:
            continue
        try:
            imported = import_key({k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")})
        except Exception as exc:  # noqa: BLE001 - one bad key must not hide the others
            log("warning", "jwks_key_skipped", kid=str(jwk.get("kid")), detail=scrub(repr(exc)))
            continue
        kid = jwk.get("kid")
        keys.append(SigningKey(kid if isinstance(kid, str) else None, kty, crv,
                               jwk.get("alg") if isinstance(jwk.get("alg"), str) else None, imported))
    return keys


class KeySetCache:
    """One issuer's keys: `find(kid, alg)` answers from memory, fetching when it must."""

    def __init__(self, url: str, fetch: Callable[[str], Any] = fetch_document,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.fetch = fetch
        self.clock = clock
        self.keys: list[SigningKey] | None = None
        self.fetched_at = -float("inf")
        self.attempted_at = -float("inf")
        self.fetches = 0
        self._lock = threading.Lock()

    async def find(self, kid: str | None, alg: str) -> list[SigningKey]:
        """The keys that may have signed a token with this `kid` and `alg` (several only when the
        token names no kid). Empty when the set has none, even after the refetch it may make."""
        now = self.clock()
        if self.keys is None or now - self.fetched_at > MAX_AGE_S:
            if now - self.attempted_at >= COOLDOWN_S:
                await asyncio.to_thread(self._refresh, now)
            if self.keys is None:
                raise errors.ServiceUnavailable(
                    "could not fetch the identity provider's signing keys (AUTH_JWKS_URL); try again shortly",
                    code="jwks_unavailable")
        found = self._matching(kid, alg)
        if not found and kid is not None and self.clock() - self.attempted_at >= COOLDOWN_S:
            await asyncio.to_thread(self._refresh, self.clock())  # a rotation we have not seen yet
            found = self._matching(kid, alg)
        return found

    def holds(self, kid: str | None) -> SigningKey | None:
        return next((k for k in self.keys or [] if k.kid == kid), None)

    def _matching(self, kid: str | None, alg: str) -> list[SigningKey]:
        return [k for k in self.keys or [] if (kid is None or k.kid == kid) and k.signs_with(alg)]

    def _refresh(self, decided_at: float) -> None:
        with self._lock:
            if self.attempted_at >= decided_at:
                return  # another request fetched while this one waited
            self.attempted_at = self.clock()
            self.fetches += 1
            try:
                keys = read_key_set(self.fetch(self.url))
            except Exception as exc:  # noqa: BLE001 - the keys held stay in use; logged, not raised
                log("warning", "jwks_fetch_failed", url=self.url, detail=scrub(repr(exc)),
                    keeping=len(self.keys or []))
                return
            self.keys, self.fetched_at = keys, self.attempted_at


_caches: dict[str, KeySetCache] = {}


def key_set(url: str) -> KeySetCache:
    """The process's cache of the key set at `url`."""
    cache = _caches.get(url)
    if cache is None:
        cache = _caches[url] = KeySetCache(url)
    return cache


def forget_key_sets() -> None:
    """Drop every cached key set (tests)."""
    _caches.clear()
