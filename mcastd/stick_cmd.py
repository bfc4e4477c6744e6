"""`mcastd stick build STICK.img`: the USB image laptops boot to receive (see stick/)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from driver.options import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from driver.units import format_bytes, parse_size
from stick.build.stick_image import StickOptions, build, check_inputs
from stick.build.system import default_cache
from stick.build.tools import BuildError
from stick.config import THEN_ACTIONS, ConfigError, StickConfig


def _stick_size(text: str) -> int:
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 64 << 20 <= size <= 64 << 30:
        raise argparse.ArgumentTypeError(f"--size wants 64M to 64G, not {text!r}")
    return size


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stick = sub.add_parser("stick", help="build the boot stick laptops receive with",
                           description="The USB boot stick: laptops boot it and write the "
                           "session's image to their internal disk.")
    actions = stick.add_subparsers(dest="stick_command", required=True, metavar="ACTION")
    parser = actions.add_parser(
        "build", help="write a boot stick image",
        description="Write STICK.img, a disk image to copy to a USB stick (dd, bmaptool or "
        "Etcher). It boots UEFI (Secure Boot too: Debian's signed shim, GRUB and kernel) and "
        "BIOS laptops into a RAM system that receives the image. Its FAT32 partition holds "
        "mcastd.conf, the keys, the journals and the reports, editable on any computer. "
        "Needs root (mmdebstrap) the first time; the system is then cached.")
    parser.add_argument("out", metavar="STICK.img", type=Path)
    parser.add_argument("--trust", type=Path, metavar="KEY.pub",
                        help="follow only senders signing with this key (mcastd keygen)")
    parser.add_argument("--secret", type=Path, metavar="FILE",
                        help="the secret of encrypted sessions (mcastd keygen --secret)")
    parser.add_argument("--target", default="auto", metavar="auto|DEVICE",
                        help="the disk to write: auto (the one internal disk) or a device such "
                             "as /dev/nvme0n1 or serial=SERIAL (default %(default)s)")
    parser.add_argument("--session", default="", metavar="NAME",
                        help="join only this session (default: the first announced)")
    parser.add_argument("--then", default="reboot", choices=THEN_ACTIONS,
                        help="after a verified image (default %(default)s; a failure always "
                             "waits on screen)")
    parser.add_argument("--size", type=_stick_size, default=256 << 20, metavar="SIZE",
                        help="the image size, e.g. 256M or 8G (default %(default)s bytes)")
    parser.add_argument("--capture", action="store_true",
                        help="add a boot menu entry that captures the golden laptop instead")
    parser.add_argument("--hostnames", type=Path, metavar="CSV",
                        help="hostnames.csv (MAC,name) for the post-deploy hooks")
    parser.add_argument("--cache", type=Path, default=default_cache(), metavar="DIR",
                        help="where the built system is kept (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    try:
        config = StickConfig(session=args.session, target=args.target, then=args.then)
    except ConfigError as exc:
        print(f"mcastd stick build: {str(exc).split(': ', 1)[-1]}", file=sys.stderr)
        return EXIT_USAGE
    options = StickOptions(config=config, size=args.size, trust=args.trust, secret=args.secret,
                           capture=args.capture, hostnames=args.hostnames)
    try:
        check_inputs(options, args.out)  # a typo is refused now, not after minutes of building
    except BuildError as exc:
        print(f"mcastd stick build: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = build(args.out, options, args.cache,
                       lambda line: print(f"mcastd stick build: {line}", flush=True))
    except BuildError as exc:
        print(f"mcastd stick build: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"mcastd stick build: wrote {result.path} ({format_bytes(result.size)}; system "
          f"{format_bytes(result.system.initrd.stat().st_size)} compressed, "
          f"{format_bytes(result.system.unpacked_bytes)} in RAM) in {result.seconds:.0f} s. "
          f"Copy it to a USB stick: dd if={result.path} of=/dev/sdX bs=4M conv=fsync")
    return EXIT_OK
