"""How large a disk the announced session needs, heard before a disk is chosen: `target =
auto` takes the one internal disk that is large enough, so a small second disk (a 32 GB eMMC
beside the NVMe) does not stop a laptop.

The receiver's own sans-I/O session listens, with the stick's session name, keys and secret:
the session it picks here is the one mcast-receive will follow. Nothing is sent.
"""

from __future__ import annotations

import random
import select
import time
from pathlib import Path

from driver.keys import parse_trust
from driver.secret import load_secret
from driver.udp import NetworkError, open_group_listener
from protocol.config import DISCOVERY_ADDR, Addr, ReceiverConfig
from protocol.events import SessionFound
from protocol.receiver import ReceiverSession
from protocol.seal import Sealer

from ..config import SECRET_NAME, TRUST_NAME, StickConfig


def needed_size(config: StickConfig, stick: Path, ifname: str, timeout: float,
                discovery: Addr = DISCOVERY_ADDR) -> int | None:
    """The smallest disk that holds the session's image, or None if none is heard within
    ``timeout`` seconds (the laptop then asks, as without the probe)."""
    trusted = parse_trust(str(stick / TRUST_NAME)) if config.trust else None
    secret = load_secret(stick / SECRET_NAME, private=False) if config.secret else None
    sealer = Sealer(secret, random.SystemRandom()) if secret is not None else None
    session = ReceiverSession(
        ReceiverConfig(discovery_addr=discovery, session_name=config.session or None,
                       trusted=trusted),
        random.Random(), time.monotonic(), sealer=sealer)
    try:
        listener = open_group_listener(discovery, ifname)
    except NetworkError:
        return None
    deadline = time.monotonic() + timeout
    try:
        while (now := time.monotonic()) < deadline:
            timer = session.get_timer()
            wait = min(deadline, timer if timer is not None else deadline) - now
            ready, _, _ = select.select([listener.sock], [], [], max(0.0, min(wait, 0.5)))
            now = time.monotonic()
            if ready:
                data, addr = listener.sock.recvfrom(65536)
                session.receive_datagram(data, (addr[0], addr[1]), now)
            timer = session.get_timer()
            if timer is not None and timer <= now:
                session.handle_timer(now)
            while (event := session.next_event()) is not None:
                if isinstance(event, SessionFound) and session.announce is not None:
                    return session.announce.min_size or session.announce.image_size
    finally:
        listener.sock.close()
    return None
