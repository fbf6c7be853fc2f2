"""Identity: what verifying an end user's token costs per request, once the issuer's keys are cached,
and what the first token costs a fresh process (importing joserfc and cryptography).

Each verification is the whole of `verify_user_token`: header, key lookup in the cached JWKS,
signature, times, issuer and audience, claims to an identity. The key set is served from memory,
as it is after a function instance's first token; its fetch is a network round trip to the issuer
that a benchmark cannot speak for.

    .venv/bin/python bench/auth_verify.py [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envs import PROJECT_ROOT  # noqa: E402
from measure import arguments, emit, run_process, summary, table  # noqa: E402

sys.path.insert(0, str(PROJECT_ROOT))

TARGET_P50_S = 0.001
ISSUER = "https://issuer.bench"
JWKS_URL = "https://issuer.bench/.well-known/jwks.json"

# A fresh process that has loaded a function's edge (lib.web), as an instance has when its first
# token arrives: import the verifier, then verify one HS256 token (no key set to fetch).
FIRST_TOKEN_CHILD = """\
import asyncio, json, os, sys, time
from lib.config import Settings
import lib.web
_started = time.perf_counter()
from lib.web.user_tokens import verify_user_token
_imported = time.perf_counter()
asyncio.run(verify_user_token(Settings(auth_jwt_secret=os.environ["SECRET"]), os.environ["TOKEN"], via="authorization"))
_verified = time.perf_counter()
sys.stdout.write(json.dumps({"import_s": _imported - _started, "verify_s": _verified - _imported}))
"""


def tokens() -> tuple[dict[str, str], dict[str, object]]:
    """One token per kind (RS256, ES256 from the cached key set; HS256; an Auth.js session) and the
    JWKS document that verifies the first two."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from joserfc import jwe, jwt
    from joserfc.jwk import ECKey, OctKey, RSAKey

    from lib.web.user_tokens import session_key

    rsa_key = RSAKey.import_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ec_key = ECKey.import_key(ec.generate_private_key(ec.SECP256R1()))
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "bench", "sub": "user_bench", "iat": now, "exp": now + 3600}
    document = {"keys": [rsa_key.as_dict(private=False, kid="rsa", use="sig", alg="RS256"),
                         ec_key.as_dict(private=False, kid="ec", use="sig")]}
    secret = "bench-shared-secret-0123456789abcdef0123456789"
    session, _ = session_key(secret, "authjs.session-token", "A256CBC-HS512")
    return {
        "RS256 (JWKS, cached)": jwt.encode({"alg": "RS256", "kid": "rsa"}, claims, rsa_key),
        "ES256 (JWKS, cached)": jwt.encode({"alg": "ES256", "kid": "ec"}, claims, ec_key),
        "HS256 (AUTH_JWT_SECRET)": jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(secret)),
        "Auth.js session (AUTH_SECRET)": jwe.encrypt_compact({"alg": "dir", "enc": "A256CBC-HS512"},
                                                             jwt.convert_claims(claims), session,
                                                             algorithms=["dir", "A256CBC-HS512"]),
    }, {"document": document, "secret": secret}


async def time_verifications(token: str, settings: object, runs: int) -> list[float]:
    from lib.web.user_tokens import verify_user_token

    await verify_user_token(settings, token, via="authorization")  # warm: the key set is fetched once
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await verify_user_token(settings, token, via="authorization")
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    args = parser.parse_args()
    runs, fresh = (300, 3) if args.quick else (3000, 10)

    from lib.config import Settings
    from lib.web.jwks import KeySetCache, _caches

    minted, material = tokens()
    _caches[JWKS_URL] = KeySetCache(JWKS_URL, fetch=lambda _url: material["document"])
    settings = Settings(auth_jwks_url=JWKS_URL, auth_issuer=ISSUER, auth_audience=("bench",),
                        auth_jwt_secret=material["secret"], auth_secret=(material["secret"],))
    figures: dict[str, object] = {"runs": runs, "kinds": {}}
    rows = []
    for label, token in minted.items():
        stats = summary(asyncio.run(time_verifications(token, settings, runs)))
        figures["kinds"][label] = stats
        rows.append([label, f"{stats['p50'] * 1e6:.0f}", f"{stats['p95'] * 1e6:.0f}", stats["n"]])

    import json
    import os

    child_env = {**os.environ, "SECRET": material["secret"], "TOKEN": minted["HS256 (AUTH_JWT_SECRET)"]}
    python = str(PROJECT_ROOT / ".venv" / "bin" / "python")
    first = [json.loads(run_process([python, "-c", FIRST_TOKEN_CHILD], cwd=PROJECT_ROOT, env=child_env).stdout)
             for _ in range(fresh + 1)][1:]  # the first run writes bytecode
    imports, verifies = summary([r["import_s"] for r in first]), summary([r["verify_s"] for r in first])
    figures["first_token"] = {"import_s": imports, "verify_s": verifies}
    rs256 = figures["kinds"]["RS256 (JWKS, cached)"]
    figures["target_met"] = rs256["p50"] < TARGET_P50_S
    markdown = "\n".join([
        "## Identity",
        "",
        f"Verifying an end user's token, the whole of `verify_user_token` (signature, times, issuer, "
        f"audience, claims to an identity), {runs} times in one process after one warm-up, the issuer's "
        "key set already cached (as after an instance's first token). Microseconds.",
        "",
        table(["token", "p50 µs", "p95 µs", "n"], rows),
        "",
        f"RS256 with a cached JWKS: p50 {rs256['p50'] * 1e3:.3f} ms, p95 {rs256['p95'] * 1e3:.3f} ms "
        f"(target under 1 ms p50: {'met' if figures['target_met'] else 'NOT met'}). The first token of a fresh "
        f"process also imports the verifier (joserfc, cryptography): {imports['p50'] * 1e3:.1f} ms p50 over "
        f"{fresh} processes, then {verifies['p50'] * 1e3:.2f} ms to verify; a request without a token never "
        "imports it (see Cold start).",
    ])
    emit(args, "auth_verify", figures, markdown)


if __name__ == "__main__":
    main()
