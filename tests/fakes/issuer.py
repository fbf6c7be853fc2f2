"""A fake identity provider: key pairs made in the test, a JWKS served over real HTTP on loopback,
and tokens minted per case.

Tokens are signed with `cryptography` alone, never with the JOSE library the bundle verifies
with, so a bug in how we use that library cannot cancel out in the tests. Minting takes any
header and claims, so the attacks are easy to write: `alg: none`, HS256 keyed with the RSA
public key, a `kid` the key set does not hold.

    issuer = FakeIssuer().start()
    token = issuer.mint(sub="alice", exp=time.time() - 600)       # expired
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.fakes.loopback import LoopbackServer

ISSUER = "https://issuer.example.test"
AUDIENCE = "bundle-api"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: int, length: int | None = None) -> str:
    return b64url(value.to_bytes(length or (value.bit_length() + 7) // 8, "big"))


class FakeIssuer(LoopbackServer):
    """RSA (`rsa-1`) and EC P-256 (`ec-1`) keys; `rotate()` adds `rsa-2`. `fetches` counts JWKS GETs."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {
            "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec-1": ec.generate_private_key(ec.SECP256R1()),
        }
        self.published = ["rsa-1", "ec-1"]
        self.fetches = 0
        self.fail = False  # answer the JWKS with a 503

    # --- the JWKS endpoint ------------------------------------------------------------------

    def start(self) -> FakeIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                issuer.fetches += 1
                if issuer.fail:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.serve(Handler)
        return self

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk(kid) for kid in self.published]}

    def public_jwk(self, kid: str) -> dict[str, Any]:
        public = self.keys[kid].public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": _int(numbers.n), "e": _int(numbers.e)}
        numbers = public.public_numbers()
        return {"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256", "x": _int(numbers.x, 32), "y": _int(numbers.y, 32)}

    def public_pem(self, kid: str = "rsa-1") -> bytes:
        return self.keys[kid].public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)

    def rotate(self) -> None:
        """A new RSA key, `rsa-2`, published next to the old ones (as issuers pre-publish)."""
        self.keys["rsa-2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published = ["rsa-2", *self.published]

    # --- tokens -----------------------------------------------------------------------------

    def claims(self, **claims: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user_alice", "iat": now, "exp": now + 300}
        base.update(claims)
        return {k: v for k, v in base.items() if v is not None}

    def mint(self, *, kid: str | None = "rsa-1", alg: str | None = None, secret: bytes | None = None,
             header: dict[str, Any] | None = None, **claims: Any) -> str:
        """A compact JWS. `alg` defaults to the key's (RS256 / ES256); with `secret`, HMAC-signed
        with it; `alg="none"` gives an unsigned token. `claims` override the defaults (None drops one)."""
        alg = alg or ("HS256" if secret is not None else "ES256" if kid and kid.startswith("ec") else "RS256")
        head = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {}), **(header or {})}
        signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(self.claims(**claims)).encode())}"
        return f"{signing_input}.{b64url(self.sign(signing_input.encode(), alg, kid, secret))}"

    def sign(self, data: bytes, alg: str, kid: str | None, secret: bytes | None) -> bytes:
        if alg.lower() == "none":
            return b""
        if alg.startswith("HS"):
            return hmac.new(secret or b"", data, getattr(hashlib, f"sha{alg[2:]}")).digest()
        key = self.keys[kid or "rsa-1"]
        if alg == "RS256":
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if alg == "ES256":
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        raise ValueError(f"the fake issuer does not sign {alg}")
