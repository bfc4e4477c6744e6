"""Coverage-guided fuzzing (atheris, libFuzzer) of every path that takes bytes from the network,
next to the Hypothesis properties in ``test_decoders.py``: libFuzzer mutates towards new
branches, so it reaches corners random mutation of valid datagrams does not.

    python -m tests.fuzz.atheris_network -atheris_runs=100000   (make fuzz-atheris)

Any exception but BadPacket out of a decoder, or any exception at all out of a session, is a
crash: libFuzzer stops and writes the input to ``crash-*``. Seeded with valid datagrams of every
kind, signed and sealed ones included.
"""

from __future__ import annotations

import contextlib
import random
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from protocol.config import ReceiverConfig
    from protocol.errors import BadPacket
    from protocol.receiver import ReceiverSession
    from protocol.seal import Sealer
    from protocol.wire import decode_control_untrusted, decode_data_untrusted

from tests.fuzz.test_decoders import KEY, PLAIN, SEALED, SEALER, sender

SESSIONS_EVERY = 2000  # fresh sessions this often: state must not grow with the run


class Target:
    def __init__(self) -> None:
        self.runs = 0
        self._fresh()

    def _fresh(self) -> None:
        self.sender = sender()
        self.trusting = ReceiverSession(ReceiverConfig(trusted=frozenset({KEY.fingerprint})),
                                        random.Random(2), 0.0)
        self.sealed = ReceiverSession(ReceiverConfig(), random.Random(4), 0.0,
                                      sealer=Sealer(bytes(range(32)), random.Random(7)))

    def __call__(self, data: bytes) -> None:
        self.runs += 1
        if self.runs % SESSIONS_EVERY == 0:
            self._fresh()
        for decode in (decode_control_untrusted, decode_data_untrusted, SEALER.open_untrusted):
            with contextlib.suppress(BadPacket):
                decode(data)
        now = self.runs * 0.001
        self.sender.receive_datagram(data, ("10.0.0.66", 5000), now)
        self.sender.handle_timer(now)
        self.sender.datagrams_to_send(now)
        for r in (self.trusting, self.sealed):
            r.receive_datagram(data, ("10.0.0.1", 9000), now)
            r.handle_timer(now)
            r.datagrams_to_send(now)
            while r.next_event() is not None:
                pass


def main() -> None:
    corpus = Path(tempfile.mkdtemp(prefix="mcastd-fuzz-"))
    for i, datagram in enumerate(PLAIN + SEALED):
        (corpus / f"seed{i}").write_bytes(datagram)
    atheris.Setup([*sys.argv, str(corpus)], Target())
    atheris.Fuzz()


if __name__ == "__main__":
    main()
