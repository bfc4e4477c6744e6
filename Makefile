# The two quick-start commands: `make demo` and `make test`. Both install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBS := $(VENV)/.debs

.PHONY: test test-disks vm-test demo sim-demo lint typecheck pytest fuzz bench bench-quick profile bench-sim bench-misbehaving bench-security bench-capture bench-disks bench-delta clean

# Debian packages: the kernel lab (nftables for per-link loss, iproute2 for namespaces and tbf),
# udpcast (the peer the benchmark measures us against), and for real disks partclone (used
# ranges), sfdisk/sgdisk (partition tables) and the mkfs, fsck and mount tools of every
# filesystem the tests make, and chromium (the status page's headless-browser test).
# Installed only where we are root; elsewhere those tests skip.
DEB_PACKAGES := nftables iproute2 mount udpcast partclone fdisk gdisk e2fsprogs ntfs-3g \
	dosfstools exfatprogs exfat-fuse btrfs-progs xfsprogs mtools grub-pc-bin grub-common cpio \
	zstd kmod chromium
DEB_COMMANDS := nft ip losetup udp-sender partclone.extfs sfdisk sgdisk mkfs.ext4 mkfs.ntfs \
	mkfs.vfat mkfs.exfat mount.exfat-fuse mkfs.btrfs mkfs.xfs mcopy grub-mkimage cpio zstd depmod \
	chromium
# $(call apt_ensure,CHECK,PACKAGES,NOTE): nothing if the shell test CHECK passes; else, as
# root, install PACKAGES with apt-get; else say NOTE (what will be skipped).
define apt_ensure
	@mkdir -p $(VENV)
	@if $(1); then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			$(2) >/dev/null; \
	else \
		echo "note: $(3)"; \
	fi
	touch $@
endef

HAVE_DEB_COMMANDS := for c in $(DEB_COMMANDS); do command -v $$c >/dev/null || exit 1; done
$(DEBS):
	$(call apt_ensure,$(HAVE_DEB_COMMANDS),$(DEB_PACKAGES),not root: the kernel lab and the \
		real-disk tests will be skipped)

# A C compiler and Python's headers: pip builds the data path's compiled twins (protocol/
# _datapath.c, driver/_batchio.c) at install. Without them the install still works and the
# pure-Python twins run, slower (the programs say so at start).
BUILD_PACKAGES := gcc python3-dev
BUILD_DEBS := $(VENV)/.build-debs
HAVE_COMPILER := command -v cc >/dev/null && $(PY) -c 'import os, sysconfig; \
	assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null
$(BUILD_DEBS):
	$(call apt_ensure,$(HAVE_COMPILER),$(BUILD_PACKAGES),no C compiler: the pure-Python data \
		path will run (slower))

$(STAMP): pyproject.toml protocol/_datapath.c driver/_batchio.c $(BUILD_DEBS)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict protocol driver disk mcastd receiver netsim lab bench stick

pytest: $(STAMP) $(DEBS)
	$(BIN)/pytest -q

test: lint typecheck pytest

# The boot stick's Debian packages: mmdebstrap builds its system, Debian's signed shim and GRUB
# boot it on UEFI (Secure Boot too) and grub-pc-bin on BIOS; qemu and OVMF run the virtual
# laptops of `make vm-test`. Only `mcastd stick build` and the VM tests need them.
STICK_PACKAGES := mmdebstrap shim-signed grub-efi-amd64-signed qemu-system-x86 ovmf
STICK_COMMANDS := mmdebstrap qemu-system-x86_64
STICK_DEBS := $(VENV)/.stick-debs
HAVE_STICK_TOOLS := for c in $(STICK_COMMANDS); do command -v $$c >/dev/null || exit 1; done \
	&& [ -e /usr/lib/shim/shimx64.efi.signed ] && [ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] \
	&& [ -e /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed ] \
	&& [ -e /usr/lib/grub/i386-pc/boot.img ]
$(STICK_DEBS): $(DEBS)
	$(call apt_ensure,$(HAVE_STICK_TOOLS),$(STICK_PACKAGES),not root: the boot stick's VM \
		tests will be skipped)

# The boot stick on virtual laptops: builds the stick (about 2 minutes the first time, then
# cached) and a golden disk, then boots qemu laptops (TCG) from it in a private lab network:
# UEFI, UEFI with Secure Boot and BIOS; two disks; a power cut; a wrong key; hostnames.
vm-test: $(STAMP) $(DEBS) $(STICK_DEBS)
	$(BIN)/pytest -q -m vm -o faulthandler_timeout=1800 tests/vm

# The real-disk suite: golden disks made with mkfs over old data, captured, written to other
# disks, fsck'd and compared (root; a few minutes). .ci/run runs it after `make test`.
test-disks: $(STAMP) $(DEBS)
	$(BIN)/pytest -q -m disks

# The real job in a private lab network (nothing leaves it): a golden laptop disk with real
# filesystems (GPT, FAT32, ext4, swap, NTFS; old data in free space) is captured into a
# prepared image, served to 4 laptops on 100 Mbit/s links with 2 % loss whose disks are larger
# loop devices, and every laptop's GPT, fsck and file tree is checked. About a minute.
demo: $(STAMP) $(DEBS)
	$(BIN)/python -m lab.demo --laptops 4 --loss 2 --rate 100

sim-demo: $(STAMP)
	$(BIN)/python -m netsim.demo

# mcastd against udpcast in the kernel lab: 37 cells x 3 repetitions, about an hour.
bench: $(STAMP) $(DEBS)
	$(BIN)/python -m bench.classroom --json .bench-logs/results.json

bench-quick: $(STAMP) $(DEBS)
	$(BIN)/python -m bench.classroom --quick --reps 1

# Where the time goes: py-spy samples the sender and one receiver of a 3-laptop transfer in the
# lab and prints each one's hottest functions (PROFILE_ARGS: --rate 100, --native, ...).
profile: $(STAMP) $(DEBS)
	$(BIN)/pip install -q 'py-spy>=0.3'
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

bench-sim: $(STAMP)
	$(BIN)/python -m bench.sim_scaling

# Hypothesis, 140,000 inputs; then coverage-guided, 200,000 more (atheris: a fuzzing tool only,
# never imported by the programs, so installed here and not with them).
fuzz: $(STAMP)
	FUZZ_EXAMPLES=20000 $(BIN)/pytest -q tests/fuzz
	$(BIN)/pip install -q atheris
	$(BIN)/python -m tests.fuzz.atheris_network -atheris_runs=200000

bench-misbehaving: $(STAMP) $(DEBS)
	$(BIN)/python -m bench.misbehaving

# mcastd capture at several zstd levels against partclone | zstd -3 on one golden disk.
bench-capture: $(STAMP) $(DEBS)
	$(BIN)/python -m bench.capture

# A real laptop disk four ways in the lab: mcastd raw and prepared, Clonezilla's partclone |
# zstd | udp-sender, udpcast; fsck and file trees checked on every laptop.
bench-disks: $(STAMP) $(DEBS)
	$(BIN)/python -m bench.disks

# Re-imaging a room after an update: fresh, --delta and Clonezilla's way (root).
bench-delta: $(STAMP) $(DEBS)
	$(BIN)/python -m bench.delta

bench-security: $(STAMP) $(DEBS)
	$(BIN)/python -m bench.crypto_cost
	$(BIN)/python -m bench.security

clean:
	rm -rf $(VENV) .demo .bench-images .bench-logs .vm-logs .mypy_cache .pytest_cache .ruff_cache .hypothesis
	find protocol driver -name '*.so' -delete; rm -rf build
