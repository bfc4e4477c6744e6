"""Which announced session a receiver follows, and what it remembers of the others.

An announcement is followed only if it is the one asked for (``session_name``,
``image_sha256``), plausible (within what a receiver can track) and trusted: a signature must
verify, and with ``trusted`` keys it must be one of them, over a manifest to check the blocks
against. Two later announcements end the session we follow: while we still wait for its ACCEPT,
a later session signed by the same key supersedes it (ours was a replay); and a new session of
our image while ours is silent means our sender restarted. Sessions passed over are remembered,
a few at most, so that the daemon can tell why it found nothing, or that others are announced.
"""

from __future__ import annotations

from dataclasses import replace

from .config import Addr, ReceiverConfig
from .errors import BadPacket
from .manifest import DIGEST_SIZE as SHA256_SIZE
from .receiver_stats import ReceiverStats
from .seal import SEAL_OVERHEAD, is_sealed
from .trust import announce_payload, fingerprint, verify
from .wire import DATA_HEADER_SIZE, Announce, decode_control_untrusted, ip_udp_headers

RESTART_SILENCE = 2.0  # our sender silent this long + a new session of our image: it restarted
_MAX_BLOCKS = 1 << 24  # block indexes a receiver will track (16 TiB at 1 MiB blocks)
_MAX_BLOCK_SIZE = 64 << 20
_MAX_NOTED = 16  # sessions remembered in other_sessions, and in refused_sessions


class SessionChoice:
    """The rules of following; the session asks, and acts on the answers."""

    def __init__(self, config: ReceiverConfig, stats: ReceiverStats, sealed: bool = False
                 ) -> None:
        self.config = config
        self._stats = stats
        self._overhead = DATA_HEADER_SIZE + (SEAL_OVERHEAD if sealed else 0)
        # Other sessions announced on our discovery group: (name, sender host), a few at most.
        self.other_sessions: dict[int, tuple[str, str]] = {}
        # Sessions we would not follow: (name, sender host, why), a few at most.
        self.refused_sessions: dict[int, tuple[str, str, str]] = {}

    def may_follow(self, msg: Announce, addr: Addr) -> bool:
        """The session is the one asked for, plausible, and trusted (else counted, and a
        refusal remembered with its reason)."""
        wanted = self.config.session_name
        if wanted is not None and msg.name != wanted:
            return False
        image = self.config.image_sha256
        if image is not None and msg.image_sha256 != image:
            return False
        if (
            not 0 < msg.block_size <= _MAX_BLOCK_SIZE
            or not 0 < msg.symbol_size <= 65000
            or not 0 <= msg.image_size <= msg.block_size * _MAX_BLOCKS
            or len(msg.image_sha256) != 32
        ):
            self._stats.garbled += 1
            return False
        why = self.distrust(msg) or self._too_big(msg)
        if why:
            self._refuse(msg, addr, why)
            self._stats.foreign += 1
            return False
        return True

    def _too_big(self, msg: Announce) -> str:
        """Why this laptop's link cannot carry the session's data ("" if it can)."""
        largest, fits = msg.symbol_size + self._overhead, self.config.max_datagram
        if not fits or largest <= fits:
            return ""
        headers = ip_udp_headers(":" in self.config.discovery_addr[0])
        return (f"its data packets are {largest + headers} bytes and this laptop's "
                f"link takes {fits + headers} (serve with --mtu "
                f"{fits + headers}, or give every link of the room the same MTU)")

    def distrust(self, msg: Announce) -> str:
        """Why we must not follow this session ("" if we may)."""
        if msg.signature:
            unsigned = replace(msg, signature=b"").encode()
            if not verify(msg.key, announce_payload(unsigned), msg.signature):
                return "its signature does not verify (forged or damaged)"
        trusted = self.config.trusted
        if trusted is None:
            return ""
        if not msg.signature:
            return "it is not signed, and only trusted senders are followed"
        if fingerprint(msg.key) not in trusted:
            return f"it is signed by {fingerprint(msg.key)}, which is not a trusted key"
        if len(msg.manifest) != SHA256_SIZE:
            return "it has no signed manifest to check the blocks against"
        return ""

    def supersedes(self, msg: Announce, followed: Announce | None, key: bytes, *,
                   joining: bool) -> bool:
        """While we wait for our session's ACCEPT: a later session signed by the same key
        (``key``, the followed session's; empty if unsigned). Ours is then an old one replayed
        (or a sender since restarted), which will never accept us; the later one is live.
        Nothing was handed out yet, so we can switch."""
        return (
            joining
            and followed is not None
            and bool(key)
            and msg.key == key
            and msg.created > followed.created
        )

    def sender_restarted(self, msg: Announce, followed: Announce | None, *, following: bool,
                         silent_for: float) -> bool:
        """A new, trusted session of our image while ours is silent (``following``: joining or
        receiving): our sender crashed and came back, so waiting out ``sender_timeout`` would
        only waste time."""
        return (
            followed is not None
            and msg.image_sha256 == followed.image_sha256
            and msg.created >= followed.created  # not an older session replayed
            and following
            and silent_for >= min(RESTART_SILENCE, self.config.sender_timeout)
            and not self.distrust(msg)
        )

    def note_other(self, msg: Announce, addr: Addr) -> None:
        """Another session on our discovery group, while we follow one (or gave up)."""
        if msg.session_id not in self.other_sessions and len(self.other_sessions) < _MAX_NOTED:
            self.other_sessions[msg.session_id] = (msg.name, addr[0])

    def note_unopened(self, data: bytes, addr: Addr) -> None:
        """A datagram our key cannot open while we look for a session. One in the clear may be
        another session's announcement: remembered, so that finding nothing can say why."""
        if is_sealed(data):
            return
        try:
            msg = decode_control_untrusted(data)
        except BadPacket:
            return
        if isinstance(msg, Announce):
            self._refuse(msg, addr, "it is not encrypted, and this laptop follows only "
                                    "sessions encrypted with its key (--encrypt)")

    def _refuse(self, msg: Announce, addr: Addr, why: str) -> None:
        refused = self.refused_sessions
        if msg.session_id not in refused and len(refused) < _MAX_NOTED:
            refused[msg.session_id] = (msg.name, addr[0], why)
