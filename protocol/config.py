"""Session settings as frozen dataclasses. The CLIs only turn argv into these."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

from .wire import DEFAULT_SYMBOL_SIZE

Addr = tuple[str, int]

DEFAULT_BLOCK_SIZE = 1 << 20
DISCOVERY_ADDR: Addr = ("239.255.77.1", 9770)
DATA_ADDR: Addr = ("239.255.77.2", 9771)  # the data group of `--group` given no address
# IPv6: link-scope multicast (ff12::/16: transient, this link only); 6d63 is "mc".
DISCOVERY_ADDR6: Addr = ("ff12::6d63:1", 9770)
# Each session draws its own data group from these (the admin-scoped 239.255.128.0/17, its
# IPv6 twin ff12::6d63:8000/113), so that sessions on one LAN never share one: the group is
# carried in the announcement. 32,768 groups of distinct Ethernet multicast addresses, so that
# even a switch without IGMP snooping and a laptop's NIC filter keep them apart.
DATA_GROUPS = ipaddress.ip_network("239.255.128.0/17")
DATA_GROUPS6 = ipaddress.ip_network("ff12::6d63:8000/113")
DATA_PORT = 9771
# A sender's control port (where its laptops send JOIN/STATUS/DONE) is the first free one of
# these: concurrent sessions on one machine each get their own, a crashed session's port is
# free again once its process is gone, and a firewall opens one known range for them all.
CONTROL_PORTS = range(9772, 9872)


def discovery_addr_for(ipv6: bool) -> Addr:
    return DISCOVERY_ADDR6 if ipv6 else DISCOVERY_ADDR


def random_data_group(ipv6: bool, rng: random.Random) -> str:
    """A data group for a new session, drawn from DATA_GROUPS (DATA_GROUPS6)."""
    groups = DATA_GROUPS6 if ipv6 else DATA_GROUPS
    return str(groups[rng.randrange(groups.num_addresses)])


@dataclass(frozen=True, slots=True)
class SenderConfig:
    image_size: int
    image_sha256: bytes
    control_addr: Addr  # where receivers send JOIN/STATUS/DONE (the sender's unicast address)
    name: str = "image"
    # The session's start by the admin's wall clock, seconds since the epoch, signed in the
    # ANNOUNCE. An input like `now`: the driver reads the clock, the core never does.
    created: float = 0.0
    discovery_addr: Addr = DISCOVERY_ADDR
    data_addr: Addr = DATA_ADDR
    block_size: int = DEFAULT_BLOCK_SIZE
    symbol_size: int = DEFAULT_SYMBOL_SIZE
    rate_bps: float = 900e6  # ceiling on the wire, bits per second (Ethernet frames counted)
    # Token bucket depth, how much may leave back to back (None: 10 ms of the rate, at least
    # 64 KiB): a sender woken a few ms late (GIL, a busy loop) catches up instead of losing
    # link time.
    burst_bytes: int | None = None
    fec_overhead: float = 0.02  # proactive repair symbols per source symbol, per group
    adapt_fec: bool = True  # then follow the loss receivers report (fec_overhead: the start)
    adapt_rate: bool = True  # slow down to what the receivers take (rate_bps: the ceiling)
    min_rate_bps: float = 1e6  # adaptation never goes below this
    min_receivers: int = 1
    max_receivers: int = 4096  # joins beyond this are ignored (bounds the sender's work)
    receiver_timeout: float = 10.0  # a receiver silent this long is dropped as failed
    # A receiver that stored no block for this long while the sender served it (after the
    # first pass) cannot keep up even at the lowest rate: dropped as failed.
    stall_timeout: float = 60.0
    max_wait: float | None = None  # start after this long with >= 1 receiver, even if fewer
    # New receivers are taken until this long after the start (None: while the session runs);
    # with a window the sender also stays that long, so a laptop booting late still gets in.
    late_join_window: float | None = None
    announce_interval: float = 1.0
    # While waiting to start, announce this often: a receiver that missed one (a lossy link)
    # then costs the whole room a quarter second, not a second.
    waiting_announce_interval: float = 0.25
    sync_interval: float = 0.1
    grtt_initial: float = 0.05
    grtt_min: float = 0.001
    grtt_max: float = 2.0
    nak_rate_target: float = 10_000.0  # STATUS messages per second the sender wants at most
    cache_blocks: int = 64  # encoded blocks kept for repairs (bounds sender memory)
    prefetch_blocks: int = 4  # first-pass blocks requested ahead of the cursor
    batch_max: int = 64  # datagrams returned by one datagrams_to_send call at most
    # The blocks that hold something, as [start, end) runs (None: every block): the others
    # are free space, never sent; receivers learn them from the used-block map.
    used_runs: tuple[tuple[int, int], ...] | None = None
    min_size: int = 0  # the smallest disk that holds the image (0: image_size)
    unreadable: int = 0  # bytes the capture could not read from the golden disk (zeros)

    def __post_init__(self) -> None:
        if self.image_size < 0:
            raise ValueError("image_size must be >= 0")
        if len(self.image_sha256) != 32:
            raise ValueError("image_sha256 must be 32 bytes")
        if self.block_size <= 0 or self.symbol_size <= 0 or self.symbol_size > 65000:
            raise ValueError("block_size and symbol_size must be positive (symbol <= 65000)")
        if self.rate_bps <= 0 or self.fec_overhead < 0 or self.min_receivers < 1:
            raise ValueError("rate must be > 0, fec_overhead >= 0, min_receivers >= 1")
        if not 0 < self.min_rate_bps <= self.rate_bps:
            raise ValueError("min_rate_bps must be > 0 and <= rate_bps")


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    discovery_addr: Addr = DISCOVERY_ADDR
    session_name: str | None = None  # join only a session of this name
    image_sha256: bytes | None = None  # join only a session of this image (a resumed run)
    # Fingerprints of the sender keys we follow (protocol/trust.py); None: any session, signed
    # or not (unauthenticated: the daemon warns).
    trusted: frozenset[str] | None = None
    max_pending_blocks: int = 128  # partially received blocks held in memory at most
    # The disk may hold an earlier version of the image: compare it with the manifest first
    # and receive only what differs (protocol/delta.py).
    delta: bool = False
    # Who this laptop is (receiver/identity.py), as (key, value) pairs: told to the sender in
    # JOIN and DONE for the admin's summary. Pairs, not a dict: the config stays immutable.
    host: tuple[tuple[str, str], ...] = ()
    # The largest datagram (UDP payload) this laptop's link takes, from its MTU (0: unknown):
    # a session sending larger ones is passed over with the reason, as its data never arrives.
    max_datagram: int = 0
    join_interval: float = 0.25
    # Heartbeat STATUS even when nothing is missing: it also carries what arrived, from which
    # the sender adapts its rate, so not too rare.
    status_interval: float = 0.5
    nak_backoff: float = 2.0  # first NAK after new loss waits U(0, nak_backoff × GRTT)
    done_interval: float = 0.5
    done_attempts: int = 10
    sender_timeout: float = 10.0  # no datagram from the sender for this long: give up
