"""Sign and verify cost of access tokens per JWS algorithm (EdDSA, ES256, RS256).

Run: ``.venv/bin/python benchmarks/jose_algorithms.py [--rounds 7] [--seconds 0.2]``

Uses ``oauth_sessions.jose`` (keys, JWS codec, access tokens) exactly as the provider does (a
KeySet built once, a realistic RFC 9068 payload) and prints the median of several rounds, as
µs/op, ops/s and a ratio against ES256 measured in the same run. The verify path is split into the signature
check alone (joserfc's algorithm model on an already parsed key) and the rest (syntax, base64,
JSON, header and claim checks). For reference, the last column is the generic path through
``joserfc.jwt.decode`` plus claim validation on the same token and key.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import cryptography
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import import_key

from oauth_sessions.jose import jws, keys
from oauth_sessions.jose.access_tokens import (
    build_access_token_claims,
    sign_access_token,
    verify_access_token,
)
from oauth_sessions.jose.keys import KeySet, rotate

ALGS = ("EdDSA", "ES256", "RS256")
BASELINE = "ES256"
ISSUER = "https://auth.example.com"
AUDIENCE = "https://api.example.com"


def median_us(fn: Callable[[], object], rounds: int, seconds: float) -> float:
    """Median over ``rounds`` of the mean µs per call, each round about ``seconds`` long."""
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < seconds / 4:
        fn()
        calls += 1
    per_round = max(10, int(calls * 4))
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            fn()
        samples.append((time.perf_counter() - t0) / per_round * 1e6)
    return statistics.median(samples)


def measure(alg: str, rounds: int, seconds: float) -> dict[str, float]:
    now = datetime.now(UTC)
    keyset = KeySet(rotate([], alg, now), publish_grace=timedelta(hours=1))
    claims = build_access_token_claims(
        issuer=ISSUER,
        subject="3f1c9a52-7b0e-4a8e-9f0d-2c7d5e6b8a41",
        audience=AUDIENCE,
        client_id="9b2d7c1e-5f3a-4e8b-a6c0-1d4e7f9a2b35",
        scope="openid profile email offline_access payments:read",
        session_id="c5e8a1b4-2d6f-4a9c-8e3b-7f0d1a5c9e62",
        aal="aal2",
        amr=["pwd", "totp"],
        auth_time=int(now.timestamp()) - 120,
        lifetime=3600,
    )
    token = sign_access_token(keyset, claims)
    loaded = keyset.signing_key(None)
    header_b64, payload_b64, sig_b64 = token.split(".")
    signing_input = f"{header_b64}.{payload_b64}".encode()
    signature = jws._b64decode(sig_b64)
    assert loaded.algorithm.verify(signing_input, signature, loaded.public)

    generic_key = import_key(dict(loaded.public_jwk))
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": AUDIENCE}
    )

    def generic() -> None:
        with warnings.catch_warnings():  # joserfc warns that "EdDSA" is deprecated (RFC 9864)
            warnings.simplefilter("ignore", SecurityWarning)
            decoded = jwt.decode(token, generic_key, algorithms=[alg])
        registry.validate(decoded.claims)

    results = {
        "sign": median_us(lambda: sign_access_token(keyset, claims), rounds, seconds),
        "verify": median_us(
            lambda: verify_access_token(keyset, token, issuer=ISSUER, audience=AUDIENCE),
            rounds,
            seconds,
        ),
        "signature": median_us(
            lambda: loaded.algorithm.verify(signing_input, signature, loaded.public),
            rounds,
            seconds,
        ),
        "generic": median_us(generic, rounds, seconds),
        "length": float(len(token)),
    }
    results["parse"] = results["verify"] - results["signature"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.2, help="length of one round")
    args = parser.parse_args()

    print(
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"{platform.machine()}; median of {args.rounds} rounds; ratios vs {BASELINE} "
        f"(<1 is faster)"
    )
    figures = {alg: measure(alg, args.rounds, args.seconds) for alg in ALGS}
    base = figures[BASELINE]
    print(
        f"{'alg':6} {'len':>4} {'sign µs':>8} {'sign/s':>8} {'x':>6} "
        f"{'verify µs':>9} {'verify/s':>8} {'x':>6} {'sig µs':>7} {'rest µs':>7} "
        f"{'joserfc µs':>10}"
    )
    for alg, f in figures.items():
        print(
            f"{alg:6} {f['length']:4.0f} {f['sign']:8.1f} {1e6 / f['sign']:8.0f} "
            f"{f['sign'] / base['sign']:5.2f}x "
            f"{f['verify']:9.1f} {1e6 / f['verify']:8.0f} {f['verify'] / base['verify']:5.2f}x "
            f"{f['signature']:7.1f} {f['parse']:7.1f} {f['generic']:10.1f}"
        )
    winner = min(figures, key=lambda a: figures[a]["verify"])
    extra_sign = figures[winner]["sign"] - base["sign"]
    saved = base["verify"] - figures[winner]["verify"]
    print(f"fastest verify: {winner} (DEFAULT_ALG is {keys.DEFAULT_ALG})")
    if winner != BASELINE and extra_sign > 0 and saved > 0:
        print(
            f"{winner} costs {extra_sign:.0f} µs more to sign than {BASELINE} and saves "
            f"{saved:.0f} µs per verify: it pays off from {extra_sign / saved:.1f} verifications "
            f"per token"
        )


if __name__ == "__main__":
    main()
