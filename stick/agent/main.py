"""The laptop side of the boot stick: settings, network, target, receive, verdict, hooks, then.

Started by the RAM system's /init on tty1 with no login. Every refusal is one sentence on the
screen and the serial console, and a failed laptop waits there: it never reboots into a loop.
"""

from __future__ import annotations

import re
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import CONFIG_NAME, ConfigError, StickConfig, parse_config
from . import capture, disks, network, probe
from .hooks import hook_environment, partitions_of, reread_partition_table, run_hooks
from .hostnames import HostnamesError, name_for
from .receive import receiver_argv, run_receiver
from .screen import Screen
from .stickfs import Stick, StickError, boot_args, firmware, mount_stick, unmount_stick

NETWORK_RETRY = 5.0
DISK_RESCAN = 5.0
PROBE_TIMEOUT = 20.0  # for the session's announcement, when the disk size decides
FAMILY_WAIT = 30.0  # listening for the session on both families, before saying so


class Failed(Exception):
    """This laptop cannot go on; the message is the sentence on its screen."""


def fat_name(text: str) -> str:
    """``text`` (a MAC, a disk serial) as a FAT file name: no colons, slashes or the like."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", text).lower()


class Agent:
    def __init__(self, screen: Screen) -> None:
        self.screen = screen

    def run(self) -> bool:
        screen = self.screen
        args = boot_args(Path("/proc/cmdline").read_text())
        screen.log(f"starting ({firmware()})")
        try:
            stick = mount_stick(args.volume_id)
        except StickError as exc:
            raise Failed(str(exc)) from None
        config = self._config(stick)
        if args.mode == "capture":
            return self._capture(stick)
        screen.title = f"mcastd boot stick: {config.session or 'first session announced'}"
        link = self._network()
        screen.fact("network", f"{link.ifname} {link.mac} {link.address} ({link.how})")
        target = self._target(config.target, stick, "write",
                              lambda: probe.needed_size(config, stick.path, link.ifname,
                                                        PROBE_TIMEOUT))
        screen.fact("disk", target.describe())
        ipv6 = self._family(config, stick, link)  # after the disk: it may wait for the admin
        journal = stick.path / "journals" / fat_name(f"{link.mac}-{target.serial or target.name}")
        report = stick.path / "reports" / f"{fat_name(link.mac)}.json"
        (stick.path / "reports").mkdir(exist_ok=True)
        screen.log(f"receiving onto {target.device}")
        received = run_receiver(
            receiver_argv(config, stick.path, target.device, link.ifname, journal, report,
                          ipv6),
            self._progress, lambda level, text: screen.log(text))
        if not received.ok:
            raise Failed(received.message)
        self._hooks(stick, target.device, link.mac)
        screen.verdict(True, f"{received.message} ({received.seconds:.0f} s)")
        self._then(config.then)
        return True

    def _capture(self, stick: Stick) -> bool:
        """The golden laptop: its one internal disk (or the one chosen) becomes an image.
        It then waits whatever mcastd.conf says: rebooting into the stick's default entry
        would receive a session onto the golden disk itself."""
        self.screen.title = "mcastd boot stick: capture this laptop (golden)"
        source = self._target("auto", stick, "capture")
        self.screen.fact("disk", source.describe())
        where = capture.destination(disks.list_disks(), stick.disk, stick.path, self.screen.log)
        out = where.directory / capture.image_name(source, time.time())
        self.screen.log(f"capturing {source.device} into {out.name} on {where.what}")
        ok, message = capture.run_capture(source, out, self._progress, self.screen.log)
        if not where.on_stick:
            capture.unmount_images()
        if not ok:
            hint = (f"; {capture.FAT32_LIMIT}: plug in a second USB disk (ext4, exFAT or NTFS) "
                    "for the image" if where.on_stick and "large" in message.lower() else "")
            raise Failed(message.rstrip(".") + hint + ".")
        self.screen.verdict(True, f"{message} The image is {out.name} on {where.what}.")
        self._then("wait")
        return True

    def _config(self, stick: Stick) -> StickConfig:
        try:
            return parse_config((stick.path / CONFIG_NAME).read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise Failed(f"the stick has no {CONFIG_NAME}: build it again with mcastd stick "
                         "build.") from None
        except ConfigError as exc:
            raise Failed(str(exc)) from None

    def _network(self) -> network.Link:
        said = False
        while True:
            links = network.bring_up(self.screen.log if not said else lambda _line: None)
            if links:
                return links[0]
            if not said:  # said once; the laptop keeps trying quietly
                said = True
                self.screen.log("no network: plug a cable into this laptop's wired port "
                                f"(trying again every {NETWORK_RETRY:.0f} s)")
            time.sleep(NETWORK_RETRY)

    def _family(self, config: StickConfig, stick: Stick, link: network.Link) -> bool:
        """Whether the session runs on IPv6: where the link has both families' addresses,
        the one it is announced on (waits for it, as mcast-receive would)."""
        if not link.ipv6 or link.how == "ipv6":
            return link.how == "ipv6"
        said = False
        ignored: set[str] = set()

        def on_ignored(text: str) -> None:  # as mcast-receive would say it, once
            if text not in ignored:
                ignored.add(text)
                self.screen.log(text)

        while (ipv6 := probe.announced_on_ipv6(config, stick.path, link.ifname, FAMILY_WAIT,
                                               on_ignored)) is None:
            if not said:  # said once; the laptop keeps listening
                said = True
                self.screen.log("no session announced yet, on IPv4 or IPv6: start mcastd "
                                "serve (still listening)")
        self.screen.log(f"the session is announced on {'IPv6' if ipv6 else 'IPv4'}")
        return ipv6

    def _target(self, target: str, stick: Stick, purpose: str,
                needed: Callable[[], int | None] | None = None) -> disks.Disk:
        """The disk to ``purpose`` (write, capture); waits for the admin when not clear.
        ``needed`` tells the image's size when several internal disks leave auto unsure."""
        waiting = ""
        size: int | None = None
        while True:
            found = disks.list_disks()
            choice = disks.choose(target, found, stick.disk, size)
            if choice.disk is None and choice.several and needed is not None and size is None:
                self.screen.log("several internal disks: asking the session how large a disk "
                                "its image needs")
                size = needed()
                if size is not None:
                    continue
            if choice.disk is not None:
                self.screen.log(f"{purpose}: {choice.reason}")
                return choice.disk
            if choice.reason != waiting:  # said once, not every rescan
                waiting = choice.reason
                self.screen.log(choice.reason)
                for number, disk in enumerate(found, 1):
                    self.screen.log(f"  {number}. {disk.describe()}")
            key = self.screen.read_key(DISK_RESCAN)
            if key is not None and key.isdigit() and 1 <= int(key) <= len(found):
                picked = found[int(key) - 1]
                if picked.name != stick.disk and not picked.read_only:
                    self.screen.log(f"{purpose}: {picked.device}, chosen at the keyboard")
                    return picked

    def _progress(self, event: dict[str, Any]) -> None:
        self.screen.show_progress(str(event.get("state", "")), float(event.get("percent") or 0),
                                  float(event.get("rate_bps") or 0), event.get("eta"))

    def _hooks(self, stick: Stick, device: str, mac: str) -> None:
        hooks_dir = stick.path / "post-deploy"
        if not hooks_dir.is_dir() or not any(hooks_dir.iterdir()):
            return
        try:
            name = name_for(mac, stick.path / "hostnames.csv")
        except HostnamesError as exc:
            raise Failed(f"the image verified, but {exc}") from None
        reread_partition_table(device, log=self.screen.log)
        env = hook_environment(device, partitions_of(device), mac, name)
        for result in run_hooks(hooks_dir, env, self.screen.log):
            self.screen.log(f"post-deploy {result.name}: {result.message}")
            if result.failed:
                raise Failed(f"the image verified, but post-deploy hook {result.name} failed: "
                             f"{result.message}")

    def _then(self, action: str) -> None:
        unmount_stick()
        if action == "wait":
            self.screen.log("done; this laptop may be switched off")
            while True:
                time.sleep(3600)
        self.screen.log(f"{action} in 3 s")
        time.sleep(3)
        subprocess.run(["busybox", action, "-f"], check=False)


def main() -> int:
    screen = Screen()
    try:
        Agent(screen).run()
    except Failed as exc:
        screen.verdict(False, str(exc))
    except Exception:  # a bug must still end on the FAILED screen, with the evidence
        for line in traceback.format_exc().splitlines():
            screen.log(line)
        screen.verdict(False, "the stick's program failed: the lines above say where.")
    unmount_stick()
    while True:  # a failed laptop waits on its verdict for the admin
        time.sleep(3600)
