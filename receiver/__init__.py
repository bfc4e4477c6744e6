"""The receiver program (``mcast-receive``): target safety, decoding and writing blocks, the
resume journal and the final read-back, around a ``protocol.receiver.ReceiverSession`` on the
shared runtime (``driver``)."""
