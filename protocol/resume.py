"""What a receiver's journal of stored blocks promises, whichever driver keeps it (the daemon's
file, the simulator's memory): a run started again receives only what the last one lacked.

Each block written to the target is recorded; records become durable at a flush, every
``JOURNAL_FLUSH_INTERVAL``, and the target is synced before the journal, so it never claims a
block the disk might not hold after a power cut. A crash costs at most that much of the transfer
again. When the run ends the journal is removed if ``ReceiverSession.journal_spent`` (the whole
image was hashed at the end: verified, or proven wrong, so the next run starts afresh), and
otherwise flushed and kept for the next run.
"""

from __future__ import annotations

JOURNAL_FLUSH_INTERVAL = 0.5  # seconds between two journal flushes
