from array import array

from protocol.config import Addr

def recv_into(fd: int, buf: bytearray, slot_size: int, nslots: int, spans: array[int],
              slots: array[int], addrs: bytearray, gro: bool, /) -> int: ...
def send_run(fd: int, datagrams: list[tuple[bytes, Addr]], start: int, gso: bool, /
             ) -> tuple[int, int]: ...
