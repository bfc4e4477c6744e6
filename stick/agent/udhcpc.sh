#!/bin/sh
# busybox udhcpc's address script: it sets what the DHCP server offered, nothing else.
case "$1" in
    bound|renew)
        busybox ip addr flush dev "$interface" scope global
        busybox ip addr add "$ip/${mask:-24}" dev "$interface"
        for gateway in $router; do
            busybox ip route replace default via "$gateway" dev "$interface"
            break
        done
        ;;
    deconfig)
        busybox ip link set "$interface" up
        ;;
esac
exit 0
