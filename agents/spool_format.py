"""On-disk record format of the spool, and a scanner that survives torn and corrupt records.

A segment file is a sequence of records, each::

    magic  b"SKR1"   4 bytes
    length u32 LE    payload length
    seq    u64 LE    sekimori.seq of the event
    crc32  u32 LE    zlib.crc32 over (length, seq, payload)
    payload          the sealed event as UTF-8 JSON

A record whose checksum does not match is skipped; the scanner then looks for the next magic
whose record checks out (resynchronisation), so one flipped bit loses one record, not a file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Final

MAGIC: Final = b"SKR1"
HEADER: Final = struct.Struct("<4sIQI")
_CRC_PREFIX: Final = struct.Struct("<IQ")
MAX_PAYLOAD: Final = 64 * 1024 * 1024


def encode_record(seq: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(_CRC_PREFIX.pack(len(payload), seq)))
    return HEADER.pack(MAGIC, len(payload), seq, crc) + payload


@dataclass(frozen=True, slots=True)
class RecordPos:
    seq: int
    offset: int  # of the header
    size: int  # header + payload

    @property
    def payload_offset(self) -> int:
        return self.offset + HEADER.size


@dataclass
class ScanResult:
    records: list[RecordPos] = field(default_factory=list)
    good_end: int = 0  # end of the last valid record
    corrupt_regions: int = 0  # stretches of bytes that did not check out
    skipped_bytes: int = 0


def decode_at(data: bytes, offset: int) -> RecordPos | None:
    """The valid record starting at ``offset``, or None (torn, bad magic or bad checksum)."""
    if offset + HEADER.size > len(data):
        return None
    magic, length, seq, crc = HEADER.unpack_from(data, offset)
    if magic != MAGIC or length > MAX_PAYLOAD:
        return None
    start = offset + HEADER.size
    if start + length > len(data):
        return None
    payload = data[start : start + length]
    if zlib.crc32(payload, zlib.crc32(_CRC_PREFIX.pack(length, seq))) != crc:
        return None
    return RecordPos(seq=seq, offset=offset, size=HEADER.size + length)


def scan(data: bytes) -> ScanResult:
    result = ScanResult()
    offset = 0
    while offset < len(data):
        record = decode_at(data, offset)
        if record is not None:
            result.records.append(record)
            offset += record.size
            result.good_end = offset
            continue
        result.corrupt_regions += 1
        candidate = data.find(MAGIC, offset + 1)
        while candidate != -1 and decode_at(data, candidate) is None:
            candidate = data.find(MAGIC, candidate + 1)
        end = len(data) if candidate == -1 else candidate
        result.skipped_bytes += end - offset
        offset = end
    return result
