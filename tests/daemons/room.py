"""A classroom of the real daemon loops over the netsim trio adapter, in trio time."""

from __future__ import annotations

import hashlib
import io
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from driver.console import make_console
from driver.loop import Worker
from driver.report import FinalReport
from mcastd.image import ImageSource
from mcastd.serve import SenderDaemon
from netsim.images import make_image
from protocol.config import DISCOVERY_ADDR, ReceiverConfig, SenderConfig
from protocol.manifest import Manifest, block_digest
from protocol.receiver import ReceiverSession
from protocol.seal import Sealer, session_symbol_size
from protocol.sender import SenderSession
from protocol.trust import Signer
from receiver.daemon import ReceiverDaemon
from receiver.target import Target, TargetInfo, check_target
from tests.daemons.fake_net import FakeEndpoint, FakeNetwork, FakeReceiverNet

BLOCK = 256 << 10


@dataclass
class Room:
    image: bytes
    sender: FinalReport | None = None
    receivers: dict[int, FinalReport] = field(default_factory=dict)
    targets: dict[int, Path] = field(default_factory=dict)
    net: FakeNetwork | None = None
    sender_endpoint: FakeEndpoint | None = None
    peak_unwritten: int = 0  # complete blocks that waited for the disk at once, at most
    log: io.StringIO = field(default_factory=io.StringIO)  # every console line, as JSON

    def written(self, i: int) -> bytes:
        return self.targets[i].read_bytes()


async def run_room(
    tmp_path: Path,
    *,
    receivers: int = 3,
    size: int = 3 << 20,
    loss: float = 0.0,
    seed: int = 1,
    late: dict[int, float] | None = None,
    vanish: dict[int, float] | None = None,
    infos: dict[int, TargetInfo] | None = None,
    open_target: Callable[[TargetInfo, int], Target] = Target,
    send_limit: int | None = None,
    sender: bool = True,
    discovery_timeout: float | None = None,
    min_receivers: int | None = None,
    disk: Worker | None = None,
    state_dir: Path | None = None,
    secret: bytes | None = None,
    laptop_secrets: dict[int, bytes | None] | None = None,
    signer: Signer | None = None,
    replayed: bytes | None = None,
    sender_delay: float = 0.0,
    manifest_of: Callable[[bytes], bytes] | None = None,
    shrink_after: float | None = None,
    hosts: dict[int, dict[str, str]] | None = None,
) -> Room:
    """``secret``: the sender encrypts with it, and so do laptops not in ``laptop_secrets``.
    ``signer``: the sender signs and the laptops trust only it. ``replayed``: a datagram a
    rogue host sends to the discovery group every 0.25 s from the start (the sender starts
    ``sender_delay`` later). ``manifest_of``: the signed manifest is made from this function of
    the image instead (a manifest that does not match the blocks). ``shrink_after``: the image
    file is cut to half its size then, mid-transfer. ``hosts``: who some laptops say they are
    (as receiver/identity.py would find)."""
    image = make_image(size, seed, "disklike")
    path = tmp_path / "image.img"
    path.write_bytes(image)
    room = Room(image)
    late, vanish, infos = late or {}, vanish or {}, infos or {}
    room.log = io.StringIO()
    console = make_console(json_mode=True, verbosity=1, stream=room.log, err=room.log)
    inline = Worker(1, inline=True)  # threads would let MockClock's autojump race ahead

    async with trio.open_nursery() as nursery:
        net = room.net = FakeNetwork(nursery, loss=loss, seed=seed, send_limit=send_limit)

        async def laptop(i: int) -> None:
            await trio.sleep(late.get(i, 0.0))
            room.targets[i] = tmp_path / f"r{i}.img"
            info = infos.get(i) or check_target(str(room.targets[i]))
            key = (laptop_secrets or {}).get(i, secret)
            sealer = Sealer(key, random.Random(seed * 200 + i)) if key is not None else None
            trusted = frozenset({signer.fingerprint}) if signer is not None else None
            host = tuple((hosts or {}).get(i, {}).items())
            session = ReceiverSession(ReceiverConfig(trusted=trusted, host=host),
                                      random.Random(seed * 100 + i),
                                      trio.current_time(), sealer=sealer)
            lan = FakeReceiverNet(net, f"10.0.1.{i + 2}", DISCOVERY_ADDR)
            daemon = ReceiverDaemon(session, lan, info, console, open_target=open_target,
                                    discovery_timeout=discovery_timeout,
                                    worker=disk or inline, state_dir=state_dir)
            with trio.move_on_after(vanish.get(i, float("inf"))):
                room.receivers[i] = await daemon.run()
                room.peak_unwritten = max(room.peak_unwritten, daemon.peak_unwritten)
            lan.close()

        async def replay(data: bytes) -> None:
            rogue = net.endpoint("10.0.0.66")
            for _ in range(400):  # bounded: 100 s of replays
                rogue.send_batch([(data, DISCOVERY_ADDR)])
                await trio.sleep(0.25)

        async def shrink(after: float) -> None:
            await trio.sleep(after)
            os.truncate(path, size // 2)

        async with trio.open_nursery() as laptops:
            if shrink_after is not None:
                nursery.start_soon(shrink, shrink_after)
            if replayed is not None:
                nursery.start_soon(replay, replayed)
            for i in range(receivers):
                laptops.start_soon(laptop, i)
            await trio.sleep(sender_delay)
            if sender:
                source = ImageSource(str(path), BLOCK)
                endpoint = room.sender_endpoint = net.endpoint("10.0.0.1")
                config = SenderConfig(
                    image_size=len(image), image_sha256=hashlib.sha256(image).digest(),
                    control_addr=endpoint.address, block_size=BLOCK, rate_bps=100e6,
                    min_receivers=min_receivers or receivers, max_wait=5.0,
                    symbol_size=session_symbol_size(sealed=bool(secret)),
                    created=2000.0,
                )
                sealer = Sealer(secret, random.Random(seed * 300)) if secret is not None else None
                signed = manifest_of(image) if manifest_of is not None else image
                manifest = Manifest(b"".join(
                    block_digest(signed[i : i + BLOCK]) for i in range(0, len(signed), BLOCK)))
                session = SenderSession(config, random.Random(seed), trio.current_time(),
                                        sealer=sealer, signer=signer,
                                        manifest=manifest if signer is not None else None)
                room.sender = await SenderDaemon(
                    session, source, endpoint, console, worker=inline
                ).run()
                source.close()
        nursery.cancel_scope.cancel()  # datagrams still in flight
    return room
