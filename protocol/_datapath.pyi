from array import array

from .transfer import Transfer

def place_run(transfer: Transfer, tag: int, buf: bytearray | memoryview, spans: array[int],
              start: int, end: int, /) -> int: ...
def source_datagrams(template: bytes, payload: bytes | memoryview, symbol_size: int,
                     groups: int, start: int, end: int, seq: int, /) -> list[bytes]: ...
