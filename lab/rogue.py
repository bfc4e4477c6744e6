"""A host that sprays garbage at a session: for lab tests that hostile or broken traffic
changes nothing (``python -m lab.rogue --interface lab0``; run it only inside the lab).

It listens for an ANNOUNCE to learn the session's groups and the sender's control address,
then sends a bounded number of datagrams, at a bounded rate, to all three: random bytes,
datagrams with our magic and a wrong session, truncated headers and msgpack that is not ours.
With ``--forge`` it sends forged blocks of the session instead (right session id, well formed
down to each block's own xxh3: ``netsim/forger.py``) to its data group.
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import time

from netsim.forger import Forger
from protocol.config import DISCOVERY_ADDR
from protocol.errors import BadPacket
from protocol.wire import MAGIC, PROTOCOL_VERSION, Announce, PacketType, decode_control_untrusted


def garbage(rng: random.Random, session_id: int) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 1500))
    if kind == 1:  # a DATA header of another session, then noise
        wrong = (session_id + rng.randrange(1, 1 << 32)) % (1 << 32)  # another session tag
        head = MAGIC + bytes((PROTOCOL_VERSION, PacketType.DATA, 1, 0, 0, 0))
        return head + struct.pack("<I", wrong) + rng.randbytes(rng.randrange(0, 1480))
    if kind == 2:  # a truncated header of ours
        return (MAGIC + bytes((PROTOCOL_VERSION, rng.randrange(256))))[: rng.randrange(1, 4)]
    return bytes((0x85,)) + rng.randbytes(rng.randrange(0, 200))  # a msgpack map, mangled


def find_session(ifname: str, wait: float) -> Announce:
    index = socket.if_nametoindex(ifname)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(DISCOVERY_ADDR)
    mreq = socket.inet_aton(DISCOVERY_ADDR[0]) + socket.inet_aton("0.0.0.0")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq + struct.pack("=i", index))
    sock.settimeout(wait)
    try:
        while True:
            data, _addr = sock.recvfrom(65536)
            try:
                msg = decode_control_untrusted(data)
            except BadPacket:
                continue
            if isinstance(msg, Announce):
                return msg
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.rogue", description=__doc__)
    parser.add_argument("--interface", required=True)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=4000.0, help="datagrams per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--forge", action="store_true",
                        help="send forged blocks of the session instead of garbage")
    args = parser.parse_args(argv)
    announce = find_session(args.interface, wait=30.0)
    print(f"rogue: found session {announce.name!r}", flush=True)
    targets = [DISCOVERY_ADDR, (announce.data_host, announce.data_port),
               (announce.control_host, announce.control_port)]
    forgery = forged_blocks(announce, args.seed) if args.forge else []
    index = socket.if_nametoindex(args.interface)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mreqn = socket.inet_aton("0.0.0.0") * 2 + struct.pack("=i", index)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
    rng = random.Random(args.seed)
    start = time.monotonic()
    for n in range(args.count):
        if forgery:
            sock.sendto(*forgery[n % len(forgery)])
        else:
            sock.sendto(garbage(rng, announce.session_id), targets[n % 3])
        ahead = n / args.rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    sock.close()
    what = "forged" if forgery else "garbage"
    print(f"rogue: sent {args.count} {what} datagrams to {targets}")
    return 0


def forged_blocks(announce: Announce, seed: int) -> list[tuple[bytes, tuple[str, int]]]:
    """One forged copy of every block (64 at most), as the simulator's forger makes them."""
    forger = Forger(seed)
    forger.receive_datagram(announce.encode(), ("0.0.0.0", 0), 0.0)
    due = forger.get_timer()
    assert due is not None
    forger.handle_timer(due)
    return forger.datagrams_to_send(due)


if __name__ == "__main__":
    raise SystemExit(main())
