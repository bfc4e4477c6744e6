"""A host that only listens: what anyone on the classroom LAN can capture of a session
(``python -m lab.sniffer --interface lab0 --out FILE``; inside the lab only). It captures the
link itself (a packet socket, as tcpdump does: each session's data group is its own, and an
encrypted session does not say which), keeps every UDP datagram to our discovery and data
ports (bounded in bytes and time), and counts how
many it could read (decode as our control messages or data headers) or recognise as sealed,
in ``OUT.json``. The capture goes to ``--out`` as the datagrams one after another, so a test
can look for the image's bytes in it. Both are kept current: the lab may kill it any time.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import time
from pathlib import Path
from typing import BinaryIO

from protocol.config import DATA_PORT, DISCOVERY_ADDR
from protocol.errors import BadPacket
from protocol.seal import is_sealed
from protocol.wire import decode_control_untrusted, decode_data_untrusted

_ETH_P_IP = 0x0800


def capture_socket(ifname: str) -> socket.socket:
    """Every IPv4 packet the interface sees, without link headers."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(_ETH_P_IP))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((ifname, 0))
    return sock


def udp_payload(packet: bytes, ports: frozenset[int]) -> bytes | None:
    """The payload of an IPv4 UDP packet to one of ``ports``, else None."""
    if len(packet) < 28 or packet[9] != socket.IPPROTO_UDP:
        return None
    start = (packet[0] & 0x0F) * 4
    if len(packet) < start + 8:
        return None
    port, length = struct.unpack_from("!2xHH", packet, start)
    if port not in ports:
        return None
    return packet[start + 8 : start + length]


def readable(data: bytes) -> bool:
    """Whether a stranger learns something from it as it is: our data or control, in clear."""
    for decode in (decode_control_untrusted, decode_data_untrusted):
        try:
            decode(data)
        except BadPacket:
            continue
        return True
    return False


def save(out: BinaryIO, stats: Path, counts: dict[str, int]) -> None:
    out.flush()
    tmp = stats.with_suffix(".tmp")
    tmp.write_text(json.dumps(counts))
    tmp.replace(stats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.sniffer", description=__doc__)
    parser.add_argument("--interface", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-bytes", type=int, default=64 << 20)
    args = parser.parse_args(argv)
    socks = [capture_socket(args.interface)]
    ports = frozenset({DISCOVERY_ADDR[1], DATA_PORT})
    counts = {"datagrams": 0, "sealed": 0, "readable": 0, "bytes": 0}
    end = time.monotonic() + args.seconds
    stats = Path(args.out + ".json")
    next_save = 0.0
    with open(args.out, "wb") as out:
        while time.monotonic() < end and counts["bytes"] < args.max_bytes:
            ready, _, _ = select.select(socks, [], [], 0.2)
            for sock in ready:
                # Drain it: one datagram per wake-up falls behind a loaded machine's stream.
                while True:
                    try:
                        packet = sock.recv(65536, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    data = udp_payload(packet, ports)
                    if data is None:
                        continue
                    counts["datagrams"] += 1
                    counts["bytes"] += len(data)
                    counts["sealed"] += is_sealed(data)
                    counts["readable"] += readable(data)
                    out.write(data)
            # As it goes (the lab may kill us, SIGKILL, the moment the laptops are done), but
            # not at every datagram: that alone made it miss a fifth of a stream.
            if time.monotonic() >= next_save or not ready:
                next_save = time.monotonic() + 0.05
                save(out, stats, counts)
        save(out, stats, counts)
    for sock in socks:
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
