"""Delta re-imaging with the real programs: laptops imaged with an earlier capture receive
`mcastd serve` of the updated golden disk with `mcast-receive --delta`. Only the blocks the
update changed cross the wire, and every laptop ends fsck-clean with the new file trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from disk.capture import capture
from disk.imagefile import PreparedImage
from lab.classroom import format_table, run_classroom_lab
from lab.disks import (
    classroom_disk,
    disk_problems,
    disks_available,
    golden_trees,
    loop_device,
    update_files,
    write_old_data,
)
from lab.net import lab_available
from receiver.export import export_image

MiB = 1 << 20
why = lab_available() or disks_available()
pytestmark = [pytest.mark.lab, pytest.mark.disks, pytest.mark.skipif(why is not None,
                                                                     reason=why or "")]


def changed_bytes(before: str, after: str) -> int:
    """The encoded bytes of the blocks of ``after`` that a laptop holding ``before`` lacks:
    the changed ones, and the GPT's first and last blocks (rewritten for the laptop's disk)."""
    with PreparedImage(before) as old, PreparedImage(after) as new:
        ends = {new.entries[0].index, new.entries[-1].index}
        return sum(e.length for e in new.entries
                   if e.index in ends or (o := old.entry(e.index)) is None
                   or o.sha256 != e.sha256)


def test_a_room_re_imaged_after_an_update_gets_only_the_changed_blocks(tmp_path: Path) -> None:
    golden = classroom_disk(tmp_path / "golden.img", scale=0.25)
    first = capture(str(golden.path), str(tmp_path / "v1.mci"))
    size = golden.table.disk_size + 32 * MiB
    laptops = [tmp_path / f"laptop{i}.disk" for i in range(2)]
    for laptop in laptops:  # imaged with the first capture last term
        with open(laptop, "wb") as f:
            write_old_data(f, size, seed=40)
        with loop_device(laptop) as device:
            export_image(first.image, device)

    block = first.header.block_size
    changed = update_files(golden, golden.number_of("ext4"), round(0.05 * first.blocks), block)
    second = capture(str(golden.path), str(tmp_path / "v2.mci"))
    assert 0.045 <= changed / second.blocks < 0.065, (changed, second.blocks)
    trees = golden_trees(golden)

    with loop_device(laptops[0]) as one, loop_device(laptops[1]) as two:
        result = run_classroom_lab(Path(second.image), 2, rate_mbit=200, timeout=180,
                                   targets={0: Path(one), 1: Path(two)},
                                   receiver_args=["--delta"], compare_bytes=False)
    assert result.ok, format_table(result)
    needed = changed_bytes(first.image, second.image)
    share = result.wire_bytes / second.image_bytes
    print(f"{changed} of {second.blocks} blocks changed ({needed} encoded bytes, GPT included); "
          f"on the wire {result.wire_bytes} bytes, {share:.3f} of the "
          f"{second.image_bytes}-byte image")
    # What the changed blocks weigh depends on the files: a patched library compresses less
    # than the average block. The wire carries those blocks, their FEC and the control.
    assert result.wire_bytes <= 1.25 * needed, (result.wire_bytes, needed)
    assert share <= 0.15, (share, changed, second.blocks)
    for i, laptop in enumerate(laptops):
        final = result.receivers[i].final
        assert final is not None
        kept = final["details"]["compared_blocks"]
        # Also sent: the GPT's blocks, which the first imaging made right for this disk.
        assert second.blocks - changed - 2 <= kept < second.blocks, (kept, changed,
                                                                      second.blocks)
        assert disk_problems(laptop, size, golden, trees) == [], i
