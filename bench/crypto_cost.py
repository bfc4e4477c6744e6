"""What trust costs on this machine, per operation and against the data rate.

Ed25519 signing and verification happen per ANNOUNCE (every 0.25–1 s) and per JOIN/ACCEPT;
SHA-256 will check every block against the signed manifest; AES-GCM (``--encrypt``, to come)
would seal every symbol. Printed as a table with what each means at 1 Gbit/s.

    python -m bench.crypto_cost
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.trust import Signer, verify

SYMBOL = 1440
BLOCK = 1 << 20
GIGABIT_SYMBOLS = 1e9 / 8 / (SYMBOL + 74)  # datagrams a second at 1 Gbit/s


def per_call(fn: Callable[[], object], seconds: float = 0.5) -> float:
    """Seconds per call, from as many calls as fit in ``seconds``."""
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            fn()
        n += 50
    return elapsed / n


def main() -> int:
    signer = Signer.from_raw(os.urandom(32))
    message = os.urandom(300)
    signature = signer.sign(message)
    block = os.urandom(BLOCK)
    symbol = os.urandom(SYMBOL)
    aes = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    sealed = aes.encrypt(nonce, symbol, b"header")
    rows = [
        ("Ed25519 sign (ANNOUNCE, ACCEPT)", per_call(lambda: signer.sign(message)), None),
        ("Ed25519 verify", per_call(lambda: verify(signer.public_key, message, signature)),
         None),
        ("SHA-256 of a 1 MiB block", per_call(lambda: hashlib.sha256(block).digest()),
         1e9 / 8 / BLOCK),
        ("AES-GCM seal of a 1440-byte symbol", per_call(lambda: aes.encrypt(nonce, symbol,
                                                                            b"header")),
         GIGABIT_SYMBOLS),
        ("AES-GCM open of a 1440-byte symbol", per_call(lambda: aes.decrypt(nonce, sealed,
                                                                            b"header")),
         GIGABIT_SYMBOLS),
    ]
    print("| operation | µs each | share of one core at 1 Gbit/s |")
    print("|---|---:|---:|")
    for name, seconds, per_second in rows:
        share = f"{seconds * per_second * 100:.1f} %" if per_second else "— (a few a second)"
        print(f"| {name} | {seconds * 1e6:.1f} | {share} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
