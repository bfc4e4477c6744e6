"""`mcast-receive --doctor`: its arguments, and the laptop's half of the probe (fake sockets:
no datagram leaves this machine)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from driver.batchio import RecvRing
from protocol.config import Addr
from protocol.diagnosis import Finding
from protocol.doctor import (
    BurstDone,
    BurstRequest,
    Ping,
    Pong,
    Result,
    decode_doctor_untrusted,
    probe_datagram,
)
from receiver.cli import main as receive_main
from receiver.doctor import BURST_ANSWER_WAIT, RESULT_COPIES, Prober

RESPONDER: Addr = ("10.77.0.1", 9772)
ME = 77


class FakeSock:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Addr]] = []

    def sendto(self, data: bytes, addr: Addr) -> int:
        self.sent.append((data, addr))
        return len(data)


class FakeEndpoint:
    """Delivers ``pending`` once, then nothing more."""

    def __init__(self, pending: list[bytes] | None = None) -> None:
        self.sock = FakeSock()
        self.pending = [(d, ("10.77.0.1", 9769)) for d in pending or []]

    async def wait_readable(self) -> None:
        if not self.pending:
            await trio.sleep_forever()

    def receive_into(self, ring: RecvRing) -> int:
        count = ring.put(self.pending)
        del self.pending[:count]
        return count

    def drops(self) -> int | None:
        return 0


def _run(test: Callable[[], Any]) -> None:
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))


def _prober(control: FakeEndpoint, probe: FakeEndpoint) -> Prober:
    return Prober(control, probe, RESPONDER, ME, 1500)  # type: ignore[arg-type]


def test_doctor_takes_no_target(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        receive_main(["--doctor", "t.img"])
    assert exc.value.code == 2
    assert "--doctor checks the network and writes nothing" in capsys.readouterr().err


def test_an_unknown_interface_is_one_sentence_and_exit_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert receive_main(["--doctor", "--interface", "nosuch0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mcast-receive: ") and "nosuch0" in err and "\n" not in err


def test_only_this_laptops_probes_are_counted_per_burst() -> None:
    mine = [probe_datagram(ME, 1, i, 1472) for i in range(5)] + [probe_datagram(ME, 2, 0, 1472)]
    others = [probe_datagram(ME + 1, 1, 0, 1472), b"MC\x02\x15short", b"junk" * 10]
    prober = _prober(FakeEndpoint(), FakeEndpoint(mine + others))

    async def main() -> None:
        with trio.move_on_after(1):
            await prober.count_probes()

    _run(main)
    assert prober.arrived == {1: 5, 2: 1}
    assert prober.dropped == 3


def test_answers_for_another_laptop_or_garbage_are_dropped() -> None:
    prober = _prober(FakeEndpoint(), FakeEndpoint())
    prober._on_control(Pong(ME + 1, 0, 0.0).encode())
    prober._on_control(b"garbage")
    prober._on_control(BurstDone(ME, 3, 10, 0.1, "").encode())
    assert prober.rtts == {} and prober.dropped == 2
    assert prober.done == {3: BurstDone(ME, 3, 10, 0.1, "")}


def test_a_burst_is_asked_again_when_its_answer_is_lost_and_counted() -> None:
    control, probe = FakeEndpoint(), FakeEndpoint()
    prober = _prober(control, probe)

    async def responder() -> None:
        # The first request is lost; the second is answered, with 3 of 4 probes arriving.
        await trio.sleep(BURST_ANSWER_WAIT + 0.1)  # the first attempt has timed out
        assert len(control.sock.sent) == 2
        request = decode_doctor_untrusted(control.sock.sent[-1][0])
        assert isinstance(request, BurstRequest) and request.mtu == 1500
        prober.arrived[request.burst] = 3
        prober._on_control(BurstDone(ME, request.burst, 4, 0.5, "").encode())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(responder)
            outcome = await prober.burst(10_000_000, 1472)
        assert (outcome.sent, outcome.arrived, outcome.loss) == (4, 3, 0.25)

    _run(main)


def test_pings_measure_the_round_trip_and_results_go_back_several_times() -> None:
    control = FakeEndpoint()
    prober = _prober(control, FakeEndpoint())

    async def main() -> None:
        async def echo() -> None:
            answered = 0
            while True:
                await trio.sleep(0.01)
                for data, _addr in control.sock.sent[answered:]:
                    ping = decode_doctor_untrusted(data)
                    assert isinstance(ping, Ping)
                    prober._on_control(Pong(ping.laptop_id, ping.seq, ping.sent).encode())
                answered = len(control.sock.sent)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            rtts = await prober.ping(3)
            nursery.cancel_scope.cancel()
        assert len(rtts) == 3 and all(0 <= rtt <= 0.02 for rtt in rtts)
        control.sock.sent.clear()
        await prober.send_result([Finding("mtu", "ok", "ok: fine " + "x" * 500)])
        results = [decode_doctor_untrusted(d) for d, _ in control.sock.sent]
        assert len(results) == RESULT_COPIES and all(r == results[0] for r in results)
        assert isinstance(results[0], Result) and len(results[0].findings[0][2]) == 400

    _run(main)
