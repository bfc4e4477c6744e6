"""TaskProgress: a few updates a second, the last always shown, rate and time left."""

from __future__ import annotations

import logging

from driver.progress import TaskProgress
from driver.report import FinalReport, TaskSnapshot


class Recorder:
    def __init__(self) -> None:
        self.snapshots: list[TaskSnapshot] = []

    def update(self, snapshot: object) -> None:
        assert isinstance(snapshot, TaskSnapshot)
        self.snapshots.append(snapshot)

    def message(self, text: str, *, level: int = logging.INFO) -> None: ...

    def final(self, report: FinalReport) -> None: ...

    def close(self) -> None: ...


def test_updates_are_throttled_but_the_end_is_shown() -> None:
    now = [100.0]
    console = Recorder()
    task = TaskProgress(console, "capture x → y", clock=lambda: now[0])
    for done in range(0, 1000, 10):
        now[0] += 0.01  # 100 calls over a second
        task.update("capturing", done, 1000)
    task.update("capturing", 1000, 1000)
    assert 4 <= len(console.snapshots) <= 6
    last = console.snapshots[-1]
    assert last.percent == 100.0 and last.done_bytes == 1000 and last.eta is None
    middle = console.snapshots[2]
    assert middle.rate_bps > 0 and middle.eta is not None and middle.title == "capture x → y"
