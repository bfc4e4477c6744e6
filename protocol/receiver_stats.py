"""What a receiver counted, over every session it looked at (the daemon's final report, STATUS).

One object shared by the session and its units (the choice, the transfer), each counting what
it saw; following another session does not reset it.
"""

from __future__ import annotations


class ReceiverStats:
    __slots__ = (
        "received", "duplicates", "stale", "foreign", "garbled", "overflow", "rejected",
        "naks_sent", "status_sent", "data_arrived", "unopened",
    )

    def __init__(self) -> None:
        self.received = 0  # data datagrams stored
        self.duplicates = 0
        self.stale = 0  # for blocks already complete
        self.foreign = 0  # other sessions, other programs
        self.garbled = 0
        self.overflow = 0  # dropped: too many partial blocks in memory
        self.rejected = 0  # decoded blocks that failed their digest
        self.naks_sent = 0
        self.status_sent = 0
        self.data_arrived = 0  # data datagrams of our session, whatever became of them
        # Encrypted datagrams we could not open (no key, another key, damaged), and with a
        # key, datagrams in the clear.
        self.unopened = 0

    @property
    def dropped(self) -> int:
        return self.foreign + self.garbled + self.overflow + self.unopened
