"""What the announced session is, heard before mcast-receive starts: on which IP family it
runs (a laptop whose link has both an IPv4 link-local and an IPv6 one cannot tell from its
addresses which one the sender uses), and how large a disk it needs: `target = auto` takes
the one internal disk that is large enough, so a small second disk (a 32 GB eMMC beside the
NVMe) does not stop a laptop.

The receiver's own sans-I/O session listens, with the stick's session name, keys and secret:
the session it picks here is the one mcast-receive will follow. Nothing is sent.
"""

from __future__ import annotations

import random
import select
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from driver.keys import parse_trust
from driver.secret import load_secret
from driver.udp import NetworkError, UdpEndpoint, open_group_listener
from protocol.config import DISCOVERY_ADDR, DISCOVERY_ADDR6, Addr, ReceiverConfig
from protocol.events import SessionFound
from protocol.receiver import ReceiverSession
from protocol.seal import Sealer
from protocol.wire import Announce

from ..config import SECRET_NAME, TRUST_NAME, StickConfig

BOTH_FAMILIES = (DISCOVERY_ADDR, DISCOVERY_ADDR6)


def needed_size(config: StickConfig, stick: Path, ifname: str, timeout: float,
                discoveries: Sequence[Addr] = BOTH_FAMILIES) -> int | None:
    """The smallest disk that holds the session's image, or None if none is heard within
    ``timeout`` seconds (the laptop then asks, as without the probe). Asked before the
    session's family is known: it listens on both."""
    heard = hear_session(config, stick, ifname, timeout, discoveries)
    if heard is None:
        return None
    return heard[1].min_size or heard[1].image_size


Ignored = Callable[[str], None]  # told, as mcast-receive says it, of a session not followed


def announced_on_ipv6(config: StickConfig, stick: Path, ifname: str, timeout: float,
                      on_ignored: Ignored | None = None) -> bool | None:
    """Whether the session this stick follows is announced on IPv6 (True) or IPv4 (False),
    listening on both discovery groups; None if it is heard on neither within ``timeout``."""
    heard = hear_session(config, stick, ifname, timeout, BOTH_FAMILIES, on_ignored)
    return None if heard is None else heard[0] == DISCOVERY_ADDR6


def hear_session(config: StickConfig, stick: Path, ifname: str, timeout: float,
                 discoveries: Sequence[Addr], on_ignored: Ignored | None = None
                 ) -> tuple[Addr, Announce] | None:
    """The first session this stick follows announced on one of ``discoveries`` within
    ``timeout`` seconds: (the discovery group it was heard on, its announcement). Sessions
    heard but refused (another key, another secret) go to ``on_ignored``, once each."""
    trusted = parse_trust(str(stick / TRUST_NAME)) if config.trust else None
    secret = load_secret(stick / SECRET_NAME, private=False) if config.secret else None
    now = time.monotonic()
    ears: list[tuple[Addr, UdpEndpoint, ReceiverSession]] = []
    try:
        for discovery in discoveries:
            try:
                listener = open_group_listener(discovery, ifname)
            except NetworkError:  # no address of that family on this link
                continue
            sealer = Sealer(secret, random.SystemRandom()) if secret is not None else None
            session = ReceiverSession(
                ReceiverConfig(discovery_addr=discovery,
                               session_name=config.session or None, trusted=trusted),
                random.Random(), now, sealer=sealer)
            ears.append((discovery, listener, session))
        return _listen(ears, now + timeout, on_ignored or (lambda _text: None))
    finally:
        for _discovery, listener, _session in ears:
            listener.close()


def _listen(ears: list[tuple[Addr, UdpEndpoint, ReceiverSession]], deadline: float,
            on_ignored: Ignored) -> tuple[Addr, Announce] | None:
    told: set[int] = set()
    while ears and (now := time.monotonic()) < deadline:
        timers = [t for _d, _l, s in ears if (t := s.get_timer()) is not None]
        wait = min([deadline, *timers]) - now
        ready, _, _ = select.select([lst.sock for _d, lst, _s in ears], [], [],
                                    max(0.0, min(wait, 0.5)))
        now = time.monotonic()
        for discovery, listener, session in ears:
            if listener.sock in ready:
                data, addr = listener.sock.recvfrom(65536)
                # An IPv6 link-local source comes with its zone ("fe80::1%eth0"): kept.
                session.receive_datagram(data, (addr[0], addr[1]), now)
            timer = session.get_timer()
            if timer is not None and timer <= now:
                session.handle_timer(now)
            while (event := session.next_event()) is not None:
                if isinstance(event, SessionFound) and session.announce is not None:
                    return discovery, session.announce
            for sid, (name, host, why) in session.refused_sessions.items():
                if sid not in told:
                    told.add(sid)
                    on_ignored(f"ignored session {name!r} from {host}: {why}")
    return None
