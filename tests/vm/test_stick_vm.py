"""The boot stick, end to end on virtual laptops (make vm-test): qemu under TCG boots the
stick on UEFI (one with Secure Boot on) and BIOS, receives the golden disk from a real
`mcastd serve` in the lab, reboots; then each laptop boots from its NVMe disk alone and its
serial console must show the golden disk's marker."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.net import IFNAME
from lab.vm.golden import GOLDEN_HOSTNAME, MARKER
from lab.vm.qemu import Laptop
from lab.vm.room import VmRoom, vm_room
from stick.build.system import System

from .conftest import GOLDEN_SIZE, PHASES, Golden
from .stickcopy import (
    build_stick,
    copy_stick,
    empty_disk,
    is_all_zero,
    range_digest,
    report,
    set_stick_file,
    stick_file,
)

pytestmark = pytest.mark.vm
MIB = 1 << 20
DISK_SIZE = GOLDEN_SIZE + 256 * MIB  # larger than the golden disk: the GPT is fixed up
BOOT_TIMEOUT = 240.0  # power-on to receiving, under TCG
DEPLOY_TIMEOUT = 600.0


LOGS = Path(__file__).resolve().parents[2] / ".vm-logs"  # serial logs kept for a look


_SENDERS: list[subprocess.Popen[bytes]] = []  # the senders the running test started
_OUTPUT: dict[int, Path] = {}  # a sender's pid → its output files' stem (.out, .err)


@pytest.fixture
def room(request: pytest.FixtureRequest) -> Iterator[VmRoom]:
    """The laptops' disks, sticks and serial logs live in .vm-logs/<test>; the disk images
    go when the test passes, the logs stay until the next run."""
    workdir = LOGS / request.node.name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with vm_room(workdir) as r:
        yield r
    while _SENDERS:  # killed with the lab; a test that failed early never read their pipes
        _SENDERS.pop().communicate()
    call = request.node.stash.get(PHASES, {}).get("call")
    if call is not None and call.passed:
        for image in workdir.glob("*.img"):
            image.unlink()


# The golden disk's partitions, BIOS boot partition to the end of its root: a laptop's disk
# must hold these bytes exactly (its GPT headers differ: they are fixed for the larger disk).
PARTITIONS = (MIB, (GOLDEN_SIZE - 34 * 512) // MIB * MIB - MIB)


def holds_the_golden_disk(disk: Path, golden: Golden) -> bool:
    return range_digest(disk, *PARTITIONS) == range_digest(golden.disk, *PARTITIONS)


def stop(sender: subprocess.Popen[bytes]) -> None:
    sender.kill()
    sender.communicate()


def serve(room: VmRoom, golden: Golden, receivers: int, *extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "mcastd", "serve", str(golden.image), "--interface", IFNAME,
            "--min-receivers", str(receivers), "--key", str(golden.key), "--json",
            "--name", "room-12", *extra]
    # To files, not pipes: a pipe nobody reads fills up with progress lines during a long
    # deployment, and a sender blocked writing to it falls silent to its laptops.
    stem = room.workdir / f"sender-{len(_SENDERS)}"
    with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
        sender = room.lab.popen(room.sender, argv, stdout=out, stderr=err)
    _SENDERS.append(sender)
    _OUTPUT[sender.pid] = stem
    return sender


def final_of(sender: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    sender.wait(timeout=timeout)
    stem = _OUTPUT[sender.pid]
    out, err = Path(f"{stem}.out").read_bytes(), Path(f"{stem}.err").read_bytes()
    for line in reversed(out.decode().splitlines()):
        event = json.loads(line)
        if event.get("event") == "final":
            return event  # type: ignore[no-any-return]
    raise AssertionError(f"the sender gave no final report: {err.decode()[-2000:]}")


def record(name: str, numbers: dict[str, float]) -> None:
    """The numbers the README quotes, kept in .vm-logs/timings.json."""
    path = LOGS / "timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = numbers
    path.write_text(json.dumps(data, indent=1) + "\n")


def read_ppm(ppm: Path) -> tuple[int, int, bytes]:
    """A binary PPM screen dump's width, height and RGB pixels."""
    fields = ppm.read_bytes().split(maxsplit=4)  # P6, width, height, maxval, pixels
    width, height = int(fields[1]), int(fields[2])
    return width, height, fields[4][: width * height * 3]


def lit_share(pixels: bytes, start: int, end: int) -> float:
    """The share of the pixels from ``start`` to ``end`` (pixel indexes) that are not black."""
    lit = sum(1 for i in range(start * 3, end * 3, 3) if pixels[i:i + 3] != b"\0\0\0")
    return lit / max(1, end - start)


def shows_the_view(ppm: Path) -> bool:
    """Whether a screen dump shows the agent's full-screen view: its title bar (a lit row of
    inverse video across the top) above lines of text."""
    width, height, pixels = read_ppm(ppm)
    bar = max(lit_share(pixels, y * width, y * width + width * 3 // 4) for y in range(48))
    return bar > 0.9 and lit_share(pixels, 0, width * height) > 0.01


def wait_for_the_view(laptop: Laptop, out: Path, timeout: float = 30.0) -> bool:
    """Whether tty1 shows the full-screen view within ``timeout`` seconds (a dump can land
    while a slow laptop is still writing a frame)."""
    deadline = time.monotonic() + timeout
    while True:
        if shows_the_view(laptop.screendump(out)):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)


def boots_golden(room: VmRoom, laptop: Laptop) -> str:
    """Boot from the NVMe disk alone; the golden marker's line."""
    room.boot(laptop, stick=False)
    line = laptop.wait_for(MARKER + r" firmware=(\w+) hostname=(\S+)", BOOT_TIMEOUT)
    laptop.wait_off(60)
    return line.group(0)


def test_a_room_of_uefi_secure_boot_and_bios_laptops_is_imaged_and_named(
        room: VmRoom, golden: Golden, stick_system: System, cache: Path) -> None:
    firmwares = ["uefi", "uefi-secure-boot", "bios"]
    names = ["lab-pc-01", "lab-pc-02", "lab-pc-03"]
    macs = [f"52:54:00:4d:43:{i:02x}" for i in range(3)]
    hostnames = room.workdir / "hostnames.csv"
    hostnames.write_text("MAC;name\r\n" + "".join(f"{m.upper()};{n}\r\n"
                                                  for m, n in zip(macs, names, strict=True)))
    stick = build_stick(room.workdir / "stick.img", cache, "--trust", str(golden.trust),
                        "--hostnames", str(hostnames), "--then", "reboot")
    laptops = []
    for i, firmware in enumerate(firmwares):
        own = copy_stick(stick, room.workdir / f"stick{i}.img")
        disk = empty_disk(room.workdir / f"nvme{i}.img", DISK_SIZE)
        laptops.append(room.laptop(f"pc{i}", firmware, own, [disk]))
    sender = serve(room, golden, len(laptops))
    started = time.monotonic()
    for laptop in laptops:
        room.boot(laptop)
    for laptop, firmware in zip(laptops, firmwares, strict=True):
        said = {"uefi": "UEFI, Secure Boot off", "uefi-secure-boot": "UEFI, Secure Boot on",
                "bios": "BIOS"}[firmware]
        laptop.wait_for(rf"mcastd-stick: starting \({said}\)", BOOT_TIMEOUT)
    for laptop in laptops:
        laptop.wait_for(r"mcastd-stick: receiving onto /dev/nvme0n1", BOOT_TIMEOUT)
    for laptop in laptops:
        laptop.wait_for(r"mcastd-stick: joined; receiving", BOOT_TIMEOUT)
    receiving = time.monotonic() - started
    assert wait_for_the_view(laptops[0], room.workdir / "receiving.ppm")  # not a blank tty1
    for laptop in laptops:
        laptop.wait_for(r"mcastd-stick: OK: ", DEPLOY_TIMEOUT)
        laptop.wait_off(120)  # rebooted: qemu runs with -no-reboot
    record("room", {"laptops": len(laptops), "power_on_to_receiving_s": round(receiving, 1),
                    "power_on_to_rebooted_s": round(time.monotonic() - started, 1),
                    "stick_bytes": stick.stat().st_size,
                    "system_build_s": round(stick_system.seconds, 1),
                    "system_bytes": stick_system.initrd.stat().st_size
                    + stick_system.vmlinuz.stat().st_size,
                    "ram_bytes": stick_system.unpacked_bytes})
    final = final_of(sender, 60)
    assert final["ok"], final["message"]
    rows = {row["host"]["mac"]: row for row in final["receivers"]}
    for laptop, name, firmware in zip(laptops, names, firmwares, strict=True):
        row = rows[laptop.mac]
        assert row["state"] == "done"
        assert row["host"]["disk_serial"] == laptop.disk_serial(0)
        assert row["host"]["dmi_serial"] == f"{laptop.name.upper()}-SERIAL"
        facts = report(laptop.stick or Path(), laptop.mac)
        assert facts["result"] == "ok" and facts["bytes_verified"] > 0
        assert facts["disk_serial"] == laptop.disk_serial(0)
        line = boots_golden(room, laptop)
        want = "bios" if firmware == "bios" else "uefi"
        assert line == f"{MARKER} firmware={want} hostname={name}"
    esp = (2 * MIB, 48 * MIB)  # the golden ESP arrived byte for byte
    for laptop in laptops:
        assert range_digest(laptop.disks[0], *esp) == range_digest(golden.disk, *esp)
        verify = subprocess.run(["sgdisk", "-v", str(laptop.disks[0])], capture_output=True,
                                text=True, check=False)
        assert "No problems found" in verify.stdout


def test_two_internal_disks_wait_for_the_stick_to_name_one(
        room: VmRoom, golden: Golden, stick_system: System, cache: Path) -> None:
    stick = build_stick(room.workdir / "stick.img", cache, "--trust", str(golden.trust),
                        "--then", "poweroff")
    disks = [empty_disk(room.workdir / f"nvme{i}.img", DISK_SIZE) for i in range(2)]
    laptop = room.laptop("dual", "uefi", stick, disks)
    room.boot(laptop)
    laptop.wait_for(r"target auto cannot choose: this laptop has 2 internal disks", BOOT_TIMEOUT)
    laptop.wait_for(r"serial DUAL-NVME1", 30)  # the list names model, size and serial
    laptop.power_cut()
    assert all(is_all_zero(d) for d in disks)
    conf = stick_file(stick, "mcastd.conf").decode()
    conf = conf.replace('target = "auto"', f'target = "serial={laptop.disk_serial(1)}"')
    set_stick_file(stick, "mcastd.conf", conf.encode(), room.workdir / "conf")
    sender = serve(room, golden, 1)
    room.boot(laptop)
    laptop.wait_for(r"write: /dev/nvme1n1 as mcastd.conf says", BOOT_TIMEOUT)
    laptop.wait_for(r"mcastd-stick: OK: ", DEPLOY_TIMEOUT)
    laptop.wait_off(120)
    assert final_of(sender, 60)["ok"]
    assert is_all_zero(disks[0])
    assert holds_the_golden_disk(disks[1], golden)
    assert boots_golden(room, laptop).endswith(f"hostname={GOLDEN_HOSTNAME}")


def test_a_power_cut_mid_way_resumes_from_the_sticks_journal(
        room: VmRoom, golden: Golden, stick_system: System, cache: Path) -> None:
    stick = build_stick(room.workdir / "stick.img", cache, "--trust", str(golden.trust),
                        "--then", "poweroff")
    laptop = room.laptop("cut", "uefi", stick, [empty_disk(room.workdir / "nvme.img", DISK_SIZE)])
    # Slow enough to cut in the middle, and the sender stays for the laptop to boot again:
    # in a classroom the other laptops keep the session going.
    sender = serve(room, golden, 1, "--rate", "4M", "--fixed-rate", "--late-join-window", "900")
    room.boot(laptop)
    laptop.wait_for(r"mcastd-stick: receiving [3-9]\d %", BOOT_TIMEOUT + 300)
    laptop.power_cut()
    room.boot(laptop)
    resumed = laptop.wait_for(r"resuming: (\d+) of (\d+) blocks", BOOT_TIMEOUT)
    assert int(resumed.group(1)) > 0
    laptop.wait_for(r"mcastd-stick: OK: ", DEPLOY_TIMEOUT)
    laptop.wait_off(120)
    stop(sender)
    assert holds_the_golden_disk(laptop.disks[0], golden)
    assert boots_golden(room, laptop).endswith(f"hostname={GOLDEN_HOSTNAME}")


def test_a_stick_that_trusts_another_key_writes_nothing(
        room: VmRoom, golden: Golden, stick_system: System, cache: Path) -> None:
    other = room.workdir / "other.key"
    subprocess.run([sys.executable, "-m", "mcastd", "keygen", "--key", str(other)], check=True,
                   capture_output=True)
    stick = build_stick(room.workdir / "stick.img", cache, "--trust", str(other) + ".pub")
    disk = empty_disk(room.workdir / "nvme.img", DISK_SIZE)
    laptop = room.laptop("untrusting", "uefi", stick, [disk])
    sender = serve(room, golden, 1, "--max-wait", "600")
    room.boot(laptop)
    laptop.wait_for(r"ignored session 'room-12' from \S+: .*", BOOT_TIMEOUT)
    laptop.power_cut()
    stop(sender)
    assert is_all_zero(disk)


def test_a_capture_stick_turns_the_golden_laptop_into_an_image_on_a_usb_disk(
        room: VmRoom, golden: Golden, stick_system: System, cache: Path) -> None:
    stick = build_stick(room.workdir / "stick.img", cache, "--capture")
    cfg = stick_file(stick, "EFI/BOOT/grub.cfg").decode()
    assert "capture this laptop" in cfg and "set timeout=10" in cfg
    # The admin picks the capture entry in the menu.
    cfg = cfg.replace("set default=0", "set default=1").replace("set timeout=10", "set timeout=0")
    set_stick_file(stick, "EFI/BOOT/grub.cfg", cfg.encode(), room.workdir / "cfg")
    source = room.workdir / "golden-laptop.img"
    subprocess.run(["cp", "--sparse=always", str(golden.disk), str(source)], check=True)
    before = range_digest(source, 0, GOLDEN_SIZE)
    usb = empty_disk(room.workdir / "usb.img", 512 * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "images", str(usb)], check=True)
    laptop = room.laptop("golden", "uefi", stick, [source])
    laptop.usb_disks.append(usb)
    room.boot(laptop)
    laptop.wait_for(r"mcastd-stick: capturing /dev/nvme0n1 into (\S+) on the USB disk", 300)
    laptop.wait_for(r"mcastd-stick: OK: ", DEPLOY_TIMEOUT)
    laptop.wait_for(r"this laptop may be switched off", 60)  # it waits, never reboots
    laptop.power_cut()
    assert range_digest(source, 0, GOLDEN_SIZE) == before  # the source was only read
    listing = subprocess.run(["debugfs", "-R", "ls -p /mcastd-images", str(usb)],
                             capture_output=True, text=True, check=True).stdout
    names = [f.split("/")[5] for f in listing.splitlines() if f.count("/") >= 6
             and f.split("/")[5].endswith(".mci")]
    assert len(names) == 1, listing
    image = room.workdir / "captured.mci"
    subprocess.run(["debugfs", "-R", f"dump /mcastd-images/{names[0]} {image}", str(usb)],
                   check=True, capture_output=True)
    checked = subprocess.run([sys.executable, "-m", "mcastd", "image", "verify", str(image)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
