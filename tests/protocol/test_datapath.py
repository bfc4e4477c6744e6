"""Batch placement: ``ReceiverSession.receive_many`` with the pure and the compiled
``place_run`` must leave a session exactly as ``receive_datagram`` of each datagram in turn does
(the same counters, block table, assemblies, events and next messages), on the same inputs:
a first pass shuffled, lost, duplicated, garbled, with other sessions' datagrams and control
messages in between."""

from __future__ import annotations

import dataclasses
import random
import shutil
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driver.batchio import RecvRing
from protocol import datapath
from protocol import receiver as receiver_module
from protocol.assembly import BlockAssembly
from protocol.datapath import place_run_py, source_datagrams_py
from protocol.layout import block_layout
from protocol.receiver import ReceiverSession
from protocol.wire import (
    DATA_HEADER_SIZE,
    FLAG_REPAIR,
    KIND_MASK,
    PacketType,
    data_header,
    decode_data_untrusted,
)

from .test_receiver import CONTROL, events_of, mixed_image, random_image, setup

try:
    from protocol._datapath import place_run as compiled
except ImportError:  # pragma: no cover (the suite's install builds it; see test below)
    compiled = None

TWINS = {"pure": place_run_py, "compiled": compiled}
IMAGES = {"mixed": mixed_image(), "random": random_image(6)}


def test_the_pure_twins_header_reads_what_wire_writes() -> None:
    datagram = data_header(FLAG_REPAIR, 2, 0x1122334455667788, 9, 300, 17, 4000, 77) + b"sym"
    fields = datapath.HEADER.unpack_from(datagram)
    h, _symbol = decode_data_untrusted(datagram)
    assert datapath.HEADER.size == DATA_HEADER_SIZE
    assert fields == (datapath.PREFIX, h.flags | h.kind, h.esi, h.group, h.session_tag, h.block,
                      h.encoded_length, h.seq)
    assert fields[1] & KIND_MASK == 2 and fields[1] & FLAG_REPAIR


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the pure twin runs")
def test_the_install_built_the_compiled_twin() -> None:
    # `make test` installs with a compiler (the Makefile's apt line): the fast path must be
    # the one under test. Where there is none, the daemons say so and run the pure loop.
    assert datapath.COMPILED and compiled is not None


def snapshot(session: ReceiverSession) -> dict[str, Any]:
    t = session._transfer
    assert t is not None
    return {
        "stats": {k: getattr(session.stats, k) for k in session.stats.__slots__},
        "blocks": bytes(t._blocks), "seq_seen": t.seq_seen, "cursor": t.cursor,
        "assemblies": {i: (bytes(a.buffer), bytes(a.have), bytes(a.counts), a.total,
                           a.groups_left, a.mismatches, {g: dict(r) for g, r in
                                                         enumerate(a.repairs) if r})
                       for i, a in t._assemblies.items()},
        "events": [comparable(e) for e in events_of(session)],
        "timer": session.get_timer(), "state": session.state,
        "last_heard": session._last_heard,
    }


def comparable(event: object) -> tuple[object, ...]:
    """An event's fields, its assembly (an object of its own in each session) by content."""
    values = []
    for f in dataclasses.fields(event):  # type: ignore[arg-type]
        value = getattr(event, f.name)
        values.append(bytes(value.buffer) if isinstance(value, BlockAssembly) else value)
    return (type(event).__name__, *values)


def mangled(stream: list[bytes], rng: random.Random) -> list[bytes]:
    """What a bad network and a busy LAN make of a stream."""
    out: list[bytes] = []
    for dg in stream:
        roll = rng.random()
        if roll < 0.10:
            continue  # lost
        out.append(dg)
        if roll < 0.15:
            out.append(dg)  # duplicated
        elif roll < 0.18:
            at = rng.randrange(len(dg))
            out.append(dg[:at] + bytes((dg[at] ^ (1 << rng.randrange(8)),)) + dg[at + 1:])
        elif roll < 0.20:
            out.append(dg[: rng.randrange(len(dg))])  # cut short
        elif roll < 0.22 and dg[3] == PacketType.DATA:
            out.append(dg[:8] + bytes(b ^ 0x5A for b in dg[8:12]) + dg[12:])  # another session
    for _ in range(len(out) // 20):  # some reordering
        i, j = rng.randrange(len(out)), rng.randrange(len(out))
        out[i], out[j] = out[j], out[i]
    return out


def deliver(session: ReceiverSession, datagrams: list[bytes], batch: int, now: float) -> None:
    ring = RecvRing(batch)
    for start in range(0, len(datagrams), batch):
        ring.put([(dg, CONTROL) for dg in datagrams[start : start + batch]])
        session.receive_many(ring, now)


@pytest.mark.parametrize("twin", sorted(TWINS))
@pytest.mark.parametrize("image", sorted(IMAGES))
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.sampled_from([1, 7, 64]))
def test_a_batch_leaves_the_session_as_one_datagram_at_a_time_does(
        twin: str, image: str, seed: int, batch: int) -> None:
    place = TWINS[twin]
    if place is None:
        pytest.skip("the compiled twin is not built")
    rng = random.Random(seed)
    _sender, one_by_one, stream = setup(IMAGES[image], fec_overhead=0.1)
    _sender, batched, _ = setup(IMAGES[image], fec_overhead=0.1)
    datagrams = mangled(stream, rng)
    for dg in datagrams:
        one_by_one.receive_datagram(dg, CONTROL, 1.0)
    original = receiver_module.place_run
    receiver_module.place_run = place
    try:
        deliver(batched, datagrams, batch, 1.0)
    finally:
        receiver_module.place_run = original
    assert snapshot(batched) == snapshot(one_by_one)
    assert batched.datagrams_to_send(2.0) == one_by_one.datagrams_to_send(2.0)


@pytest.mark.parametrize("twin", sorted(TWINS))
def test_the_batch_path_places_the_plain_symbols_itself(twin: str) -> None:
    """Most of a clean first pass goes through place_run, not one call per datagram."""
    place = TWINS[twin]
    if place is None:
        pytest.skip("the compiled twin is not built")
    _sender, session, stream = setup(random_image(4))
    calls = 0
    plain = session.receive_datagram

    def counting(*args: Any) -> None:
        nonlocal calls
        calls += 1
        plain(*args)

    session.receive_datagram = counting  # type: ignore[method-assign]
    original = receiver_module.place_run
    receiver_module.place_run = place
    try:
        deliver(session, stream, 64, 1.0)
    finally:
        receiver_module.place_run = original
    # Per block one new assembly and one completing symbol go the full way, plus control.
    assert calls < len(stream) // 10, (calls, len(stream))


try:
    from protocol._datapath import source_datagrams as compiled_sources
except ImportError:  # pragma: no cover
    compiled_sources = None


@settings(max_examples=200, deadline=None)
@given(length=st.integers(0, 20_000), size=st.integers(1, 1500), seq=st.integers(0, 2**32 - 1),
       data=st.data())
def test_both_twins_cut_a_block_into_the_same_datagrams(length: int, size: int, seq: int,
                                                         data: st.DataObject) -> None:
    """Each datagram is its header (data_header with this symbol's esi, group and seq) and the
    symbol's bytes, the last one short; seq wraps at 32 bits as the sender's does."""
    assert compiled_sources is not None
    payload = random.Random(length).randbytes(length)
    lay = block_layout(length, size)
    start = data.draw(st.integers(0, lay.source_count))
    end = data.draw(st.integers(start, lay.source_count))
    template = data_header(FLAG_REPAIR, 2, 0xDEADBEEF12345678, 77, 0, 0, length, 0)
    expected = [data_header(FLAG_REPAIR, 2, 0xDEADBEEF12345678, 77, i % lay.group_count,
                            i // lay.group_count, length, (seq + i - start) & 0xFFFFFFFF)
                + payload[i * size : (i + 1) * size] for i in range(start, end)]
    for twin in (source_datagrams_py, compiled_sources):
        assert twin(template, payload, size, lay.group_count, start, end, seq) == expected


def test_a_range_outside_the_payload_is_refused() -> None:
    assert compiled_sources is not None
    template = data_header(0, 1, 1, 0, 0, 0, 100, 0)
    with pytest.raises(ValueError, match="outside the block"):
        compiled_sources(template, bytes(100), 10, 1, 0, 11, 0)
    with pytest.raises(ValueError, match="outside the block"):
        compiled_sources(template[:20], bytes(100), 10, 1, 0, 1, 0)
