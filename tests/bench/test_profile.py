"""The profile's table: py-spy's collapsed stacks summed by innermost function (its own time),
lines of one function counted together."""

from __future__ import annotations

from pathlib import Path

from bench.profile import self_times, table


def test_samples_are_summed_per_innermost_function(tmp_path: Path) -> None:
    raw = tmp_path / "sender.txt"
    raw.write_text(
        "main (cli.py:10);run (loop.py:5);send_batch (driver/udp.py:148) 40\n"
        "main (cli.py:10);run (loop.py:5);send_batch (driver/udp.py:150) 2\n"
        "main (cli.py:10);encode (fec.py:64) 8\n"
        "garbage line without a count\n")
    counts, total = self_times(raw)
    assert total == 50
    assert counts.most_common(2) == [("send_batch (driver/udp.py)", 42),
                                     ("encode (fec.py)", 8)]
    text = table("sender", raw, 1)
    assert "sender: 50 samples" in text and " 84.0%  send_batch (driver/udp.py)" in text
    assert "encode" not in text  # only the top 1
