"""The disk spool's segment files: their format, and operations on one segment at a time.

A segment file is a sequence of frames and nothing else::

    [u32 little-endian length N][N bytes: an encoded otel_llm.v1.SpoolRecord]

Each frame is appended with one ``write``. A reader walks the frames from an offset
and stops at the first one that is cut short (the length runs past the end of the
file), does not decode, has no ``format_version``, or whose CRC-32 of ``request``
differs from ``request_crc32``. That is a *torn tail* (a writer killed mid-append,
a failed write, a damaged disk): nothing from there on is trusted. A well-formed
record of a newer ``format_version`` than this reader knows is skipped alone.

Beside a segment being consumed, ``<segment>.ack`` holds how far it was consumed:
16 bytes ``<QQ`` (offset, offset XOR 2**64-1), rewritten in place by one ``pwrite``
so a crash leaves the old or the new offset, never a mix. An unreadable ack reads
as offset 0 (replay again rather than lose).

Names: ``<unix ns, 20 digits>-<pid>-<seq, 6 digits>.seg``, so sorting names sorts
segments by age. A writer creates ``.<name>.tmp``, locks it, then renames it, so a
reader never sees a new segment before its writer holds the lock.

Locks are ``flock`` locks (per open file description, so closing some other
descriptor of the same file never drops them, unlike ``fcntl``/``lockf`` locks).
Whoever holds a segment's lock owns it: its writer while it is active, afterwards one
reader or evictor at a time, who alone may update its ack and delete it.
"""

from __future__ import annotations

import enum
import itertools
import os
import struct
import sys
import time
import zlib
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from otel_llm._proto.otel_llm.v1.spool_pb2 import SpoolRecord

if sys.platform != "win32":
    import fcntl

__all__ = [
    "ACK_SUFFIX",
    "FORMAT_VERSION",
    "SEGMENT_SUFFIX",
    "SUPPORTED",
    "TMP_SUFFIX",
    "Claim",
    "FrameStatus",
    "SegmentInfo",
    "SpoolRecord",
    "claim_oldest",
    "claim_segment",
    "count_frames",
    "create_segment",
    "encode_frame",
    "is_segment_name",
    "read_ack",
    "read_frame",
    "read_from",
    "scan_directory",
    "segment_name",
    "write_ack",
]

FORMAT_VERSION = 1
SEGMENT_SUFFIX = ".seg"
ACK_SUFFIX = ".ack"
TMP_SUFFIX = ".tmp"

_HEADER = struct.Struct("<I")
_ACK = struct.Struct("<QQ")
_MASK64 = 2**64 - 1
_STALE_TMP_SECONDS = 60.0
_SEQ = itertools.count(1)  # process-wide, so two spools on one directory never collide

SUPPORTED = sys.platform != "win32"


class FrameStatus(enum.Enum):
    RECORD = "record"  # a verified record
    SKIP = "skip"  # well-formed, but a format_version this reader does not know
    END = "end"  # clean end of the segment
    TORN = "torn"  # cut short, undecodable or checksum mismatch: stop here


def segment_name(created_ns: int, pid: int, seq: int) -> str:
    return f"{created_ns:020d}-{pid}-{seq:06d}{SEGMENT_SUFFIX}"


def is_segment_name(name: str) -> bool:
    return name.endswith(SEGMENT_SUFFIX) and not name.startswith(".")


def encode_frame(
    body: bytes, *, destination: str, spans: int, attempts: int, created_ns: int
) -> bytes:
    record = SpoolRecord(
        format_version=FORMAT_VERSION,
        request=body,
        destination=destination,
        span_count=min(max(spans, 0), 2**32 - 1),
        attempts=min(max(attempts, 0), 2**32 - 1),
        created_time_unix_nano=created_ns,
        request_crc32=zlib.crc32(body),
    )
    payload: bytes = record.SerializeToString()
    return _HEADER.pack(len(payload)) + payload


def read_frame(data: bytes, pos: int) -> tuple[FrameStatus, SpoolRecord | None, int]:
    """The frame at ``pos`` of ``data``: (status, record if RECORD, offset after it)."""
    if pos >= len(data):
        return FrameStatus.END, None, pos
    start = pos + _HEADER.size
    if start > len(data):
        return FrameStatus.TORN, None, pos
    (length,) = _HEADER.unpack_from(data, pos)
    end = start + length
    if length == 0 or end > len(data):
        return FrameStatus.TORN, None, pos
    try:
        record = SpoolRecord.FromString(data[start:end])
    except DecodeError:
        return FrameStatus.TORN, None, pos
    if record.format_version == 0 or zlib.crc32(record.request) != record.request_crc32:
        return FrameStatus.TORN, None, pos
    if record.format_version > FORMAT_VERSION:
        return FrameStatus.SKIP, None, end
    return FrameStatus.RECORD, record, end


def read_from(fd: int, offset: int) -> bytes:
    """Everything in the file from ``offset`` to its end."""
    chunks: list[bytes] = []
    while True:
        chunk = os.pread(fd, 1 << 22, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def count_frames(fd: int, offset: int, size: int) -> tuple[int, int]:
    """(frames whose length fits, offset after the last) from ``offset``; headers only."""
    count = 0
    while offset + _HEADER.size <= size:
        header = os.pread(fd, _HEADER.size, offset)
        if len(header) < _HEADER.size:
            break
        (length,) = _HEADER.unpack(header)
        end = offset + _HEADER.size + length
        if length == 0 or end > size:
            break
        count += 1
        offset = end
    return count, offset


def read_ack(fd: int) -> int:
    """The consumed offset in an ack file; 0 when it is missing or unreadable."""
    raw = os.pread(fd, _ACK.size, 0)
    if len(raw) != _ACK.size:
        return 0
    offset, check = _ACK.unpack(raw)
    return int(offset) if offset ^ _MASK64 == check else 0


def write_ack(fd: int, offset: int) -> None:
    raw = _ACK.pack(offset, offset ^ _MASK64)
    if os.pwrite(fd, raw, 0) != len(raw):
        raise OSError("short write of the spool ack offset")


def _lock(fd: int) -> bool:
    """Exclusive and non-blocking: False when another open file description holds it."""
    if sys.platform == "win32":
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def create_segment(directory: Path, pid: int) -> tuple[int, str]:
    """A new segment, locked, open for appending: (fd, name)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
    for _ in range(3):
        name = segment_name(time.time_ns(), pid, next(_SEQ))
        tmp = directory / f".{name}{TMP_SUFFIX}"
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileExistsError:
            continue
        try:
            if not _lock(fd):
                raise OSError(f"could not lock the new spool segment {name}")
            os.rename(tmp, directory / name)  # visible only once locked
        except FileNotFoundError:  # a cleaner took the tmp file: try a new name
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            with suppress(OSError):
                os.unlink(tmp)
            raise
        return fd, name
    raise OSError(f"could not create a spool segment in {directory}")


@dataclass
class Claim:
    """A closed segment held locked for reading, with its ack file open."""

    path: Path
    fd: int
    ack_fd: int
    data: bytes  # the file from ``base`` to its end (closed segments never change)
    base: int
    pos: int  # absolute offset of the next frame

    @property
    def size(self) -> int:
        return self.base + len(self.data)

    def remaining(self) -> tuple[int, int]:
        """(batches, spans) not consumed yet, up to a torn tail."""
        batches = spans = 0
        status, record, pos = read_frame(self.data, self.pos - self.base)
        while status in (FrameStatus.RECORD, FrameStatus.SKIP):
            if record is not None:
                batches, spans = batches + 1, spans + record.span_count
            status, record, pos = read_frame(self.data, pos)
        return batches, spans

    def close(self) -> None:
        """Release the lock, leaving the files (the ack holds the progress)."""
        for fd in (self.ack_fd, self.fd):
            with suppress(OSError):
                os.close(fd)

    def delete(self) -> None:
        """Delete the segment, then its ack (an ack alone is harmless; the reverse order
        could replay the segment from its start), then release."""
        try:
            with suppress(FileNotFoundError):
                os.unlink(self.path)
            with suppress(FileNotFoundError):
                os.unlink(f"{self.path}{ACK_SUFFIX}")
        finally:
            self.close()


def claim_segment(path: Path) -> Claim | None:
    """Lock the segment at ``path`` and read it from its ack; None if someone holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if not _lock(fd):
            os.close(fd)
            return None
        st = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            os.close(fd)  # consumed and deleted while we took the lock
            return None
        ack_fd = os.open(f"{path}{ACK_SUFFIX}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            offset = read_ack(ack_fd)
            write_ack(ack_fd, offset)  # the ack exists before anything is handed out
            data = read_from(fd, offset)
        except BaseException:
            os.close(ack_fd)
            raise
    except BaseException:
        with suppress(OSError):
            os.close(fd)
        raise
    return Claim(path, fd, ack_fd, data, offset, offset)


def claim_oldest(directory: Path) -> Claim | None:
    """The oldest segment of ``directory`` that nobody holds, claimed; or None."""
    try:
        names = sorted(n for n in os.listdir(directory) if is_segment_name(n))
    except FileNotFoundError:
        return None
    for name in names:
        claim = claim_segment(directory / name)
        if claim is not None:
            return claim
    return None


@dataclass(frozen=True)
class SegmentInfo:
    size: int
    ack: int
    end: int  # where counting stopped
    count: int  # frames between ack and end


def scan_directory(directory: Path, seen: dict[str, SegmentInfo]) -> dict[str, SegmentInfo]:
    """Every segment of ``directory`` (oldest first); removes orphan acks and old tmps.

    ``seen`` is the previous result: unchanged segments are not read again, grown
    ones only from where they were counted up to.
    """
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return {}
    present, found = set(names), {}
    for name in names:
        path = directory / name
        if is_segment_name(name):
            info = _scan_segment(path, seen.get(name))
            if info is not None:
                found[name] = info
        elif name.endswith(ACK_SUFFIX) and name[: -len(ACK_SUFFIX)] not in present:
            with suppress(FileNotFoundError):
                os.unlink(path)
        elif name.startswith(".") and name.endswith(TMP_SUFFIX):
            with suppress(FileNotFoundError):
                if time.time() - path.stat().st_mtime > _STALE_TMP_SECONDS:
                    os.unlink(path)  # its writer died before naming it
    return found


def _scan_segment(path: Path, old: SegmentInfo | None) -> SegmentInfo | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        try:
            ack_fd = os.open(f"{path}{ACK_SUFFIX}", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            ack = 0
        else:
            try:
                ack = read_ack(ack_fd)
            finally:
                os.close(ack_fd)
        if old is not None and old.ack == ack and old.size <= size:
            count, end = count_frames(fd, old.end, size)
            return SegmentInfo(size, ack, end, old.count + count)
        count, end = count_frames(fd, ack, size)
        return SegmentInfo(size, ack, end, count)
    finally:
        os.close(fd)
