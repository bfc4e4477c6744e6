"""Batched datagram I/O for the data path: many datagrams per system call, none copied into a
Python object of its own.

``RecvRing`` is a preallocated receive area: ``recv_into`` fills its slots with one
``recvmmsg`` (with UDP GRO a slot holds a coalesced run of datagrams, split by the segment size
the kernel reports) and describes every datagram by its offset and length in ``spans``, which
``ReceiverSession.receive_many`` walks in place. ``send_run`` sends the longest run from a list
of (bytes, address) that one call can carry: with GSO one ``sendmsg`` of equal-sized segments,
without it one ``sendmmsg``.

The compiled twin (``driver/_batchio.c``) does this in C; the pure functions below do the same
with the socket module, one datagram per call (the fallback where no compiler was found at
install). ``COMPILED`` says which is in use; tests/driver/test_batchio.py runs both.
"""

from __future__ import annotations

import errno
import socket
import struct
from array import array
from collections.abc import Sequence

from protocol.config import Addr

UDP_SEGMENT = 103  # linux/udp.h; Python's socket module does not export them
UDP_GRO = 104
MAX_RUN = 64  # datagrams per send at most (the kernel's GSO segment limit)
MAX_GSO_BYTES = 65000  # one UDP datagram's payload limit, with room for headers
SLOT_SIZE = 65536  # one GRO super-datagram at most
ADDR_SIZE = 28  # a sockaddr_in6: room for either family
_GRO_CMSG = struct.Struct("=i")
_GSO_CMSG = struct.Struct("=H")
_CMSG_SPACE = socket.CMSG_SPACE(_GRO_CMSG.size)
_SOCKADDR_IN = struct.Struct("=H2s4s")  # family, port (network order), address
_SOCKADDR_IN6 = struct.Struct("=H2sI16sI")  # family, port, flowinfo, address, scope id
# Errors of a receive that say nothing about the next one (an ICMP error queued on a unicast
# socket, a signal): read again.
TRANSIENT = frozenset({errno.ECONNREFUSED, errno.EINTR, errno.EHOSTUNREACH, errno.ENETUNREACH})


class RecvRing:
    """``slots`` receive slots of SLOT_SIZE bytes, and room to describe every datagram they can
    hold (a GRO slot may carry up to 64)."""

    def __init__(self, slots: int = 64) -> None:
        self.nslots = slots
        self.buf = bytearray(slots * SLOT_SIZE)
        self.view = memoryview(self.buf)
        capacity = slots * MAX_RUN
        self.spans = array("I", bytes(8 * capacity))  # offset, length of each datagram
        self.slots = array("H", bytes(2 * capacity))  # the slot each datagram came in
        self.addrs = bytearray(slots * ADDR_SIZE)  # each slot's source sockaddr
        self.count = 0  # datagrams of the last receive
        self._zones: dict[int, str] = {}  # interface index → name, for link-local sources

    def address_of(self, i: int) -> Addr:
        """The source (host, port) of datagram ``i`` of the last receive."""
        at = self.slots[i] * ADDR_SIZE
        family = int.from_bytes(self.addrs[at : at + 2], "little")
        if family == socket.AF_INET6:
            _f, port, _flow, address, scope = _SOCKADDR_IN6.unpack_from(self.addrs, at)
            host = socket.inet_ntop(socket.AF_INET6, address)
            if scope:  # a link-local sender: the answer must leave by the same interface
                host = f"{host}%{self._zone(scope)}"
            return host, int.from_bytes(port, "big")
        _f, port, address = _SOCKADDR_IN.unpack_from(self.addrs, at)
        return socket.inet_ntoa(address), int.from_bytes(port, "big")

    def _zone(self, index: int) -> str:
        zone = self._zones.get(index)
        if zone is None:
            try:
                zone = socket.if_indextoname(index)
            except OSError:  # the interface went away: the index still routes
                zone = str(index)
            self._zones[index] = zone
        return zone

    def put(self, datagrams: Sequence[tuple[bytes, Addr]]) -> int:
        """Fill the ring from ready-made datagrams, one per slot, as a receive would (for
        endpoints that are not kernel sockets: the test network's)."""
        count = min(len(datagrams), self.nslots)
        for k in range(count):
            data, addr = datagrams[k]
            self.buf[k * SLOT_SIZE : k * SLOT_SIZE + len(data)] = data
            self.spans[2 * k], self.spans[2 * k + 1] = k * SLOT_SIZE, len(data)
            self.slots[k] = k
            store_address(self.addrs, k * ADDR_SIZE, addr)
        self.count = count
        return count

    def datagram(self, i: int) -> bytes:
        off, n = self.spans[2 * i], self.spans[2 * i + 1]
        return bytes(self.view[off : off + n])


def recv_into_py(sock: socket.socket, ring: RecvRing, gro: bool) -> int:
    """Fill ``ring`` from ``sock`` without blocking; how many datagrams (0: none queued)."""
    count = 0
    spans, slots, addrs, view = ring.spans, ring.slots, ring.addrs, ring.view
    for k in range(ring.nslots):
        base = k * SLOT_SIZE
        try:
            n, anc, _flags, addr = sock.recvmsg_into([view[base : base + SLOT_SIZE]],
                                                     _CMSG_SPACE if gro else 0)
        except (BlockingIOError, InterruptedError):
            break
        except OSError as exc:
            if exc.errno in TRANSIENT:
                continue
            raise
        store_address(addrs, k * ADDR_SIZE, addr)
        segment = n
        for level, kind, data in anc:
            if level == socket.SOL_UDP and kind == UDP_GRO:
                segment = _GRO_CMSG.unpack_from(data)[0] or n
        segment = segment or 1
        at = 0
        while True:
            spans[2 * count] = base + at
            spans[2 * count + 1] = min(segment, n - at)
            slots[count] = k
            count += 1
            at += segment
            if at >= n:
                break
    return count


def store_address(addrs: bytearray, at: int, addr: tuple[str, int] | tuple[str, int, int, int]
                  ) -> None:
    """Write ``addr`` at ``at`` as the kernel writes a source sockaddr."""
    host, port = addr[0], addr[1]
    if ":" in host:
        scope = addr[3] if len(addr) == 4 else 0
        packed = socket.inet_pton(socket.AF_INET6, host.split("%")[0])
        _SOCKADDR_IN6.pack_into(addrs, at, socket.AF_INET6, port.to_bytes(2, "big"), 0, packed,
                                scope)
    else:
        _SOCKADDR_IN.pack_into(addrs, at, socket.AF_INET, port.to_bytes(2, "big"),
                               socket.inet_aton(host))


def send_run_py(sock: socket.socket, datagrams: Sequence[tuple[bytes, Addr]], start: int,
                gso: bool) -> tuple[int, int]:
    """Send the run of ``datagrams`` from ``start`` that one call carries: ``(next, 0)`` when
    ``datagrams[start:next]`` left, ``(start, errno)`` when the send failed."""
    end = run_end(datagrams, start, gso)
    data, addr = datagrams[start]
    try:
        if gso and end - start > 1:
            sock.sendmsg([d for d, _ in datagrams[start:end]],
                         [(socket.SOL_UDP, UDP_SEGMENT, _GSO_CMSG.pack(len(data)))], 0, addr)
            return end, 0
        sock.sendto(data, addr)  # (sendmmsg in C; one at a time here)
        return start + 1, 0
    except OSError as exc:
        return start, exc.errno or errno.EIO


def run_end(datagrams: Sequence[tuple[bytes, Addr]], i: int, gso: bool) -> int:
    """End of the run from ``i`` one send may carry: the same destination, and for GSO the same
    size (only the last may be shorter) within the byte limit."""
    first, addr = datagrams[i]
    size = len(first)
    total = 0
    end = i
    limit = min(len(datagrams), i + MAX_RUN)
    while end < limit:
        data, dest = datagrams[end]
        length = len(data)
        if dest != addr or gso and (length > size or total + length > MAX_GSO_BYTES):
            break
        total += length
        end += 1
        if gso and length < size:
            break  # a short segment must be the last one
    return end


try:
    from ._batchio import recv_into as _recv_into_c
    from ._batchio import send_run as _send_run_c
except ImportError:  # no compiler at install: the pure functions, same results, slower
    COMPILED = False

    def recv_into(sock: socket.socket, ring: RecvRing, gro: bool) -> int:
        return recv_into_py(sock, ring, gro)

    def send_run(sock: socket.socket, datagrams: list[tuple[bytes, Addr]], start: int,
                 gso: bool) -> tuple[int, int]:
        return send_run_py(sock, datagrams, start, gso)
else:
    COMPILED = True

    def recv_into(sock: socket.socket, ring: RecvRing, gro: bool) -> int:
        for _ in range(8):  # (a transient error is consumed by the call that reports it)
            got: int = _recv_into_c(sock.fileno(), ring.buf, SLOT_SIZE, ring.nslots,
                                    ring.spans, ring.slots, ring.addrs, gro)
            if got >= 0:
                return got
            if -got in (errno.EAGAIN, errno.EWOULDBLOCK):
                return 0
            if -got not in TRANSIENT:
                raise OSError(-got, f"recvmmsg failed: {errno.errorcode.get(-got, -got)}")
        return 0

    def send_run(sock: socket.socket, datagrams: list[tuple[bytes, Addr]], start: int,
                 gso: bool) -> tuple[int, int]:
        sent: tuple[int, int] = _send_run_c(sock.fileno(), datagrams, start, gso)
        return sent


def pure_path_warning() -> str | None:
    """What to tell the admin once at start when a compiled twin is missing (None: all are
    built): the transfer works, at a fraction of the speed."""
    from protocol import datapath

    if COMPILED and datapath.COMPILED:
        return None
    return ("the compiled data path was not built when mcastd was installed (no C compiler "
            "then): running the pure-Python one, several times slower; install gcc and "
            "python3-dev and reinstall mcastd")
