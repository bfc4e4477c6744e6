"""The doctor's findings on stdout, and how its errors end."""

from __future__ import annotations

import io
import json

import pytest
import trio

from driver.doctor_output import print_finding, run_doctor
from driver.udp import NetworkError
from protocol.diagnosis import ok, problem


def test_one_line_per_finding_or_one_json_object() -> None:
    out = io.StringIO()
    print_finding(ok("mtu", "fine"), False, out=out)
    print_finding(problem("querier", "no IGMP querier ..."), False, "10.0.0.2", out=out)
    print_finding(problem("querier", "no IGMP querier ..."), True, "10.0.0.2", out=out)
    plain, laptop, record = out.getvalue().splitlines()
    assert plain == "ok: fine"
    assert laptop == "laptop 10.0.0.2: no IGMP querier ..."
    assert json.loads(record) == {"type": "finding", "check": "querier", "status": "problem",
                                  "ok": False, "finding": "no IGMP querier ...",
                                  "laptop": "10.0.0.2"}


def test_a_network_error_inside_a_nursery_is_one_sentence_and_exit_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> int:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            raise NetworkError("there is no network interface called 'x0'")

    assert run_doctor("mcastd", main) == 2
    assert capsys.readouterr().err == "mcastd: there is no network interface called 'x0'\n"


def test_other_errors_stay_tracebacks() -> None:
    async def main() -> int:
        async with trio.open_nursery():
            raise ValueError("a bug")

    with pytest.raises(BaseExceptionGroup):
        run_doctor("mcastd", main)
