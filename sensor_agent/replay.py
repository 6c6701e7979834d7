"""Read a capture file and push it through the pipeline: as fast as it can, or at its pace.

Classic pcap (both byte orders, microsecond and nanosecond timestamps) is read in blocks
with ``struct.unpack_from`` over the record headers, no scapy and no per-frame objects
besides the (timestamp, bytes) pair the pipeline takes; memory stays bounded by the block
size. pcapng goes through scapy's raw reader (imported only then).

Packets that cannot be replayed are skipped, counted by reason and reported: pcapng packets
naming an interface the file never described (or no interface at all), of a link type that
is not Ethernet, or dated where no calendar goes (before 1970 or after 9999). A file of which
nothing could be read is an error (:class:`CaptureError`, exit 1), not an empty replay.
"""

from __future__ import annotations

import mmap
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .pipeline import Pipeline

BLOCK = 1 << 20  # 1 MiB per read: ~15,000 small frames, bounded memory
MAX_RECORD = 1 << 18  # 256 KiB: larger "records" mean a corrupt file
LINKTYPE_ETHERNET = 1
_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG = b"\x0a\x0d\x0d\x0a"
# Latest time a timestamp may show (9999-12-31T23:59:59Z): beyond, no calendar goes.
MAX_TIMESTAMP = 253_402_300_799.0

Batch = tuple[list[float], list[bytes]]
"""Timestamps and frames, in parallel: what ``Pipeline.feed_many`` takes."""


class CaptureError(Exception):
    """The file is not a capture this agent can read (message says why)."""


class _Truncated(Exception):
    """The file ends inside a record (a capture still being written, or cut short)."""


@dataclass
class ReplayStats:
    frames: int = 0
    seconds: float = 0.0
    truncated: bool = False
    events_by_kind: dict[str, int] = field(default_factory=dict)
    parse_errors: int = 0
    capture_span_s: float = 0.0
    peak_rss_mb: float | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # packets not replayed, by reason

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.events_by_kind.items())) or "none"
        lines = [
            f"frames       {self.frames:,} ({self.capture_span_s:,.1f} s of capture)",
            f"time         {self.seconds:.2f} s = {self.frames_per_s:,.0f} frames/s",
            f"events       {sum(self.events_by_kind.values())} ({kinds})",
            f"parse errors {self.parse_errors}",
        ]
        if self.peak_rss_mb is not None:
            lines.append(f"peak memory  {self.peak_rss_mb:.1f} MB (resident, whole process)")
        if self.truncated:
            lines.append("warning      the file ends in the middle of a record (truncated)")
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"warning      {count:,} packets skipped: {reason}")
        return "\n".join(lines)


def read_blocks(
    path: Path,
    progress: Callable[[int], None] | None = None,
    skipped: Counter[str] | None = None,
) -> Iterator[Batch]:
    """(timestamp, frame) records of ``path`` in batches; raises :class:`CaptureError`.
    Packets that cannot be replayed are counted in ``skipped`` by reason."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CaptureError(f"cannot open {path}: {exc.strerror or exc}") from exc
    with handle:
        magic = handle.read(4)
        if magic == _PCAPNG:
            yield from _pcapng_blocks(path, Counter() if skipped is None else skipped)
            return
        if magic not in _MAGIC:
            raise CaptureError(f"{path}: not a pcap or pcapng file (magic {magic.hex() or 'none'})")
        yield from _pcap_blocks(handle, magic, progress)


def _pcap_blocks(
    handle: IO[bytes], magic: bytes, progress: Callable[[int], None] | None
) -> Iterator[Batch]:
    endian, scale = _MAGIC[magic]
    header = handle.read(20)
    if len(header) < 20:
        raise CaptureError("pcap global header is truncated")
    linktype = struct.unpack(endian + "HHiIII", header)[-1] & 0x0FFFFFFF
    if linktype != LINKTYPE_ETHERNET:
        raise CaptureError(f"link type {linktype} is not Ethernet (1)")
    try:  # mapped, not read: one copy per frame (the slice) instead of three
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise CaptureError(f"cannot map the capture file: {exc}") from exc
    with mapped:
        yield from _pcap_records(mapped, endian, scale, progress)


def _pcap_records(
    mapped: mmap.mmap, endian: str, scale: float, progress: Callable[[int], None] | None
) -> Iterator[Batch]:
    # seconds, fraction, captured length; unsigned, so a length never walks backwards
    record = struct.Struct(endian + "III4x").unpack_from
    end = len(mapped)
    pos = 24
    cut = False
    while pos < end and not cut:
        limit = min(pos + BLOCK, end)
        stamps: list[float] = []
        frames: list[bytes] = []
        add_stamp = stamps.append
        add_frame = frames.append
        try:  # the inner loop does only what every record needs; the checks come after it
            while pos < limit:
                sec, frac, incl = record(mapped, pos)
                start = pos + 16
                pos = start + incl
                add_stamp(sec + frac * scale)
                add_frame(mapped[start:pos])
        except struct.error:  # fewer than 16 bytes left: the last record header is cut
            cut = True
        if pos > end:  # the last frame is cut (or its length is garbage)
            cut = True
            stamps.pop()
            frame = frames.pop()
            if pos - end > MAX_RECORD:
                raise CaptureError(
                    f"record at byte {pos - 16 - (pos - start)} claims {pos - start} bytes"
                    f" ({len(frame)} left in the file)"
                )
            pos = start - 16
        if progress is not None:
            progress(pos)
        # Release the pages read so far: peak memory stays bounded, whatever the file size.
        if pos > mmap.PAGESIZE:
            mapped.madvise(mmap.MADV_DONTNEED, 0, pos - pos % mmap.PAGESIZE)
        yield stamps, frames
    if cut:
        raise _Truncated


SKIP_NO_INTERFACE = "no interface block describes their interface (a pcapng without IDB)"
SKIP_LINKTYPE = "link type is not Ethernet"
SKIP_TIMESTAMP = "timestamp before 1970 or after 9999"


def _pcapng_blocks(path: Path, skipped: Counter[str]) -> Iterator[Batch]:
    from scapy.utils import RawPcapNgReader  # noqa: PLC0415 - keeps scapy off the pcap path

    class Reader(RawPcapNgReader):
        """scapy's reader, counting (not warning about, once per packet) the packets that
        name an interface the file never described."""

        unknown_interface = 0

        def _check_interface_id(self, intid: int) -> bool:
            if intid < len(self.interfaces):
                return True
            self.unknown_interface += 1
            return False

    try:
        reader = Reader(str(path))
    except Exception as exc:
        raise CaptureError(f"{path}: unreadable pcapng: {exc}") from exc
    with reader:
        stamps: list[float] = []
        frames: list[bytes] = []
        last = 0.0
        read = 0
        while True:
            try:
                data, meta = reader._read_packet()
            except EOFError:
                break
            except Exception as exc:  # scapy on a malformed block
                raise CaptureError(
                    f"{path}: unreadable pcapng block after {read} packets: {exc}"
                ) from exc
            if meta.linktype != LINKTYPE_ETHERNET:
                skipped[SKIP_LINKTYPE] += 1
                continue
            if meta.tshigh is not None:
                ts = ((meta.tshigh << 32) | meta.tslow) / float(meta.tsresol or 1)
                if not 0.0 <= ts <= MAX_TIMESTAMP:
                    skipped[SKIP_TIMESTAMP] += 1
                    continue
                last = ts
            stamps.append(last)
            frames.append(data)
            read += 1
            if len(frames) >= 10000:
                yield stamps, frames
                stamps, frames = [], []
        if reader.unknown_interface:
            skipped[SKIP_NO_INTERFACE] += reader.unknown_interface
        yield stamps, frames


def paced(
    batches: Iterable[Batch],
    speed: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Batch]:
    """``batches`` re-cut so that each frame comes out when it is due: its offset from the
    first frame, divided by ``speed``, after the first frame came out. Frames that are due
    already (or behind) come out at once, so a slow consumer only stretches the replay."""
    origin: float | None = None
    started = 0.0
    for stamps, frames in batches:
        i, count = 0, len(stamps)
        while i < count:
            if origin is None:
                origin, started = stamps[i], clock()
            wait = started + (stamps[i] - origin) / speed - clock()
            if wait > 0:
                sleep(min(wait, 0.1))
                continue
            due = origin + (clock() - started) * speed
            j = i + 1
            while j < count and stamps[j] <= due:
                j += 1
            yield stamps[i:j], frames[i:j]
            i = j


def replay(
    path: Path,
    pipeline: Pipeline,
    show_progress: bool | None = None,
    speed: float | None = None,
) -> ReplayStats:
    """Push every frame of ``path`` through ``pipeline`` (``speed``: at that multiple of the
    capture's pace, see :func:`paced`; None: as fast as possible); raises
    :class:`CaptureError`."""
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    size = path.stat().st_size if path.exists() else 0
    bar = _ProgressBar(size) if show_progress and size else None
    stats = ReplayStats()
    frames_before = pipeline.frames
    started = time.perf_counter()
    feed = pipeline.feed_many
    skipped: Counter[str] = Counter()
    try:
        batches = read_blocks(path, bar.update if bar else None, skipped)
        for stamps, frames in batches if speed is None else paced(batches, speed):
            feed(stamps, frames)
    except _Truncated:
        stats.truncated = True
    finally:
        if bar:
            bar.close()
    stats.skipped = dict(skipped)
    if skipped and pipeline.frames == frames_before:
        reasons = "; ".join(f"{n:,} packets: {why}" for why, n in sorted(skipped.items()))
        raise CaptureError(f"{path}: no packet could be replayed ({reasons})")
    pipeline.finish()
    stats.seconds = time.perf_counter() - started
    stats.frames = pipeline.frames - frames_before
    stats.events_by_kind = dict(pipeline.events_by_kind)
    stats.parse_errors = pipeline.parse_errors
    if pipeline.first_ts is not None:
        stats.capture_span_s = max(pipeline.last_ts - pipeline.first_ts, 0.0)
    stats.peak_rss_mb = peak_rss_mb()
    return stats


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM), in MB; ``None`` where /proc lacks it."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


class _ProgressBar:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, total: int, out: Any = None) -> None:
        self.total = total
        self.out = out or sys.stderr
        self.shown = -1

    def update(self, done: int) -> None:
        percent = min(100, done * 100 // self.total)
        if percent != self.shown:
            self.shown = percent
            filled = percent * 30 // 100
            self.out.write(f"\rreplay [{'#' * filled}{'.' * (30 - filled)}] {percent:3d}%")
            self.out.flush()

    def close(self) -> None:
        self.out.write("\n")
        self.out.flush()
