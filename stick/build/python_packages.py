"""mcastd and its dependencies, installed into the stick's Python 3.11 from wheels.

The project's own wheel is built from this checkout; its dependencies come as manylinux wheels
for CPython 3.11 (whatever Python builds the stick), so nothing is compiled for the laptop.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .rootfs import precompile
from .tools import BuildError, run

SITE = "usr/lib/python3/dist-packages"  # on Debian's sys.path for python3.11
# linux_x86_64: the project's own wheel, with its compiled data path built here (this machine
# and the stick are the same Debian release, so the same glibc).
PLATFORMS = ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "linux_x86_64")
# The compiled twins of the data path: a stick without them would run at Python speed.
COMPILED = ("protocol/_datapath.cpython-311-x86_64-linux-gnu.so",
            "driver/_batchio.cpython-311-x86_64-linux-gnu.so")
# zstandard ships a second, CFFI backend beside its C extension; only the C one is loaded.
PRUNED = ("zstandard/_cffi*.so",)
# The programs a laptop runs, as small launchers for the stick's own interpreter.
LAUNCHERS = {"mcast-receive": "receiver.cli", "mcastd": "mcastd.cli",
             "mcastd-stick-agent": "stick.agent.main"}


def project_root() -> Path:
    """The checkout this builder runs from: the wheel is made of exactly this code."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise BuildError("mcastd stick build needs the mcastd source tree (pyproject.toml not "
                         f"found in {root}): run it from a checkout.")
    return root


def build_wheel(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("mcastd-*.whl"):
        old.unlink()
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out,
         project_root()], "build the mcastd wheel")
    wheels = sorted(out.glob("mcastd-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"pip wheel left {len(wheels)} mcastd wheels in {out}, not one.")
    return wheels[0]


def install(root: Path, wheel: Path) -> None:
    argv: list[str | Path] = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-script-location",
        "--disable-pip-version-check", "--target", root / SITE, "--only-binary=:all:",
        "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
    ]
    for platform in PLATFORMS:
        argv += ["--platform", platform]
    run([*argv, wheel], "install mcastd and its dependencies into the stick")
    missing = [name for name in COMPILED if not (root / SITE / name).exists()]
    if missing:
        raise BuildError(f"the mcastd wheel lacks its compiled data path ({', '.join(missing)}):"
                         " install gcc and python3-dev (make does), then build again.")
    for pattern in PRUNED:
        for path in (root / SITE).glob(pattern):
            path.unlink()
    for script in (root / SITE / "stick").rglob("*.sh"):
        script.chmod(0o755)  # the DHCP client runs its address script directly
    precompile(root, SITE)
    python = root / "usr/bin/python3"
    if not python.exists():
        python.symlink_to("python3.11")
    for name, module in LAUNCHERS.items():
        launcher = root / "usr/bin" / name
        launcher.write_text(f"#!/usr/bin/python3.11\nfrom {module} import main\n"
                            "raise SystemExit(main())\n")
        launcher.chmod(0o755)
    for stray in (root / SITE / "bin").glob("*"):  # pip's launchers name the build's Python
        stray.unlink()
