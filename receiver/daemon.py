"""The receiver daemon: one ReceiverSession; blocks decoded, checked and written at their
offsets in worker threads, in whatever order they complete; the whole target hashed at the
end. With a state directory, a journal records the blocks on disk so that a run started again
(after SIGKILL, a reboot of the sender...) receives only what it lacks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import trio

from disk.resize import ResizeError, fit_table, grow_last_partition
from driver.console import Console
from driver.loop import SessionDriver, Worker
from driver.report import FinalReport, RateMeter, ReceiverSnapshot
from driver.udp import IGMP_REASSERT_INTERVAL, NetworkError
from driver.units import format_bytes
from protocol.blockcheck import verified_block
from protocol.blockcodec import BlockCorrupt, BlockDecoder
from protocol.events import (
    BlockReady,
    CompareDisk,
    Event,
    Finished,
    FreeBlocks,
    Joined,
    SessionFound,
    VerifyImage,
)
from protocol.receiver import ReceiverSession, ReceiverState
from protocol.resume import JOURNAL_FLUSH_INTERVAL
from protocol.trust import fingerprint
from protocol.wire import CAUSE_DISK

from .journal import Journal, JournalError
from .net import ReceiverNet
from .readback import BlockChecks, HashAhead
from .target import Target, TargetError, TargetInfo, check_fits

REPORT_INTERVAL = 0.25
WRITE_THREADS = 2  # decode + write; zstd, zfec, xxhash and pwrite release the GIL
# Complete blocks waiting for the disk, at most: a disk slower than the network must not
# make memory grow (the data socket is left unread instead; what it drops is asked again).
MAX_UNWRITTEN_BLOCKS = 16
# After a short read of the data socket, wait this long before the next one: datagrams are then
# handled ~20 per wake-up at 100 Mbit/s instead of one. 2 ms fills 0.25 MB of the 8 MiB buffer
# at 1 Gbit/s, and delays a NAK by less than the sender's own SYNC interval.
DATA_LINGER = 0.005


class ReceiverDaemon:
    def __init__(
        self,
        session: ReceiverSession,
        net: ReceiverNet,
        target_info: TargetInfo,
        console: Console,
        *,
        discovery_timeout: float | None = None,
        interface: str = "",
        open_target: Callable[..., Target] = Target,
        worker: Worker | None = None,
        state_dir: Path | None = None,
        grow: bool = False,
        igmp_interval: float = IGMP_REASSERT_INTERVAL,
    ) -> None:
        self.session = session
        self.net = net
        self.target_info = target_info
        self.console = console
        self.discovery_timeout = discovery_timeout
        self.interface = interface
        self.open_target = open_target
        self.state_dir = state_dir  # None: no journal, no resume
        self.grow = grow  # grow the last partition and its filesystem to fill the disk
        self.igmp_interval = igmp_interval
        self.journal: Journal | None = None
        self.resumed = 0  # blocks taken from the journal
        self.compared = 0  # blocks a delta comparison found on the disk as the image has them
        self._compare_progress: tuple[int, int] | None = None  # (bytes read, of) while comparing
        self.driver = SessionDriver(session, net.control, self._on_event)
        self.target: Target | None = None
        self.worker = worker or Worker(WRITE_THREADS)
        self._local = threading.local()
        self._nursery: trio.Nursery | None = None
        self._unwritten = 0  # complete blocks not yet on disk
        self.peak_unwritten = 0
        self._written = trio.Event()  # set (and replaced) whenever one reaches the disk
        self._started = trio.current_time()
        self._joined_at: float | None = None
        self._verified_at: float | None = None
        self._hashed_whole = False  # the whole image was hashed (no used-block map)
        self._rate = RateMeter(self._started, 0, interval=REPORT_INTERVAL)  # image bits stored
        self._name = ""
        self._image_size = 0
        self._block_size = 0
        self._groups: set[tuple[str, int]] = set()  # data groups joined (each read by a task)
        self._journaling = False  # the journal loop runs (it serves whichever journal is open)
        # The whole-image digest read back as the blocks arrive (None: the image has a used-
        # block map, whose blocks are checked one by one at the end), in a thread of its own.
        self.hash_ahead: HashAhead | None = None
        self._hashed = trio.Event()
        # With a map: each used block read back and checked as it is written.
        self.block_checks: BlockChecks | None = None
        self._checks_idle = trio.Event()
        self._reader = Worker(1, inline=self.worker.inline)

    async def run(self) -> FinalReport:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.driver.receive_from, self.net.discovery)
                nursery.start_soon(self.driver.receive_from, self.net.control)
                nursery.start_soon(self._report_loop)
                nursery.start_soon(self._reassert_loop)
                if self.discovery_timeout is not None:
                    nursery.start_soon(self._give_up_discovery, self.discovery_timeout)
                await self.driver.run()
                nursery.cancel_scope.cancel()
        finally:
            # Also on Ctrl-C or SIGTERM: what reached the disk stays resumable.
            with trio.CancelScope(shield=True):
                await self._close_journal()
            if self.target is not None:
                self.target.close()
            self.net.close_groups()
        return self.final_report()

    # --- session events -------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        nursery = self._nursery
        assert nursery is not None
        if isinstance(event, BlockReady):
            self._unwritten += 1
            self.peak_unwritten = max(self.peak_unwritten, self._unwritten)
            nursery.start_soon(self._store, event)
        elif isinstance(event, SessionFound):
            self._on_session(event, nursery)
        elif isinstance(event, Joined):
            self._joined_at = trio.current_time()
            self.console.message("joined; receiving")
        elif isinstance(event, FreeBlocks):
            nursery.start_soon(self._discard, event.ranges)
        elif isinstance(event, CompareDisk):
            nursery.start_soon(self._compare)
        elif isinstance(event, VerifyImage):
            nursery.start_soon(self._verify_blocks if event.per_block else self._verify)
        elif isinstance(event, Finished):
            self.driver.stop()

    def _on_session(self, event: SessionFound, nursery: trio.Nursery) -> None:
        announce = self.session.announce
        assert announce is not None
        self._name = event.name
        self._image_size = event.image_size
        self._block_size = announce.block_size
        if self.target is not None:
            self._leave_superseded_session()
        self.console.message(
            f"found session {event.name!r} from {event.sender_addr[0]}: "
            f"{format_bytes(event.image_size)}"
        )
        self._say_who_signed()
        # A prepared image fits any disk that holds its partitions and used blocks: the
        # smaller part past them is free space, never written.
        needed = announce.min_size or event.image_size
        size = event.image_size
        if self.target_info.size is not None:
            size = min(size, max(needed, self.target_info.size))
        try:
            check_fits(self.target_info, needed)
            stored = self._open_journal(announce.image_sha256, event.image_size)
            # A resumed or delta run keeps what the disk holds; any other starts clean.
            if stored or self.session.config.delta:
                self.target = self.open_target(self.target_info, size, keep=True)
            else:
                self.target = self.open_target(self.target_info, size)
            data = None
            if event.data_addr not in self._groups:
                data = self.net.open_group(event.data_addr)
                self._groups.add(event.data_addr)
        except TargetError as exc:
            self._fail_disk(exc)
            return
        except NetworkError as exc:
            self._fail(str(exc))
            return
        if announce.used_map:
            self.block_checks = BlockChecks(self.target, self.session.nblocks, self._block_size)
        else:
            self.hash_ahead = HashAhead(self.target, self.session.nblocks, self._block_size)
            self._hashed = trio.Event()
            nursery.start_soon(self._hash_ahead_loop, self.hash_ahead)
        if stored:
            self.resumed = self.session.resume(stored, trio.current_time())
            if self.hash_ahead is not None:
                for index in stored:
                    self.hash_ahead.stored(index)
            self.console.message(
                f"resuming: {self.resumed} of {self.session.nblocks} blocks are already on "
                "this disk; receiving the rest")
        if self.journal is not None and not self._journaling:
            self._journaling = True
            nursery.start_soon(self._journal_loop)
        if data is not None:
            nursery.start_soon(self.driver.receive_from, data, self._room_to_write,
                               DATA_LINGER)

    def _leave_superseded_session(self) -> None:
        """The session we were joining never accepted us and a later one of the same key is
        announced: ours was a replay. Nothing was handed to the disk before an ACCEPT, so the
        target and journal are closed as they were and opened again for the new session."""
        self.console.message("a later session of the same sender is announced and ours never "
                             "accepted us (an old announcement replayed?): following the later "
                             "one", level=logging.WARNING)
        if self.journal is not None:
            self.journal.close()  # nothing was stored since it was opened: nothing to flush
            self.journal = None
        if self.target is not None:
            self.target.close()
            self.target = None
        self.hash_ahead = self.block_checks = None  # (the new session gets its own)

    def _open_journal(self, image_sha256: bytes, image_size: int) -> list[int]:
        """The blocks an earlier run of this image made durable on this target. Without a
        usable state directory the transfer still runs, only not resumably."""
        if self.state_dir is None:
            return []
        try:
            self.journal = Journal.open(self.state_dir, self.target_info.path, image_sha256,
                                        image_size, self._block_size)
        except JournalError as exc:
            self.console.message(f"{exc} This run cannot be resumed if interrupted.",
                                 level=logging.WARNING)
            return []
        return self.journal.stored()

    async def _journal_loop(self) -> None:
        """Flush the journal in batches (protocol/resume.py): the target is synced first, so
        it never claims a block the disk might not hold after a power cut."""
        while self.journal is not None:
            await trio.sleep(JOURNAL_FLUSH_INTERVAL)
            if self.journal is not None and self.journal.unflushed:
                await self._flush_journal()
        self._journaling = False

    async def _flush_journal(self) -> None:
        journal, target = self.journal, self.target
        if journal is None or target is None:
            return
        try:
            await self.worker.run(journal.flush, target.sync)
        except TargetError as exc:
            self._fail_disk(exc)  # the disk itself failed
        except OSError as exc:
            # The state directory failed (a full stick): the imaging goes on, not resumably.
            self.journal = None
            journal.close()
            self.console.message(
                f"cannot record progress in {journal.path} ({exc.strerror or exc}); this run "
                "can no longer be resumed if interrupted", level=logging.WARNING)

    async def _close_journal(self) -> None:
        """Removed once it has served (``ReceiverSession.journal_spent``); otherwise kept,
        flushed, for the next run."""
        journal = self.journal
        if journal is None:
            return
        if self.session.journal_spent:
            journal.remove()
        else:
            await self._flush_journal()
            journal.close()

    async def _reassert_loop(self) -> None:
        """Switches with IGMP snooping and no querier forget members that stay silent for a
        few minutes; a fresh membership report keeps an hours-long transfer flowing."""
        while True:
            await trio.sleep(self.igmp_interval)
            try:
                self.net.reassert()
            except NetworkError as exc:
                self.console.message(str(exc), level=logging.WARNING)

    def _say_who_signed(self) -> None:
        """Whom the disk is about to trust: verified, or unauthenticated, prominently."""
        session = self.session
        key = session.sender_key
        if session.config.trusted is not None:
            self.console.message(f"the session is signed by trusted key {fingerprint(key)}")
        elif key:
            self.console.message(
                f"UNAUTHENTICATED: the session is signed by {fingerprint(key)}, but no key is "
                "trusted here; anyone on this LAN could be that sender. Compare the "
                "fingerprint with `mcastd serve`'s, and pass --trust to insist on it.",
                level=logging.WARNING)
        else:
            self.console.message(
                "UNAUTHENTICATED: the session is not signed; anyone on this LAN could be that "
                "sender. Pass --trust with the sender's key to refuse such sessions.",
                level=logging.WARNING)

    async def _room_to_write(self) -> None:
        while self._unwritten >= MAX_UNWRITTEN_BLOCKS:
            await self._written.wait()

    async def _store(self, event: BlockReady) -> None:
        index, checks = event.index, self.block_checks
        try:
            ok = await self.worker.run(self._decode_and_write, event)
        except TargetError as exc:
            self._fail_disk(exc)
            return
        finally:
            self._unwritten -= 1
            self._written.set()
            self._written = trio.Event()
        if self.session.state is ReceiverState.FINISHED:
            return
        if ok:
            self.session.block_stored(index)
            if self.hash_ahead is not None:
                self.hash_ahead.stored(index)
            if checks is not None and checks is self.block_checks and event.digest:
                checks.pending += 1
                assert self._nursery is not None
                self._nursery.start_soon(self._check_block, checks, index, event.offset,
                                         event.length, event.digest)
        else:
            self.console.message(f"block {index} failed its check; asking for it again")
            self.session.block_rejected(index)
        self.driver.poke()

    def _decode_and_write(self, event: BlockReady) -> bool:
        """Worker thread: rebuild, check and write one block. False if it failed its check
        (damage or forgery), before any byte is written."""
        target = self.target
        assert target is not None
        decoder = getattr(self._local, "decoder", None)
        if decoder is None:
            decoder = self._local.decoder = BlockDecoder()
        try:
            raw = verified_block(event, decoder)
        except BlockCorrupt:
            return False
        if raw is None:
            target.write_zeros(event.offset, event.length)
        else:
            target.write_block(event.offset, raw)
        self._record(event.index)
        return True

    def _record(self, index: int) -> None:
        if self.journal is not None:
            self.journal.record(index)

    async def _hash_ahead_loop(self, ahead: HashAhead) -> None:
        """Read the image back into its digest as far as the disk holds it, all along."""
        while self.hash_ahead is ahead and not ahead.complete:
            count = ahead.next_run()
            if not count:
                await self._written.wait()
                continue
            try:
                await self._reader.run(ahead.hash_run, count)
            except TargetError as exc:
                self._fail_disk(exc)
                return
            ahead.advance(count)
        if self.hash_ahead is ahead:
            self._hashed.set()

    async def _check_block(self, checks: BlockChecks, index: int, offset: int, length: int,
                           digest: bytes) -> None:
        """Read block ``index`` back right after its write (in the reader thread)."""
        try:
            ok = await self._reader.run(checks.check, offset, length, digest)
        except TargetError as exc:
            self._fail_disk(exc)
            return
        finally:
            checks.pending -= 1
            if not checks.pending:
                self._checks_idle.set()
                self._checks_idle = trio.Event()
        if ok:
            checks.passed(index, length)
        # (Wrong: left unchecked, so the end reads it again and has it fetched anew.)

    async def _verify(self) -> None:
        target, ahead = self.target, self.hash_ahead
        assert target is not None and ahead is not None
        left = (ahead.nblocks - ahead.hashed) * self._block_size
        self.console.message(f"all blocks written; {format_bytes(min(left, target.image_size))}"
                             " left to read back of the whole image's check")
        await self._hashed.wait()
        digest = ahead.digest()
        if self.session.state is ReceiverState.FINISHED:
            return  # it ended while we hashed (the sender went silent): it said why already
        self._verified_at = trio.current_time()
        self._hashed_whole = True
        self.session.image_verified(digest, self._verified_at)
        self.driver.poke()

    async def _compare(self) -> None:
        """Delta: read every used block the disk may already hold and keep those that match
        the manifest; the sender then sends only what this disk lacks."""
        target = self.target
        assert target is not None
        blocks = self.session.blocks_to_compare()
        total = self.session.blocks_lacked
        size = total * self._block_size
        self.console.message(f"comparing this disk with the image: reading "
                             f"{format_bytes(size)} in use")
        self._compare_progress = (0, size)

        def progress(done: int) -> None:
            self._compare_progress = (done, size)

        try:
            matching = await self.worker.run(target.matching_blocks, blocks, progress)
        except TargetError as exc:
            self._fail_disk(exc)
            return
        finally:
            self._compare_progress = None
        if self.session.state is not ReceiverState.COMPARING:
            return  # it ended meanwhile (the sender went silent): it said why already
        for index in matching:  # on the disk already, as durable as anything journaled
            self._record(index)
            if self.hash_ahead is not None:
                self.hash_ahead.stored(index)
        self.compared = self.session.compared(matching, trio.current_time())
        self.console.message(
            f"{self.compared} of {total} used blocks are on this disk already; receiving the "
            f"other {total - self.compared}")
        self.driver.poke()

    async def _discard(self, ranges: tuple[tuple[int, int], ...]) -> None:
        """Tell the disk which ranges the image does not use (TRIM; holes in a file)."""
        target = self.target
        if target is None:
            return
        size = target.image_size
        try:
            for start, length in ranges:
                if start < size:
                    await self.worker.run(target.discard, start, min(length, size - start))
        except TargetError as exc:
            self._fail_disk(exc)

    async def _verify_blocks(self) -> None:
        """Read every used block back from the disk and check it against the manifest; then
        fit the partition table to this disk (and grow, if asked)."""
        target = self.target
        assert target is not None
        announce = self.session.announce
        assert announce is not None
        checks = self.block_checks
        assert checks is not None
        while checks.pending:
            await self._checks_idle.wait()
        left = checks.unchecked(self.session.used_blocks())
        self.console.message(f"all blocks written; {format_bytes(checks.checked_bytes)} read "
                             "back and checked as they came, the rest now")
        try:
            result = await self.worker.run(target.verify_blocks, left)
        except TargetError as exc:
            self._fail_disk(exc)
            return
        if self.session.state is ReceiverState.FINISHED:
            return
        if not result.ok:
            self.console.message(
                f"{self.target_info.path} returned other bytes than were written at byte "
                f"{result.first_bad} ({result.bad_blocks} block(s)); fetching and writing "
                "them again", level=logging.WARNING)
            size = self._block_size
            self.session.read_back_bad([offset // size for offset in result.bad_offsets],
                                       trio.current_time())
            self.driver.poke()
            return
        try:
            await self.worker.run(self._fit_to_disk, target)
        except ResizeError as exc:
            self._fail_disk(exc)
            return
        if self.session.state is not ReceiverState.VERIFYING:
            return  # it ended while the table was fitted (the sender went silent, say)
        self._verified_at = trio.current_time()
        self.session.image_verified(announce.image_sha256, self._verified_at,
                                    result.verified_bytes + checks.checked_bytes)
        self.driver.poke()

    def _fit_to_disk(self, target: Target) -> None:
        """Worker thread: a GPT made right for this disk (its backup at the end), and the
        last partition grown to fill the disk when asked."""
        target.sync()
        fit_table(self.target_info.path)
        if self.grow:
            size = self.target_info.size or target.image_size
            grown, fs = grow_last_partition(self.target_info.path, size)
            self.console.message(f"grew partition {grown.number} ({fs}) to the end of the disk")

    async def _give_up_discovery(self, after: float) -> None:
        await trio.sleep(after)
        session = self.session
        if session.announce is not None or session.state is ReceiverState.FINISHED:
            return
        where = f" on {self.interface}" if self.interface else ""
        refused = session.refused_sessions
        if refused:
            name, host, why = next(iter(refused.values()))
            self._fail(
                f"no session we may follow was announced{where} within {after:g} s: "
                f"{len(refused)} refused, e.g. {name!r} from {host}, because {why}"
            )
        elif session.stats.unopened:
            self._fail(
                f"no session we can open was announced{where} within {after:g} s: "
                f"{session.stats.unopened} encrypted datagram(s) arrived that "
                + ("the secret given with --encrypt does not open: use the sender's secret "
                   "file" if session.sealer is not None else
                   "need a secret: pass --encrypt with the sender's secret file")
            )
        else:
            self._fail(
                f"no session was announced{where} within {after:g} s: is `mcastd serve` "
                "running on this network?"
            )

    def _fail(self, reason: str, cause: str = "") -> None:
        self.session.fail(reason, trio.current_time(), cause)
        self.driver.poke()

    def _fail_disk(self, exc: Exception) -> None:
        """The target failed (receiver/faults.py said how): a disk error for the sender."""
        self._fail(str(exc), CAUSE_DISK)

    # --- progress -------------------------------------------------------------------------

    async def _report_loop(self) -> None:
        told: set[int] = set()
        refused: set[int] = set()
        while True:
            for sid, (name, host, why) in list(self.session.refused_sessions.items()):
                if sid not in refused:
                    refused.add(sid)
                    self.console.message(f"ignored session {name!r} from {host}: {why}",
                                         level=logging.WARNING)
            overruns = self.net.overruns()
            if overruns is not None:
                self.session.overruns = overruns
            self.console.update(self.snapshot())
            others = {} if self.session.config.session_name else self.session.other_sessions
            for sid, (name, host) in others.items():
                if sid not in told:
                    told.add(sid)
                    self.console.message(
                        f"another session, {name!r} from {host}, is announced too; this "
                        f"laptop stays with {self._name!r} (use --session {name} to choose)",
                        level=logging.WARNING,
                    )
            await trio.sleep(REPORT_INTERVAL)

    def snapshot(self) -> ReceiverSnapshot:
        session = self.session
        now = trio.current_time()
        written = self.target.bytes_written if self.target is not None else 0
        rate = self._rate.update(now, written)
        size = self._image_size
        # Of the blocks that hold something: a prepared image's free space is never sent,
        # and a bar of the whole disk would stop at the share in use, then jump.
        used, done = session.blocks_used, session.blocks_done
        percent = 100.0 * done / used if used else 100.0 * written / size if size else 0.0
        eta = None
        if rate > 0 and used > done:
            eta = (used - done) * (self._block_size or 1) * 8 / rate
        if self._compare_progress is not None:  # (the bar shows the disk being read)
            done, of = self._compare_progress
            percent, eta = 100.0 * done / of if of else 100.0, None
        return ReceiverSnapshot(
            session=self._name,
            image_size=size,
            elapsed=now - self._started,
            state=session.state.value,
            percent=min(100.0, percent),
            written_bytes=written,
            rate_bps=rate,
            eta=eta,
            loss=session.loss,
        )

    def final_report(self) -> FinalReport:
        session = self.session
        ok, reason = session.result or (False, "stopped before the session finished")
        # From the transfer's start (not from joining: the sender may wait for other laptops)
        # to the verified image; a laptop that joined mid-stream counts from joining.
        start = next(t for t in (session.first_data_at, self._joined_at, self._started)
                     if t is not None)
        end = self._verified_at if self._verified_at is not None else trio.current_time()
        stats, announce = session.stats, session.announce
        verified = session.verified_bytes
        if ok and verified:
            kept = (f" ({format_bytes(self.compared * self._block_size)} of it was on this "
                    "disk already)" if self.compared else "")
            message = (f"the {format_bytes(self._image_size)} image is written; its "
                       f"{format_bytes(verified)} in use read back and verified{kept}.")
            if announce is not None and announce.unreadable:
                message += (f" {format_bytes(announce.unreadable)} of it could not be read "
                            "from the golden disk when it was captured and are zeros.")
        else:
            message = (f"the {format_bytes(self._image_size)} image is written and verified."
                       if ok else reason)
        return FinalReport(
            role="receiver",
            ok=ok,
            message=message,
            seconds=end - start,
            image_size=self._image_size,
            details={
                "session": self._name,
                "target": self.target_info.path,
                "image_sha256": announce.image_sha256.hex() if announce is not None else "",
                "host": dict(session.config.host),
                "blocks": session.nblocks,
                "resumed_blocks": self.resumed,
                "compared_blocks": self.compared,
                # What was read back and found right: the used blocks of a prepared image,
                # else the whole image its SHA-256 covers.
                "verified_bytes": (0 if not ok else self._image_size if self._hashed_whole
                                   else verified),
                "discarded_bytes": self.target.bytes_discarded if self.target else 0,
                "datagrams": stats.received,
                "duplicates": stats.duplicates,
                "garbled": stats.garbled,
                "foreign": stats.foreign,
                "rejected_blocks": stats.rejected,
                "naks": stats.naks_sent,
                "loss": round(session.loss, 6),
            },
        )
