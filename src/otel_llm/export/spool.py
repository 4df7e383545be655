"""The durable disk spool: where batches that could not be delivered wait.

Layout: one directory per service and destination, ``{spool_dir}/{service}/{destination}/``
(names sanitized), holding append-only segment files (format: :mod:`spool_segments`).
Each :class:`DiskSpool` appends to an active segment of its own, named after its pid and
a sequence number, and holds an exclusive ``flock`` on it while it is open. It rotates
to a new segment at ``segment_bytes``, when the segment is ``segment_seconds`` old, when
its own reader has nothing else to read, and on :meth:`DiskSpool.close`.

Reading claims whole segments: ``take()`` opens the oldest segment it can lock
exclusively without blocking, i.e. a closed one, of this process or another, live or
dead (the kernel drops a dead writer's lock). It holds that lock while it consumes the
segment, records its progress in ``<segment>.ack`` before handing a batch out, and
deletes the segment (then its ack) when it is consumed. So two processes never read the
same segment at once, and a record handed out is never handed out again, by anyone,
even after a crash. Order is oldest first, segment by segment (by creation time).

Delivery semantics:

- ``take()`` *removes* the batch: its ack is on disk before it returns. The caller then
  delivers it or ``put()``s it back (to the newest end). A crash between ``take()`` and
  that is the only way the spool loses a batch it accepted: at-most-once for the one
  batch in flight. A crash before the ack is written loses nothing.
- ``replay(deliver)`` acks a record only after ``deliver`` returned True: a crash (or a
  lost response) during delivery means the batch is sent again later: at-least-once,
  duplicates possible (OTLP backends that upsert by span id absorb them).
- A torn tail (writer killed mid-append, failed write) ends that segment's reading:
  the records before it are delivered, the rest of that segment is dropped, ``torn``
  counts it. Durability is against process crashes (``kill -9``); against power loss or
  a kernel crash only with ``sync=True`` (an fsync per put and per ack).

The size bound ``max_bytes`` counts the segment files of the directory (all processes).
A put that would exceed it first evicts the oldest closed segments (their remaining
spans count as ``evicted``); a batch larger than the bound alone, or one that still does
not fit (space held by live writers or readers), is refused: ``put`` returns False and
the caller counts it dropped. ``bytes`` and ``batches`` are estimates kept up to date by
this instance and refreshed from the directory at most once a second.

Nothing raises into the caller: disk full, permissions and the like make ``put`` return
False and ``take`` return None, counted under ``errors`` and logged once.

Platforms: POSIX (``fcntl.flock``, ``os.pread``). Locks are advisory and may not hold on
network file systems. On Windows the spool is unsupported: ``put`` refuses everything
(counted under ``errors``). After ``os.fork()`` the child drops (without unlocking) the
parent's segment and claim and starts its own.
"""

from __future__ import annotations

import os
import re
import threading
import time
import zlib
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import platformdirs

from otel_llm.diagnostics import log_once, report, strict
from otel_llm.export.sender import Batch
from otel_llm.export.spool_segments import (
    SUPPORTED,
    Claim,
    FrameStatus,
    SegmentInfo,
    SpoolRecord,
    claim_oldest,
    claim_segment,
    create_segment,
    encode_frame,
    read_frame,
    scan_directory,
    write_ack,
)
from otel_llm.forking import after_fork_in_child

__all__ = ["DiskSpool", "default_spool_dir"]

_REFRESH_SECONDS = 1.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_COUNTERS = (
    *("spooled", "replayed", "evicted", "evicted_batches"),
    *("torn", "skipped", "refused", "errors"),
)


def default_spool_dir() -> Path:
    """``<user cache dir>/otel-llm/spool`` (platformdirs)."""
    return Path(platformdirs.user_cache_dir("otel-llm")) / "spool"


def _safe_name(name: str) -> str:
    safe = _UNSAFE.sub("_", name)[:64].strip(".") or "_"
    return safe if safe == name else f"{safe}-{zlib.crc32(name.encode()):08x}"


class DiskSpool:
    """A durable, size-bounded, multi-process FIFO of export batches for one destination.

    Implements the ``Spool`` protocol of :mod:`otel_llm.export.sender`. Thread-safe.

    Args:
        destination: The destination's name (its key in ``stats()``).
        service: The service name; spools of different services never mix.
        directory: The spool root; default :func:`default_spool_dir`.
        max_bytes: Bound on the directory's segment files (all processes together).
        segment_bytes: Rotate the active segment at this size (at most ``max_bytes / 4``).
        segment_seconds: Rotate, at the next put, an active segment this old.
        sync: fsync each put and ack (survive power loss, at a large cost per batch).
    """

    def __init__(
        self,
        destination: str,
        *,
        service: str = "unknown_service",
        directory: str | os.PathLike[str] | None = None,
        max_bytes: int = 256 * 2**20,
        segment_bytes: int = 4 * 2**20,
        segment_seconds: float = 5.0,
        sync: bool = False,
    ) -> None:
        for name, value in (("max_bytes", max_bytes), ("segment_bytes", segment_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not segment_seconds > 0:
            raise ValueError(f"segment_seconds must be positive, got {segment_seconds!r}")
        self.destination = destination
        root = Path(directory) if directory is not None else default_spool_dir()
        self.path = root / _safe_name(service) / _safe_name(destination)
        self._max_bytes = max_bytes
        self._segment_bytes = min(segment_bytes, max(1, max_bytes // 4))
        self._segment_seconds = segment_seconds
        self._sync = sync
        self._component = f"spool.{destination}"
        self._closed = False
        self._counts = dict.fromkeys(_COUNTERS, 0)  # guarded by _meta
        self._bytes = 0  # guarded by _meta (estimate)
        self._batches = 0  # guarded by _meta (estimate)
        self._scanned_at = -_REFRESH_SECONDS  # guarded by _meta
        self._seen: dict[str, SegmentInfo] = {}  # guarded by _scan_lock
        self._reset_in_process()
        after_fork_in_child(self._after_fork_in_child)
        try:
            self._scan()
        except Exception as exc:
            self._fail("open", exc)

    def _reset_in_process(self) -> None:
        # Lock order: _read_lock > _write_lock > _scan_lock > _meta; only _meta is never
        # held during I/O.
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._meta = threading.Lock()
        self._pid = os.getpid()
        self._fd: int | None = None  # guarded by _write_lock: the active segment
        self._name = ""  # guarded by _write_lock
        self._size = 0  # guarded by _write_lock
        self._records = 0  # guarded by _write_lock
        self._opened_at = 0.0  # guarded by _write_lock
        self._claim: Claim | None = None  # guarded by _read_lock

    def _after_fork_in_child(self) -> None:
        # Close the inherited descriptors without unlocking: the locks belong to the
        # parent's open file descriptions, which the parent keeps using.
        if self._fd is not None:
            with suppress(OSError):
                os.close(self._fd)
        if self._claim is not None:
            self._claim.close()
        self._reset_in_process()

    # -- Spool protocol -------------------------------------------------------------------
    def put(self, batch: Batch) -> bool:
        """Append ``batch``; False (counted) if it is refused or cannot be written."""
        with self._write_lock:
            if self._closed or not SUPPORTED:
                self._bump("refused" if self._closed else "errors")
                if not SUPPORTED:
                    log_once(self._component, "unsupported", "no disk spool on this platform")
                return False
            try:
                frame = encode_frame(
                    batch.body,
                    destination=self.destination,
                    spans=batch.spans,
                    attempts=batch.attempts,
                    created_ns=time.time_ns(),
                )
                if len(frame) > self._max_bytes or not self._make_room(len(frame)):
                    self._bump("refused")
                    return False
                self._append(frame)
            except Exception as exc:
                self._fail("put", exc)
                return False
        self._bump("spooled")
        return True

    def take(self) -> Batch | None:
        """Remove and return the oldest batch this instance can claim, or None."""
        with self._read_lock:
            if self._closed:
                return None
            try:
                found = self._next()
                if found is None:
                    return None
                self._commit(found[1])
            except Exception as exc:
                self._fail("take", exc)
                return None
        self._consumed()
        return _batch(found[0])

    def replay(
        self,
        deliver: Callable[[Batch], bool],
        *,
        timeout: float | None = None,
        limit: int | None = None,
    ) -> int:
        """Deliver spooled batches oldest first, each acked only once ``deliver`` is True.

        Stops at the first False (that batch stays first in line), when the spool is
        empty, after ``limit`` batches or ``timeout`` seconds. Runs ``deliver`` on the
        calling thread while holding this instance's read lock (``take`` waits). If
        ``deliver`` raises, the batch stays and the exception propagates.

        Returns:
            How many batches were delivered and removed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        done = 0
        with self._read_lock:
            while not self._closed and (limit is None or done < limit):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                try:
                    found = self._next()
                except Exception as exc:
                    self._fail("replay", exc)
                    break
                if found is None:
                    break
                if not deliver(_batch(found[0])):
                    self._release_claim()  # the backend is down: let eviction see it
                    break
                try:
                    self._commit(found[1])
                except Exception as exc:  # delivered, not acked: sent again later
                    self._fail("replay", exc)
                    break
                self._consumed()
                done += 1
        return done

    def __len__(self) -> int:
        self._refresh()
        with self._meta:
            return self._batches

    def stats(self) -> dict[str, int]:
        """Counters (batches unless named otherwise; ``evicted`` in spans) and estimates."""
        self._refresh()
        with self._meta:
            return {**self._counts, "bytes": self._bytes, "batches": self._batches}

    def close(self) -> None:
        """Close the active segment (others may now read it) and release any claim.

        Idempotent. Later puts are refused (counted), later takes return None.
        """
        with self._read_lock, self._write_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._close_segment()
            except Exception as exc:
                self._fail("close", exc)
            if self._claim is not None:
                self._claim.close()
                self._claim = None

    def __del__(self) -> None:
        if getattr(self, "_pid", None) != os.getpid():
            return
        fd, claim = getattr(self, "_fd", None), getattr(self, "_claim", None)
        if fd is not None:
            with suppress(OSError):
                os.close(fd)
        if claim is not None:
            claim.close()

    # -- writing (under _write_lock) --------------------------------------------------------
    def _append(self, frame: bytes) -> None:
        now = time.monotonic()
        full = self._size + len(frame) > self._segment_bytes
        if (
            self._fd is not None
            and self._records
            and (full or now - self._opened_at >= self._segment_seconds)
        ):
            self._close_segment()
        if self._fd is None:
            self._open_segment()
        assert self._fd is not None
        view, written = memoryview(frame), 0
        try:
            while written < len(frame):
                n = os.write(self._fd, view[written:])
                if n <= 0:
                    raise OSError("spool segment write made no progress")
                written += n
            if self._sync:
                os.fsync(self._fd)
        except BaseException:
            # Never leave a partial frame with good ones after it: cut it, move on.
            with suppress(OSError):
                os.ftruncate(self._fd, self._size)
            self._close_segment()
            raise
        self._size += len(frame)
        self._records += 1
        with self._meta:
            self._bytes += len(frame)
            self._batches += 1

    def _open_segment(self) -> None:
        self._fd, self._name = create_segment(self.path, self._pid)
        self._size = self._records = 0
        self._opened_at = time.monotonic()

    def _close_segment(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._size == 0:
                with suppress(FileNotFoundError):
                    os.unlink(self.path / self._name)
            elif self._sync:
                os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock: readers may claim it now

    def _make_room(self, need: int) -> bool:
        if self._estimate()[0] + need <= self._max_bytes:
            return True
        self._scan()
        for name in sorted(self._seen):  # oldest first
            if self._estimate()[0] + need <= self._max_bytes:
                return True
            if name != self._name or self._fd is None:
                self._evict(name)
        if self._estimate()[0] + need > self._max_bytes and self._fd is not None:
            name = self._name
            self._close_segment()
            self._evict(name)
        return self._estimate()[0] + need <= self._max_bytes

    def _evict(self, name: str) -> None:
        claim = claim_segment(self.path / name)
        if claim is None:
            return  # held by a live writer or reader
        batches, spans = claim.remaining()
        self._deleted(claim, batches)
        with self._meta:
            self._counts["evicted"] += spans
            self._counts["evicted_batches"] += batches

    # -- reading (under _read_lock) ---------------------------------------------------------
    def _next(self) -> tuple[SpoolRecord, int] | None:
        """The next verified record and the offset after it, without consuming it."""
        rotated = False
        while True:
            claim = self._claim
            if claim is None:
                claim = self._claim = claim_oldest(self.path)
                if claim is None:
                    if rotated or not self._rotate_own():
                        return None
                    rotated = True
                    continue
            status, record, end = read_frame(claim.data, claim.pos - claim.base)
            if status is FrameStatus.RECORD:
                assert record is not None
                return record, claim.base + end
            if status is FrameStatus.SKIP:
                self._bump("skipped")
                claim.pos = claim.base + end
                continue
            if status is FrameStatus.TORN:
                self._bump("torn")
                log_once(
                    self._component,
                    "torn",
                    "a spool segment ends in a torn record (writer killed mid-write?); "
                    "the records before it were kept",
                )
            self._claim = None
            self._deleted(claim, 0)

    def _release_claim(self) -> None:
        """Unlock the segment being read (its progress is in the ack), so that while the
        backend stays down, size-bound eviction can still take the oldest segment."""
        claim, self._claim = self._claim, None
        if claim is not None:
            claim.close()

    def _commit(self, end: int) -> None:
        claim = self._claim
        assert claim is not None
        write_ack(claim.ack_fd, end)
        if self._sync:
            os.fsync(claim.ack_fd)
        claim.pos = end

    def _rotate_own(self) -> bool:
        """Close this instance's active segment if it holds records (so it can be read)."""
        with self._write_lock:
            if self._fd is None or not self._records:
                return False
            self._close_segment()
            return True

    def _deleted(self, claim: Claim, batches: int) -> None:
        claim.delete()
        with self._meta:
            self._bytes = max(0, self._bytes - claim.size)
            self._batches = max(0, self._batches - batches)

    # -- estimates -----------------------------------------------------------------------
    def _estimate(self) -> tuple[int, int]:
        with self._meta:
            return self._bytes, self._batches

    def _refresh(self) -> None:
        with self._meta:
            stale = time.monotonic() - self._scanned_at >= _REFRESH_SECONDS
        if stale:
            try:
                self._scan()
            except Exception as exc:
                self._fail("scan", exc)

    def _scan(self) -> None:
        """Recount bytes and batches from the directory."""
        if not SUPPORTED:
            return
        with self._scan_lock:
            self._seen = seen = scan_directory(self.path, self._seen)
            with self._meta:
                self._bytes = sum(i.size for i in seen.values())
                self._batches = sum(i.count for i in seen.values())
                self._scanned_at = time.monotonic()

    # -- counters and errors ---------------------------------------------------------------
    def _bump(self, counter: str) -> None:
        with self._meta:
            self._counts[counter] += 1

    def _consumed(self) -> None:
        with self._meta:
            self._counts["replayed"] += 1
            self._batches = max(0, self._batches - 1)

    def _fail(self, op: str, exc: Exception) -> None:
        self._bump("errors")
        if not isinstance(exc, OSError):
            report(self._component, exc)  # our bug: counted, logged once
            if strict():
                raise exc
            return
        kind = type(exc).__name__
        log_once(
            self._component,
            f"{op}.{kind}",
            f"disk spool {op} failed ({kind}: {exc.strerror or exc}) in {self.path}; "
            "batches that cannot be spooled are counted as dropped",
        )


def _batch(record: SpoolRecord) -> Batch:
    return Batch(record.request, record.span_count, record.attempts)
