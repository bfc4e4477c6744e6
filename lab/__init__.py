"""The kernel lab (root only): a switch and hosts made of network namespaces, links shaped with
tbf and made lossy with nftables, the real programs run inside (``python -m lab classroom``),
and hostile real-socket hosts (a rogue sender, a sniffer). Development only: never installed,
and the only package that imports pyroute2."""
