"""Cutting captures for tests: the first seconds of a classic pcap file (no pytest in here)."""

from __future__ import annotations

import struct
from pathlib import Path


def first_seconds(capture: Path, seconds: float, output: Path) -> Path:
    """The capture's first ``seconds`` (classic pcap: 24-byte header, 16-byte record headers)."""
    data = capture.read_bytes()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    kept, offset, start = bytearray(data[:24]), 24, None
    while offset < len(data):
        sec, usec, length, _ = struct.unpack_from(f"{endian}IIII", data, offset)
        start = sec + usec / 1e6 if start is None else start
        if sec + usec / 1e6 - start > seconds:
            break
        kept += data[offset : offset + 16 + length]
        offset += 16 + length
    output.write_bytes(bytes(kept))
    return output
