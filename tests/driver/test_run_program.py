"""Ctrl-C and usage errors inside a daemon's nursery still end in one sentence and the right
exit code (trio wraps them in exception groups)."""

from __future__ import annotations

import io

import pytest
import trio

from driver.console import Console, make_console
from driver.options import EXIT_INTERRUPTED, EXIT_USAGE, run_program


def console() -> Console:
    return make_console(json_mode=True, verbosity=0, stream=io.StringIO(), err=io.StringIO())


async def raising_in_a_task(exc: BaseException) -> int:
    async def task() -> None:
        raise exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(task)
        await trio.sleep_forever()
    return 0


class Usage(Exception):
    pass


def test_ctrl_c_in_a_task_is_interrupted_with_130(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_program("prog", console(),
                       lambda: raising_in_a_task(KeyboardInterrupt()), (Usage,), "bye.")
    assert code == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "prog: interrupted; bye.\n"


def test_a_usage_error_in_a_task_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_program("prog", console(),
                       lambda: raising_in_a_task(Usage("no such interface.")), (Usage,), "bye.")
    assert code == EXIT_USAGE
    assert capsys.readouterr().err == "prog: no such interface.\n"


def test_a_bug_in_a_task_is_not_hidden() -> None:
    with pytest.raises(BaseExceptionGroup):
        run_program("prog", console(),
                    lambda: raising_in_a_task(ZeroDivisionError()), (Usage,), "bye.")
