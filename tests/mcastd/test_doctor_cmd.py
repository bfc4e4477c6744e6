"""`mcastd doctor`: its arguments, and the responder's answers to laptops (a fake socket: no
datagram leaves this machine)."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from mcastd.cli import build_parser
from mcastd.cli import main as mcastd_main
from mcastd.doctor_responder import Responder, responder_here, send_burst
from protocol.config import Addr
from protocol.diagnosis import Finding
from protocol.doctor import (
    MAX_BURST_SECONDS,
    PROBE_ADDR,
    BurstDone,
    BurstPlan,
    BurstRequest,
    Ping,
    Pong,
    Result,
    burst_count,
    decode_doctor_untrusted,
    decode_probe_untrusted,
)

LAPTOP: Addr = ("10.77.0.2", 40000)
DISCOVERY: Addr = ("239.255.77.1", 9770)


class FakeSock:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Addr]] = []

    def sendto(self, data: bytes, addr: Addr) -> int:
        self.sent.append((data, addr))
        return len(data)


class FakeEndpoint:
    """What the responder uses of a UdpEndpoint; ``refuse``: send_batch's errno, if any."""

    def __init__(self, refuse: int | None = None) -> None:
        self.sock = FakeSock()
        self.batched: list[tuple[bytes, Addr]] = []
        self.refuse = refuse

    def send_batch(self, datagrams: list[tuple[bytes, Addr]], start: int = 0) -> int:
        if self.refuse is not None:
            raise OSError(self.refuse, "refused")
        self.batched += datagrams[start:]
        return len(datagrams)

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(("argv", "says"), [
    (["doctor", "--duration", "0"], "not a positive number of seconds"),
    (["doctor", "--duration", "100000"], "more than a day"),
    (["doctor", "--rates", "fast"], "--rate wants bits per second"),
    (["doctor", "--rates", "1M,2M,3M,4M,5M,6M,7M,8M,9M"], "not 1-8 rates"),
    (["doctor", "--group", "10.0.0.1"], "not a multicast address"),
])
def test_bad_arguments_are_one_sentence(argv: list[str], says: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert says in _usage_error(argv, capsys)


def test_rates_are_sorted_and_the_defaults_bounded() -> None:
    args = build_parser().parse_args(["doctor", "--rates", "100M,10M"])
    assert args.rates == [10_000_000, 100_000_000]
    args = build_parser().parse_args(["doctor"])
    assert args.rates == [10_000_000, 100_000_000, 500_000_000] and args.duration == 60
    assert args.group is None  # sessions draw their own groups: only collisions are checked


@pytest.mark.parametrize(("argv", "says"), [
    # IPv6 asked for, by --ipv6 or by an IPv6 group, where the interface has none (loopback).
    (["doctor", "--ipv6"], "interface lo has no usable IPv6 link-local address"),
    (["doctor", "--group", "ff12::6d63:9"], "interface lo has no usable IPv6 link-local"),
])
def test_ipv6_without_a_link_local_address_is_one_sentence(
        argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert mcastd_main([*argv, "--interface", "lo", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_an_unknown_interface_is_one_sentence_and_exit_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert mcastd_main(["doctor", "--interface", "nosuch0", "--duration", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mcastd: ") and "nosuch0" in err and "\n" not in err


def _responder(endpoint: FakeEndpoint,
               reports: list[tuple[str, list[Finding]]]) -> Responder:
    here = responder_here(5, ("10.77.0.1", 9772), 1500, PROBE_ADDR, [10_000_000])
    return Responder(endpoint, here, DISCOVERY, PROBE_ADDR,  # type: ignore[arg-type]
                     lambda *report: reports.append(report))


def _run(test: Callable[[], Any]) -> None:
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))


def test_the_responder_answers_pings_bursts_and_results() -> None:
    endpoint = FakeEndpoint()
    reports: list[tuple[str, list[Finding]]] = []
    responder = _responder(endpoint, reports)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            responder._handle(Ping(1, 0, 2.5).encode(), LAPTOP, nursery)
            assert [decode_doctor_untrusted(d) for d, _ in endpoint.sock.sent] == [
                Pong(1, 0, 2.5)]
            endpoint.sock.sent.clear()
            request = BurstRequest(1, 1, 10_000_000, 1472, 10**6, 9000).encode()
            responder._handle(request, LAPTOP, nursery)
            responder._handle(request, LAPTOP, nursery)  # repeated while under way: ignored
            await trio.sleep(2)
            count = burst_count(10_000_000, 1472)
            assert len(endpoint.batched) == count
            probes = [decode_probe_untrusted(d) for d, addr in endpoint.batched]
            assert [p.index for p in probes] == list(range(count))
            assert {(p.laptop_id, p.burst) for p in probes} == {(1, 1)}
            assert {addr for _, addr in endpoint.batched} == {PROBE_ADDR}
            (done_datagram, to), = endpoint.sock.sent
            done = decode_doctor_untrusted(done_datagram)
            assert isinstance(done, BurstDone) and to == LAPTOP
            assert (done.sent, done.error) == (count, "")
            assert 0.4 <= done.seconds <= MAX_BURST_SECONDS + 0.01
            responder._handle(request, LAPTOP, nursery)  # its BURST_DONE was lost: again
            await trio.sleep(1)
            assert len(endpoint.batched) == count  # no second burst
            assert endpoint.sock.sent[-1] == (done_datagram, LAPTOP)
            result = Result(1, [["mtu", "problem", "the sender's link takes ..."]]).encode()
            for _copy in range(3):
                responder._handle(result, LAPTOP, nursery)
            responder._handle(b"garbage", LAPTOP, nursery)
            nursery.cancel_scope.cancel()
        assert reports == [("10.77.0.2", [Finding("mtu", "problem",
                                                   "the sender's link takes ...")])]
        assert responder.dropped == 1

    _run(main)


def test_a_size_the_link_refuses_is_reported_not_raised() -> None:
    async def main() -> None:
        plan = BurstPlan(1, 1, 10_000_000, 8972, 10)
        sent, _seconds, error = await send_burst(FakeEndpoint(errno.EMSGSIZE),  # type: ignore[arg-type]
                                                 plan, PROBE_ADDR)
        assert sent == 0 and "refuses 8972-byte datagrams" in error

    _run(main)


def test_the_responder_announces_itself_twice_a_second() -> None:
    endpoint = FakeEndpoint()
    responder = _responder(endpoint, [])

    async def main() -> None:
        with trio.move_on_after(1.9):
            await responder._announce()
        heres = [(decode_doctor_untrusted(d), addr) for d, addr in endpoint.sock.sent]
        assert len(heres) == 4 and {addr for _, addr in heres} == {DISCOVERY}
        assert heres[0][0] == responder.here

    _run(main)
