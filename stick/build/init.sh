#!/bin/sh
# The boot stick's PID 1. The whole system is this RAM disk: the stick may be pulled once the
# agent has read its settings (it is needed again only for journals and reports).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /stick
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
if [ -d /sys/firmware/efi/efivars ]; then  # the Secure Boot state, for the agent to tell
    modprobe -q efivarfs
    mount -t efivarfs efivarfs /sys/firmware/efi/efivars
fi
echo 1 > /proc/sys/kernel/printk  # kernel chatter off tty1: the agent owns the screen
# Drivers for the hardware that is there, by modalias, as udev would. Three rounds: USB disks
# and NICs appear only once their controller's driver is loaded.
for round in 1 2 3; do
    find /sys/devices -name modalias -exec cat {} + 2>/dev/null | sort -u \
        | xargs modprobe -abq 2>/dev/null
    sleep 1
done
# Not found by modalias: the filesystems, and loop devices (capture reads partitions by them).
modprobe -abq vfat nls_cp437 nls_iso8859_1 nls_utf8 ext4 fuse loop 2>/dev/null
while true; do
    /usr/bin/mcastd-stick-agent
    echo "mcastd-stick: the agent stopped (exit $?); a shell on tty1" > /dev/ttyS0 2>/dev/null
    setsid sh -c 'exec sh </dev/tty1 >/dev/tty1 2>&1'
done
