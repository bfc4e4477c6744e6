"""Virtual laptops: qemu (TCG) machines on the kernel lab's switch, booted from the boot stick
with empty NVMe disks, for `make vm-test`."""
