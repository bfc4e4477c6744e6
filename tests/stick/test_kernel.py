"""The stick's kernel modules from a fake unpacked kernel package in tmp_path, indexed by the
real depmod: the wanted drivers and every module they depend on are copied, nothing else."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from stick.build.kernel import install_modules, kernel_version, vmlinuz
from stick.build.tools import BuildError

VERSION = "6.1.0-99-amd64"
NVME = "kernel/drivers/nvme/host/nvme.ko"
NVME_CORE = "kernel/drivers/misc/nvme-core.ko"  # outside every wanted directory
UNWANTED = "kernel/sound/core/snd.ko"
needs_depmod = pytest.mark.skipif(shutil.which("depmod") is None,
                                  reason="needs depmod (apt-get install kmod)")


def modules_dir(root: Path) -> Path:
    return root / "lib/modules" / VERSION


def module_file(root: Path, module: str) -> None:
    """A module that is no ELF object: depmod indexes it, with no dependencies of its own."""
    path = modules_dir(root) / module
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not ELF: " + module.encode())


def stick_modules(root: Path) -> set[str]:
    return {str(p.relative_to(modules_dir(root))) for p in modules_dir(root).rglob("*.ko*")}


def dependencies(root: Path) -> dict[str, list[str]]:
    """The stick's modules.dep, as modprobe reads it."""
    lines = (modules_dir(root) / "modules.dep").read_text().splitlines()
    return {module: deps.split() for module, _, deps in (line.partition(":") for line in lines)}


@needs_depmod
@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to make ELF modules")
def test_a_wanted_driver_comes_with_what_it_depends_on(tmp_path: Path) -> None:
    """Real ELF objects, so depmod itself finds that nvme.ko needs a symbol nvme-core.ko
    exports: the package's modules.dep is made at install time, which never happens here."""
    package, stick = tmp_path / "package", tmp_path / "stick"
    sources = {
        NVME_CORE: "__attribute__((section(\"__ksymtab_strings\"), used))\n"
                   "static const char ksym[] = \"nvme_core_fn\";\nvoid nvme_core_fn(void) {}\n",
        NVME: "extern void nvme_core_fn(void);\nvoid nvme_init(void) { nvme_core_fn(); }\n",
        UNWANTED: "void snd_fn(void) {}\n",
    }
    for module, code in sources.items():
        source = tmp_path / (Path(module).stem + ".c")
        source.write_text(code)
        (modules_dir(package) / module).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-c", "-o", str(modules_dir(package) / module), str(source)],
                       check=True)
    copied = install_modules(package, VERSION, stick)
    assert stick_modules(stick) == {NVME, NVME_CORE}
    assert copied == sum((modules_dir(package) / m).stat().st_size for m in (NVME, NVME_CORE))
    assert dependencies(stick)[NVME] == [NVME_CORE]
    assert (modules_dir(stick) / "modules.dep.bin").is_file()  # what modprobe really reads


@needs_depmod
def test_dependencies_are_followed_to_the_end_from_the_packages_index(tmp_path: Path) -> None:
    """A package whose modules.dep exists (depmod of the package is skipped then): a chain
    of dependencies is followed, unneeded SCSI drivers and other subsystems are left out."""
    package, stick = tmp_path / "package", tmp_path / "stick"
    chain = ["kernel/drivers/net/usb/r8152.ko", "kernel/drivers/net/mii.ko",
             "kernel/net/core/selftests.ko.zst"]
    scsi = "kernel/drivers/scsi/qla2xxx/qla2xxx.ko"
    scsi_needs = "kernel/drivers/scsi/scsi_transport_fc.ko"  # wanted: in drivers/scsi
    for module in (*chain, NVME, NVME_CORE, UNWANTED, scsi, scsi_needs,
                   "kernel/fs/ext4/ext4.ko", "kernel/fs/jbd2/jbd2.ko"):
        module_file(package, module)
    (modules_dir(package) / "modules.dep").write_text("\n".join([
        f"{chain[0]}: {chain[1]}",
        f"{chain[1]}: {chain[2]}",
        f"{chain[2]}:",
        f"{NVME}: {NVME_CORE}",
        f"{NVME_CORE}:",
        f"{UNWANTED}:",
        f"{scsi}: {scsi_needs}",
        f"{scsi_needs}:",
        "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko",
        "kernel/fs/jbd2/jbd2.ko:",
    ]) + "\n")
    (modules_dir(package) / "modules.order").write_text(f"{NVME}\n")
    (modules_dir(package) / "modules.builtin").write_text("kernel/drivers/block/loop.ko\n")
    install_modules(package, VERSION, stick)
    assert stick_modules(stick) == {*chain, NVME, NVME_CORE, scsi_needs,
                                    "kernel/fs/ext4/ext4.ko", "kernel/fs/jbd2/jbd2.ko"}
    assert (modules_dir(stick) / "modules.order").read_text() == f"{NVME}\n"
    assert (modules_dir(stick) / "modules.builtin").is_file()
    assert set(dependencies(stick)) == stick_modules(stick)  # the stick's own index


def test_the_kernel_version_is_the_one_module_tree(tmp_path: Path) -> None:
    (tmp_path / "lib/modules" / VERSION).mkdir(parents=True)
    assert kernel_version(tmp_path) == VERSION
    assert vmlinuz(tmp_path, VERSION) == tmp_path / "boot" / f"vmlinuz-{VERSION}"
    (tmp_path / "lib/modules/6.1.0-98-amd64").mkdir()
    with pytest.raises(BuildError, match=r"^the kernel package holds 2 module trees, not one\.$"):
        kernel_version(tmp_path)
