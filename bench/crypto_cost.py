"""What trust costs on this machine, per operation and against the data rate.

Ed25519 signing and verification happen per ANNOUNCE (every 0.25–1 s) and per JOIN/ACCEPT;
SHA-256 checks every block against the signed manifest; AES-256-GCM (``--encrypt``) seals
every datagram, measured through ``protocol.seal.Sealer`` as the sessions call it. Printed as
a table with what each means at 1 Gbit/s.

    python -m bench.crypto_cost
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable

from protocol.seal import SEAL_OVERHEAD, Sealer
from protocol.trust import Signer, verify
from protocol.wire import DATA_HEADER_SIZE, DEFAULT_SYMBOL_SIZE

DATAGRAM = DATA_HEADER_SIZE + DEFAULT_SYMBOL_SIZE - SEAL_OVERHEAD  # sealed: fits the MTU
BLOCK = 1 << 20
GIGABIT_DATAGRAMS = 1e9 / 8 / (DATAGRAM + SEAL_OVERHEAD + 66)  # a second at 1 Gbit/s


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
    datagram = os.urandom(DATAGRAM)
    sealer = Sealer(os.urandom(32), random.SystemRandom())
    sealed = sealer.seal(datagram)
    rows = [
        ("Ed25519 sign (ANNOUNCE, ACCEPT)", per_call(lambda: signer.sign(message)), None),
        ("Ed25519 verify", per_call(lambda: verify(signer.public_key, message, signature)),
         None),
        ("SHA-256 of a 1 MiB block", per_call(lambda: hashlib.sha256(block).digest()),
         1e9 / 8 / BLOCK),
        (f"AES-256-GCM seal of a {DATAGRAM}-byte datagram (Sealer)",
         per_call(lambda: sealer.seal(datagram)), GIGABIT_DATAGRAMS),
        (f"AES-256-GCM open of a {DATAGRAM}-byte datagram (Sealer)",
         per_call(lambda: sealer.open_untrusted(sealed)), GIGABIT_DATAGRAMS),
    ]
    print("| operation | µs each | share of one core at 1 Gbit/s |")
    print("|---|---:|---:|")
    for name, seconds, per_second in rows:
        share = f"{seconds * per_second * 100:.1f} %" if per_second else "— (a few a second)"
        print(f"| {name} | {seconds * 1e6:.1f} | {share} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
