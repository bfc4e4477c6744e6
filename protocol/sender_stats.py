"""SenderStats: what the sender counts, for the admin's summary and the tests."""

from __future__ import annotations


class SenderStats:
    __slots__ = (
        "data_datagrams", "data_bytes", "first_pass_datagrams", "repair_datagrams",
        "repair_bytes", "status_received", "naks_received", "garbled", "foreign",
        "repairs_made_inline", "limited",
    )

    def __init__(self) -> None:
        self.data_datagrams = 0
        self.data_bytes = 0  # DATA datagrams, headers included (UDP payload bytes, as sent)
        self.first_pass_datagrams = 0
        self.repair_datagrams = 0  # answering NAKs (the first pass's proactive ones aside)
        self.repair_bytes = 0  # those datagrams' UDP payload bytes, counted like data_bytes
        self.status_received = 0
        self.naks_received = 0
        self.garbled = 0
        self.foreign = 0
        self.repairs_made_inline = 0  # on the event loop: no ready symbol from the driver
        self.limited = 0  # STATUS and JOIN ignored: too often, from elsewhere, or too many
