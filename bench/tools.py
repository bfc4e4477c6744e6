"""The programs the benchmark compares, as argv templates for ``bench.lab_run``.

udpcast gets its best settings: ``--min-receivers`` and ``--nokbd`` so it starts as soon as
everyone is there, ``--rexmit-hello-interval`` so a lost connect request is retried (as our
announces are), ``--max-bitrate`` at the link rate when links are shaped, and a variant with
``--fec`` (the benchmark keeps the better of the two per cell). Its rendezvous goes to the
all-hosts group 224.0.0.1 instead of the subnet broadcast: the lab has no broadcast address, and
the data travels by multicast either way.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .lab_run import Tool

UDPCAST_FEC = "8x8/128"  # 8 stripes, 8 redundant blocks per 128: udpcast's documented example
RECEIVER_TIMEOUT = 120


def mcastd(rate_mbit: float | None, extra: tuple[str, ...] = (),
           receiver_extra: tuple[str, ...] = ()) -> Tool:
    sender = [sys.executable, "-m", "mcastd", "serve", "{image}", "--interface", "lab0",
              "--min-receivers", "{receivers}", "--max-wait", "30", "--json", *extra]
    if rate_mbit is not None:
        sender += ["--rate", f"{rate_mbit:g}M"]
    receiver = [sys.executable, "-m", "receiver", "{target}", "--interface", "lab0", "--json",
                "--timeout", str(RECEIVER_TIMEOUT), *receiver_extra]
    return Tool("mcastd", sender, receiver)


def udpcast(rate_mbit: float | None, fec: bool) -> Tool:
    common = ["--interface", "lab0", "--nokbd", "--no-progress", "--mcast-rdv-address",
              "224.0.0.1"]
    # Without --rexmit-hello-interval a receiver whose connect request was lost is never heard
    # again, and --min-receivers then waits forever (seen at 5 % loss).
    sender = ["udp-sender", "--file", "{image}", "--min-receivers", "{receivers}",
              "--rexmit-hello-interval", "250", *common]
    if rate_mbit is not None:
        sender += ["--max-bitrate", f"{rate_mbit:g}m"]
    if fec:
        sender += ["--fec", UDPCAST_FEC]
    receiver = ["udp-receiver", "--file", "{target}", *common]
    return Tool("udpcast+fec" if fec else "udpcast", sender, receiver)


def clonezilla(table: Path, parts: list[tuple[int, int, str]], disk_size: int,
               rate_mbit: float | None) -> Tool:
    """Clonezilla's way, as its scripts run it: the partition table restored with sgdisk, then
    each partition in turn ``partclone.<fs> -c | zstd -3 | udp-sender`` on the sender and
    ``udp-receiver | zstd -d | partclone.<fs> -r`` on the laptops (swap is made anew).
    ``parts``: (start, size, partclone program or "swap") in bytes. The table file is read by
    the laptops from the shared disk (17 KiB, not timed on the wire)."""
    common = "--interface lab0 --nokbd --no-progress --mcast-rdv-address 224.0.0.1"
    rate = f" --max-bitrate {rate_mbit:g}m" if rate_mbit is not None else ""
    send = ["set -e"]
    receive = ["set -e", f"truncate -s {disk_size} {{target}}",
               f"sgdisk --load-backup={table} {{target}} >/dev/null"]
    for start, size, tool in parts:
        loop = f"--offset {start} --sizelimit {size}"
        if tool == "swap":
            receive.append(f"L=$(losetup -f --show {loop} {{target}}); mkswap -q $L; "
                           "losetup -d $L")
            continue
        send.append(f"L=$(losetup -r -f --show {loop} {{image}}); {tool} -c -s $L -o - -q "
                    f"| zstd -3 -T0 -q | udp-sender {common} --min-receivers {{receivers}} "
                    f"--rexmit-hello-interval 250{rate}; losetup -d $L")
        receive.append(f"L=$(losetup -f --show {loop} {{target}}); udp-receiver {common} "
                       f"| zstd -d -q | {tool} -r -s - -o $L -q; losetup -d $L")
    return Tool("clonezilla", ["sh", "-c", "\n".join(send)],
                ["sh", "-c", "\n".join(receive)])
