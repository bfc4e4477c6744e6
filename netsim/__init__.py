"""Simulated networks for mcastd: a seeded discrete-event LAN (``SimNetwork``), link models,
scenarios and test images. The daemons never import this package."""

from .link import GilbertElliott, Link, LinkSpec
from .network import Node, NodeStats, Session, SimLivelock, SimNetwork

__all__ = ["GilbertElliott", "Link", "LinkSpec", "Node", "NodeStats", "Session", "SimLivelock",
           "SimNetwork"]
