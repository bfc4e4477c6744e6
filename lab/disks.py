"""Golden disks for tests, the demo and the benchmark (root only): a disk image file with a real
partition table and real filesystems made by their own mkfs tools, real files copied in, and
free space that still holds "old data" (random bytes written before the filesystems were
made), as on a laptop that has been in use for years. Also: reading a partition's file tree
back (paths and SHA-256 of every file) and checking it with the filesystem's own fsck.

Every partition is reached through a loop device at its offset (this machine has no udev, so
``/dev/loop0p1`` never appears); every loop device and mount made here is removed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from disk.resize import verify_gpt
from disk.table import Partition, PartitionTable, read_table

MiB = 1 << 20
# sfdisk's type for each filesystem on GPT and on MBR.
GPT_TYPE = {"vfat": "U", "ext4": "L", "btrfs": "L", "xfs": "L", "swap": "S",
            "ntfs": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
            "exfat": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "unknown": "L"}
MBR_TYPE = {"vfat": "c", "ext4": "83", "btrfs": "83", "xfs": "83", "swap": "82", "ntfs": "7",
            "exfat": "7", "unknown": "83"}
MKFS = {
    # Never discard: on a loop device that would turn the old data into zeros and hide the
    # very free-space problem the tests are about.
    "ext4": ["mkfs.ext4", "-q", "-F", "-E", "nodiscard"],
    "ntfs": ["mkfs.ntfs", "-Q", "-F", "-q"],  # quick: the free space is left as it was
    "vfat": ["mkfs.vfat", "-F", "32"],
    "exfat": ["mkfs.exfat"],
    "btrfs": ["mkfs.btrfs", "-q", "-f", "--nodiscard"],
    "xfs": ["mkfs.xfs", "-q", "-f", "-K"],
    "swap": ["mkswap"],
}
FSCK = {
    "ext4": ["e2fsck", "-f", "-n"],
    "ntfs": ["ntfsfix", "-n"],
    "vfat": ["fsck.vfat", "-n"],
    "exfat": ["fsck.exfat", "-n"],
    "btrfs": ["btrfs", "check", "--readonly"],
    "xfs": ["xfs_repair", "-n"],
}


class DiskBuildError(Exception):
    pass


def disks_available() -> str | None:
    """None when this machine can build golden disks, else why not (for pytest skips)."""
    if os.geteuid() != 0:
        return "golden disks need root (loop devices, mounts)"
    tools = ["losetup", "sfdisk", "sgdisk", "partclone.extfs", "mkfs.ext4", "mkfs.ntfs",
             "mkfs.vfat", "mkfs.exfat", "mkfs.btrfs", "mkfs.xfs", "mcopy", "mount.exfat-fuse"]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return f"golden disks need {', '.join(missing)} (make test installs them)"
    return None


@dataclass(frozen=True)
class PartSpec:
    fs: str  # ext4, ntfs, vfat, exfat, btrfs, xfs, swap, or "unknown" (old data kept as is)
    size: int  # bytes; 0 for the rest of the disk
    files: tuple[Path, ...] = ()  # files and directories copied into its root
    name: str = ""  # GPT partition name


@dataclass(frozen=True)
class GoldenDisk:
    path: Path
    table: PartitionTable
    specs: tuple[PartSpec, ...]

    def partition(self, number: int) -> Partition:
        return next(p for p in self.table.partitions if p.number == number)

    def spec(self, number: int) -> PartSpec:
        """How partition ``number`` was made."""
        return self.specs[[p.number for p in self.table.partitions].index(number)]

    def number_of(self, fs: str) -> int:
        """The first partition holding filesystem ``fs``."""
        return next(p.number for p, s in zip(self.table.partitions, self.specs, strict=True)
                    if s.fs == fs)


def build_disk(path: Path, size: int, parts: Sequence[PartSpec], *, label: str = "gpt",
               seed: int = 1, old_data: bool = True) -> GoldenDisk:
    """Make the disk image ``path``: old data everywhere, then the table, then each
    filesystem with its files."""
    with open(path, "wb") as f:
        f.truncate(size)
        if old_data:
            write_old_data(f, size, seed)
    script = [f"label: {'gpt' if label == 'gpt' else 'dos'}"]
    types = GPT_TYPE if label == "gpt" else MBR_TYPE
    for spec in parts:
        fields = [f"type={types[spec.fs]}"]
        if spec.size:
            fields.insert(0, f"size={spec.size // 512}")
        if spec.name and label == "gpt":
            fields.append(f'name="{spec.name}"')
        script.append(", ".join(fields))
    _run(["sfdisk", "-q", "--no-reread", "--wipe", "never", str(path)],
         input="\n".join(script) + "\n")
    table = read_table(str(path), size)
    for spec, part in zip(parts, table.partitions, strict=True):
        if spec.fs == "unknown":
            continue
        with loop_device(path, part) as device:
            _run([*MKFS[spec.fs], device])
            if spec.files:
                copy_into(spec.fs, device, spec.files)
    return GoldenDisk(path, table, tuple(parts))


def write_old_data(f: BinaryIO, size: int, seed: int) -> None:
    """Incompressible bytes over the whole disk: what deleted files leave behind."""
    rng = random.Random(seed)
    f.seek(0)
    left = size
    while left > 0:
        chunk = min(left, 4 * MiB)
        f.write(rng.randbytes(chunk))
        left -= chunk


@contextlib.contextmanager
def loop_device(path: Path | str, part: Partition | None = None, *,
                read_only: bool = False) -> Iterator[str]:
    """A loop device over ``path`` (one partition of it, if given); detached afterwards."""
    argv = ["losetup", "--find", "--show"]
    if part is not None:
        argv += ["--offset", str(part.start), "--sizelimit", str(part.size)]
    if read_only:
        argv.append("--read-only")
    device = _run([*argv, str(path)]).strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], capture_output=True, check=False)


@contextlib.contextmanager
def mounted(fs: str, device: str, *, read_only: bool) -> Iterator[Path]:
    """``device`` mounted on a fresh directory (the kernel for ext4, btrfs and xfs; FUSE for
    NTFS and exFAT, which this kernel lacks)."""
    mountpoint = Path(tempfile.mkdtemp(prefix="mcastd-mnt-"))
    options = ["-o", "ro"] if read_only else []
    if fs == "ntfs":
        argv = ["mount", "-t", "ntfs-3g", *options, device, str(mountpoint)]
    elif fs == "exfat":
        argv = ["mount.exfat-fuse", *options, device, str(mountpoint)]
    else:
        argv = ["mount", "-t", fs, *(["-o", "ro,norecovery"] if read_only and fs == "xfs"
                                     else options), device, str(mountpoint)]
    try:
        _run(argv)
        try:
            yield mountpoint
        finally:
            _run(["umount", str(mountpoint)])
    finally:
        mountpoint.rmdir()


def copy_into(fs: str, device: str, files: Sequence[Path]) -> None:
    if fs == "vfat":  # the kernel here cannot mount FAT: mtools writes it directly
        for item in files:
            _run(["mcopy", "-s", "-Q", "-i", device, str(item), "::/"])
        return
    with mounted(fs, device, read_only=False) as root:
        for item in files:
            target = root / item.name
            if item.is_dir():
                # Regular files and directories only: FAT and exFAT have no symlinks, and
                # following them would loop (/usr/bin/X11 → .).
                shutil.copytree(item, target, ignore=_symlinks, dirs_exist_ok=True)
            else:
                shutil.copy2(item, target)
        _run(["sync"])


def _symlinks(directory: str, names: list[str]) -> set[str]:
    return {name for name in names if os.path.islink(os.path.join(directory, name))}


def file_tree(fs: str, device: str) -> dict[str, str]:
    """Every regular file of the filesystem on ``device``: its path → SHA-256."""
    if fs == "vfat":
        with tempfile.TemporaryDirectory(prefix="mcastd-fat-") as tmp:
            _run(["mcopy", "-s", "-n", "-Q", "-i", device, "::/", tmp])
            return _hash_tree(Path(tmp))
    with mounted(fs, device, read_only=True) as root:
        return _hash_tree(root)


def fsck(fs: str, device: str) -> tuple[bool, str]:
    """The filesystem's own check, changing nothing: (clean, what it printed)."""
    proc = subprocess.run([*FSCK[fs], device], capture_output=True, text=True, check=False)
    return proc.returncode == 0, proc.stdout + proc.stderr


def partition_tree(path: Path | str, part: Partition, fs: str) -> dict[str, str]:
    with loop_device(path, part, read_only=True) as device:
        return file_tree(fs, device)


def partition_fsck(path: Path | str, part: Partition, fs: str) -> tuple[bool, str]:
    with loop_device(path, part, read_only=True) as device:
        return fsck(fs, device)


def _hash_tree(root: Path) -> dict[str, str]:
    tree = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                continue
            tree[str(full.relative_to(root))] = hashlib.sha256(full.read_bytes()).hexdigest()
    return tree


def _run(argv: list[str], input: str | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, input=input, check=False)
    if proc.returncode != 0:
        raise DiskBuildError(f"{' '.join(argv)} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def classroom_disk(path: Path, *, scale: float = 1.0, label: str = "gpt",
                   seed: int = 1) -> GoldenDisk:
    """A laptop's disk as the benchmark and the demo use it: an ESP with boot files, an ext4
    root, a little swap and an NTFS data partition, holding real files copied from this
    system, and free space everywhere still holding old data. ``scale`` 1.0 is a 2 GiB disk
    with ~600 MiB of files in ext4 and ~220 MiB in NTFS; the demo uses a small one."""
    def existing(*names: str) -> tuple[Path, ...]:
        return tuple(p for p in map(Path, names) if p.exists())

    boot = existing("/usr/share/doc/bash", "/usr/share/doc/python3.11")
    if scale >= 1.0:
        root = existing("/usr/bin", "/usr/share/doc", "/usr/lib/python3.11", "/usr/share/locale")
        data = existing("/usr/share/locale", "/usr/lib/python3.11")
    else:
        # Not /usr/share/doc whole: what the machine has installed would decide whether it
        # fits (qemu's documentation alone overflowed this root).
        root = existing("/usr/lib/python3.11/email", "/usr/lib/python3.11/json",
                        "/usr/lib/python3.11/encodings", "/usr/lib/python3.11/lib-dynload",
                        "/usr/lib/python3.11/config-3.11-x86_64-linux-gnu",
                        "/usr/share/doc/bash", "/usr/share/doc/python3.11")
        data = existing("/usr/lib/python3.11/asyncio", "/usr/share/doc/bash")
    size = int(2048 * MiB * scale) // MiB * MiB

    def mib(n: float, least: int) -> int:
        return max(least, int(n * scale)) * MiB

    # The last partition takes the rest: nothing is left after it (which a capture would
    # have to keep whole).
    specs = [PartSpec("vfat", mib(100, 40), boot, "EFI"),
             PartSpec("ext4", mib(1200, 100), root, "root"),
             PartSpec("swap", mib(64, 8)), PartSpec("ntfs", 0, data, "data")]
    return build_disk(path, size, specs, label=label, seed=seed)


def block_digests(path: Path, block_size: int) -> list[bytes]:
    """A digest of every ``block_size`` block of the disk image ``path``."""
    digests = []
    with open(path, "rb") as f:
        while block := f.read(block_size):
            digests.append(hashlib.blake2b(block, digest_size=16).digest())
    return digests


def update_files(golden: GoldenDisk, number: int, blocks: int, block_size: int,
                 seed: int = 7) -> int:
    """An update of the golden laptop: regions of files in partition ``number`` rewritten
    with bytes of other files there (as a new version of a program is like the old), in
    rounds, until at least ``blocks`` of the disk's ``block_size`` blocks differ from before
    (the filesystem's own metadata and journal count too). Returns how many differ."""
    spec = golden.spec(number)
    before = block_digests(golden.path, block_size)
    rng = random.Random(seed)
    changed = 0
    with loop_device(golden.path, golden.partition(number)) as device:
        while changed < blocks:
            with mounted(spec.fs, device, read_only=False) as root:
                files = sorted(p for p in root.rglob("*")
                               if p.is_file() and not p.is_symlink()
                               and p.stat().st_size >= 64 * 1024)
                # A round patches half of what is left to change, since metadata blocks
                # change along.
                for _ in range(max(1, (blocks - changed) // 2)):
                    target, donor = rng.choice(files), rng.choice(files)
                    size = min(target.stat().st_size, donor.stat().st_size, 64 * 1024)
                    at = rng.randrange(0, target.stat().st_size - size + 1)
                    with open(donor, "rb") as src:
                        src.seek(rng.randrange(0, donor.stat().st_size - size + 1))
                        patch = src.read(size)
                    with open(target, "r+b") as dst:
                        dst.seek(at)
                        dst.write(patch)
            after = block_digests(golden.path, block_size)
            changed = sum(a != b for a, b in zip(before, after, strict=True))
    return changed


def golden_trees(golden: GoldenDisk) -> dict[int, dict[str, str]]:
    """Every filesystem partition's file tree, by partition number (swap and unknown left out)."""
    return {p.number: partition_tree(golden.path, p, s.fs)
            for p, s in zip(golden.table.partitions, golden.specs, strict=True)
            if s.fs not in ("swap", "unknown")}


def disk_problems(path: Path, size: int, golden: GoldenDisk,
                  trees: dict[int, dict[str, str]]) -> list[str]:
    """What is wrong with a laptop's disk imaged from ``golden``, one sentence each (none:
    a clean GPT, every filesystem fsck-clean and holding exactly the golden files)."""
    problems = []
    if golden.table.label == "gpt" and (gpt := verify_gpt(str(path))):
        problems.append(f"GPT: {gpt}")
    table = read_table(str(path), size)
    for part, spec in zip(table.partitions, golden.specs, strict=True):
        if part.number not in trees:
            continue
        clean, report = partition_fsck(path, part, spec.fs)
        if not clean:
            problems.append(f"partition {part.number} ({spec.fs}) fails fsck: "
                            f"{report.strip().splitlines()[-1:]}")
        elif partition_tree(path, part, spec.fs) != trees[part.number]:
            problems.append(f"partition {part.number} ({spec.fs}) holds other files")
    return problems
