"""The two ways things go wrong: the network sent garbage, or our caller misused the API."""


class BadPacket(Exception):
    """A datagram from the network is malformed, foreign or unsupported.

    The only exception a ``decode_*_untrusted`` function may raise; sessions catch it,
    drop the datagram and count it.
    """


class LocalProtocolError(Exception):
    """The driver called a session method in a way the protocol does not allow."""
