"""The sender program and the ``mcastd`` command: ``serve`` reads and encodes an image and runs
a ``protocol.sender.SenderSession`` on the shared runtime (``driver``); ``keygen``."""
