"""One virtual laptop: qemu under TCG (guests hang under KVM on this machine), UEFI (OVMF,
optionally with Secure Boot and Microsoft's keys enrolled) or BIOS (SeaBIOS), a USB stick on
xHCI, NVMe disks, an Intel e1000e NIC on a tap device of the lab's switch, a serial log file.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

OVMF = Path("/usr/share/OVMF")
FIRMWARES = ("uefi", "uefi-secure-boot", "bios")


class VmError(Exception):
    """A virtual laptop did not do what the test waited for; the message says what."""


@dataclass
class Laptop:
    name: str  # "uefi0"
    firmware: str  # one of FIRMWARES
    workdir: Path
    disks: list[Path]  # NVMe disk image files, in order
    mac: str
    tap: str
    stick: Path | None = None
    usb_disks: list[Path] = field(default_factory=list)  # more USB disks, after the stick
    memory_mib: int = 1536
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def monitor(self) -> Path:
        # Not in workdir: a unix socket's path has at most 107 bytes.
        return Path(tempfile.gettempdir()) / f"mcastd-vm-{os.getpid()}-{self.name}.monitor"

    def screendump(self, out: Path, timeout: float = 10.0) -> Path:
        """What the laptop's screen (tty1) shows now, as a PPM picture."""
        out.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as monitor:
            monitor.settimeout(timeout)
            monitor.connect(str(self.monitor))
            monitor.sendall(f"screendump {out}\n".encode())
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not (out.exists() and out.stat().st_size):
                time.sleep(0.2)
            time.sleep(0.5)  # written whole
        if not out.exists():
            raise VmError(f"{self.name}: the monitor wrote no screen dump")
        return out

    @property
    def serial_log(self) -> Path:
        return self.workdir / f"{self.name}.serial.log"

    def disk_serial(self, index: int) -> str:
        return f"{self.name.upper()}-NVME{index}"

    def argv(self) -> list[str]:
        # -cpu max: the instruction sets TCG emulates (SSE4, AES, ...), as a laptop has them;
        # the default qemu64 model lacks what the wheels' C extensions use (SIGILL).
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m",
                str(self.memory_mib), "-smp", "1",
                "-display", "none", "-monitor", f"unix:{self.monitor},server,nowait",
                "-no-reboot",
                "-serial", f"file:{self.serial_log}",
                "-smbios", f"type=1,serial={self.name.upper()}-SERIAL"]
        if self.firmware == "bios":
            argv += ["-machine", "q35"]
        else:
            secure = self.firmware == "uefi-secure-boot"
            code = OVMF / ("OVMF_CODE_4M.ms.fd" if secure else "OVMF_CODE_4M.fd")
            variables = self.workdir / f"{self.name}.vars.fd"
            if not variables.exists():  # each laptop its own NVRAM, as a real one has
                shutil.copy(OVMF / ("OVMF_VARS_4M.ms.fd" if secure else "OVMF_VARS_4M.fd"),
                            variables)
            argv += ["-machine", "q35,smm=on" if secure else "q35"]
            if secure:
                argv += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
            argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                     "-drive", f"if=pflash,format=raw,unit=1,file={variables}"]
        argv += ["-device", "qemu-xhci,id=xhci"]
        if self.stick is not None:
            argv += ["-drive", f"if=none,id=stick,format=raw,file={self.stick}",
                     "-device", "usb-storage,bus=xhci.0,drive=stick,removable=on,bootindex=0"]
        for index, disk in enumerate(self.usb_disks):
            argv += ["-drive", f"if=none,id=usb{index},format=raw,file={disk}",
                     "-device", f"usb-storage,bus=xhci.0,drive=usb{index},removable=on"]
        for index, disk in enumerate(self.disks):
            argv += ["-drive", f"if=none,id=nvme{index},format=raw,file={disk}",
                     "-device", f"nvme,drive=nvme{index},serial={self.disk_serial(index)},"
                                f"bootindex={index + 1}"]
        argv += ["-netdev", f"tap,id=net0,ifname={self.tap},script=no,downscript=no",
                 "-device", f"e1000e,netdev=net0,mac={self.mac}"]
        return argv

    def boot(self, netns: str, *, stick: bool = True) -> None:
        """Power on, with or without the stick plugged in; the serial log starts afresh."""
        if self.process is not None and self.process.poll() is None:
            raise VmError(f"{self.name} is already running")
        keep = self.stick
        if not stick:
            self.stick = None
        try:
            self.serial_log.write_bytes(b"")
            with (self.workdir / f"{self.name}.qemu.log").open("ab") as log:
                self.process = subprocess.Popen(["ip", "netns", "exec", netns, *self.argv()],
                                                stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT,
                                                start_new_session=True)
        finally:
            self.stick = keep

    def serial(self) -> str:
        try:
            return self.serial_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: str, timeout: float,
                 fail_on: str | None = r"mcastd-stick: FAILED: .*") -> re.Match[str]:
        """The first match of ``pattern`` in the serial log, within ``timeout`` seconds; a
        ``fail_on`` line (the stick's FAILED verdict) ends the wait at once."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        failure = re.compile(fail_on) if fail_on else None
        while True:
            log = self.serial()
            match = regex.search(log)
            if match:
                return match
            failed = failure.search(log) if failure else None
            if failed:
                raise VmError(f"{self.name} ended with {failed.group(0)!r} before {pattern!r}; "
                              f"its serial log ends: {self.tail()}")
            if self.process is not None and self.process.poll() is not None:
                match = regex.search(self.serial())
                if match:
                    return match
                raise VmError(f"{self.name} powered off before {pattern!r} appeared; its "
                              f"serial log ends: {self.tail()}")
            if time.monotonic() > deadline:
                raise VmError(f"{self.name}: no {pattern!r} within {timeout:.0f} s; its "
                              f"serial log ends: {self.tail()}")
            time.sleep(0.5)

    def wait_off(self, timeout: float) -> int:
        """Until qemu exits (the guest powered off or rebooted: -no-reboot)."""
        if self.process is None:
            return 0
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise VmError(f"{self.name} still runs after {timeout:.0f} s; its serial log ends: "
                          f"{self.tail()}") from None

    def power_cut(self) -> None:
        """Pull the plug: qemu killed, nothing flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def tail(self, lines: int = 12) -> str:
        return " | ".join(self.serial().splitlines()[-lines:])
