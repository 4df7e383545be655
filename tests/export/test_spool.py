"""The disk spool: order, restarts, torn tails, kill -9, processes sharing it, bounds, fork."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import traceback
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from otel_llm.export.sender import Batch, Spool
from otel_llm.export.spool import DiskSpool, default_spool_dir
from otel_llm.export.spool_segments import FORMAT_VERSION, SpoolRecord, encode_frame

SERVICE = "svc"
DEST = "langfuse"

# Subprocesses share this helper code: ids are the first 8 bytes of each body.
_PRELUDE = """
import json, os, sys
from pathlib import Path
from otel_llm.export.sender import Batch
from otel_llm.export.spool import DiskSpool

def batch(i, size=64):
    return Batch(b"%08d|" % i + b"x" * size, i % 7 + 1, i % 3)

def ident(b):
    return int(b.body[:8])
"""


def _batch(i: int, size: int = 64) -> Batch:
    return Batch(b"%08d|" % i + b"x" * size, i % 7 + 1, i % 3)


def _id(batch: Batch) -> int:
    return int(batch.body[:8])


def _drain(spool: DiskSpool) -> list[int]:
    ids = []
    while (b := spool.take()) is not None:
        ids.append(_id(b))
    return ids


def _segments(spool: DiskSpool) -> list[Path]:
    return sorted(spool.path.glob("*.seg"))


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., DiskSpool]]:
    made: list[DiskSpool] = []

    def make(**kw: object) -> DiskSpool:
        spool = DiskSpool(DEST, service=SERVICE, directory=tmp_path, **kw)  # type: ignore[arg-type]
        made.append(spool)
        return spool

    yield make
    for spool in made:
        spool.close()


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _in_fork(child: Callable[[], int]) -> int:
    """Run ``child`` in a real forked child; its return value is the exit status."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = child()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# -- basics ----------------------------------------------------------------------------------


def test_takes_oldest_first_and_removes(make: Callable[..., DiskSpool]) -> None:
    spool = make(segment_bytes=300)  # a few records per segment
    as_protocol: Spool = spool  # what the sender needs
    assert as_protocol is spool
    for i in range(10):
        assert spool.put(_batch(i))
    assert len(spool) == 10
    taken = [spool.take() for _ in range(10)]
    assert [_id(b) for b in taken if b] == list(range(10))
    assert taken[3] == _batch(3)  # body, spans and attempts kept
    assert spool.take() is None and len(spool) == 0
    stats = spool.stats()
    assert stats["spooled"] == 10 and stats["replayed"] == 10
    assert stats["batches"] == 0 and stats["bytes"] == 0 and stats["torn"] == 0
    assert _segments(spool) == [] and list(spool.path.iterdir()) == []


def test_put_back_after_take_goes_to_the_end(make: Callable[..., DiskSpool]) -> None:
    spool = make()
    for i in range(3):
        spool.put(_batch(i))
    first = spool.take()
    assert first is not None and spool.put(first)
    assert _drain(spool) == [1, 2, 0]


def test_layout_is_per_service_and_destination_with_safe_names(tmp_path: Path) -> None:
    spool = DiskSpool("../a b/c", service="my service", directory=tmp_path)
    assert spool.path.parent.parent == tmp_path
    assert ".." not in spool.path.parts and "/" not in spool.path.name
    assert spool.path != DiskSpool("__a_b_c", service="my service", directory=tmp_path).path
    assert spool.put(_batch(1)) and _drain(spool) == [1]
    spool.close()
    assert DiskSpool("x", service="s").path == default_spool_dir() / "s" / "x"


def test_files_are_private_and_rotate_by_age(make: Callable[..., DiskSpool]) -> None:
    spool = make(segment_seconds=1e-9)  # every put finds its segment old enough
    for i in range(3):
        spool.put(_batch(i))
    segments = _segments(spool)
    assert len(segments) == 3  # the spool holds prompts: owner-only
    assert all(p.stat().st_mode & 0o077 == 0 for p in [spool.path, *segments])
    assert _drain(spool) == [0, 1, 2]


def test_threads_put_and_take_each_batch_once(make: Callable[..., DiskSpool]) -> None:
    spool = make(segment_bytes=500)
    taken: list[int] = []
    writers_done = threading.Event()

    def write(start: int) -> None:
        for i in range(start, start + 200):
            assert spool.put(_batch(i))

    def read() -> None:
        while True:
            finished = writers_done.is_set()
            b = spool.take()
            if b is not None:
                taken.append(_id(b))
            elif finished:
                return

    writers = [threading.Thread(target=write, args=(k * 1000,)) for k in range(3)]
    reader = threading.Thread(target=read)
    for t in [*writers, reader]:
        t.start()
    for t in writers:
        t.join()
    writers_done.set()
    reader.join()
    assert sorted(taken) == sorted(i for k in range(3) for i in range(k * 1000, k * 1000 + 200))


def test_newer_format_records_are_skipped_alone(make: Callable[..., DiskSpool]) -> None:
    spool = make()
    spool.put(_batch(0))
    spool.close()
    (segment,) = _segments(spool)
    future = SpoolRecord(
        format_version=FORMAT_VERSION + 1, request=b"?", request_crc32=zlib.crc32(b"?")
    )
    payload = future.SerializeToString()
    with segment.open("ab") as f:
        f.write(struct.pack("<I", len(payload)) + payload)
        f.write(encode_frame(b"%08d|" % 1, destination=DEST, spans=1, attempts=0, created_ns=1))
    again = make()
    assert _drain(again) == [0, 1]
    assert again.stats()["skipped"] == 1 and again.stats()["torn"] == 0


def test_orphan_acks_and_abandoned_tmp_files_are_removed(make: Callable[..., DiskSpool]) -> None:
    spool = make()
    spool.path.mkdir(parents=True)
    orphan = spool.path / "00000000000000000001-1-000001.seg.ack"
    abandoned = spool.path / ".00000000000000000002-1-000002.seg.tmp"
    orphan.write_bytes(b"")
    abandoned.write_bytes(b"")
    os.utime(abandoned, (1, 1))
    spool.close()
    make().stats()
    assert list(spool.path.iterdir()) == []


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="max_bytes must be a positive integer"):
        DiskSpool(DEST, max_bytes=0)
    with pytest.raises(ValueError, match="segment_seconds"):
        DiskSpool(DEST, segment_seconds=0)


def test_close_is_idempotent_and_refuses_later_puts(make: Callable[..., DiskSpool]) -> None:
    spool = make()
    spool.put(_batch(0))
    spool.close()
    spool.close()
    assert not spool.put(_batch(1)) and spool.take() is None
    assert spool.stats()["refused"] == 1
    assert _drain(make()) == [0]


def test_replay_acks_only_delivered_batches(make: Callable[..., DiskSpool]) -> None:
    spool = make()
    for i in range(5):
        spool.put(_batch(i))
    seen: list[int] = []

    def deliver(batch: Batch) -> bool:
        seen.append(_id(batch))
        return _id(batch) != 2

    assert spool.replay(deliver) == 2
    assert seen == [0, 1, 2]

    def boom(batch: Batch) -> bool:
        raise RuntimeError("backend client bug")

    with pytest.raises(RuntimeError):
        spool.replay(boom)
    assert spool.replay(lambda b: True, limit=2) == 2
    assert _drain(spool) == [4]
    assert spool.stats()["replayed"] == 5


# -- restarts and crashes -------------------------------------------------------------------


def test_batches_survive_a_restart(make: Callable[..., DiskSpool]) -> None:
    first = make()
    for i in range(5):
        first.put(_batch(i))
    assert _id(first.take()) == 0  # type: ignore[arg-type]
    first.close()
    again = make()
    assert len(again) == 4
    assert _drain(again) == [1, 2, 3, 4]


def test_progress_survives_a_crash_of_the_reader(tmp_path: Path) -> None:
    child = _python(
        """
        spool = DiskSpool("langfuse", service="svc", directory=sys.argv[1], segment_bytes=300)
        for i in range(12):
            spool.put(batch(i))
        print(json.dumps([ident(spool.take()) for _ in range(5)]), flush=True)
        os._exit(0)  # no close(): locks go with the process, acks stay on disk
        """,
        str(tmp_path),
    )
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and json.loads(out) == [0, 1, 2, 3, 4]
    spool = DiskSpool(DEST, service=SERVICE, directory=tmp_path)
    assert _drain(spool) == list(range(5, 12))
    spool.close()


def _frames(path: Path) -> tuple[int, bool]:
    """(complete frames, torn tail?) of a segment, parsed independently of the spool."""
    data, pos, n = path.read_bytes(), 0, 0
    while pos + 4 <= len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        if pos + 4 + length > len(data):
            break
        pos, n = pos + 4 + length, n + 1
    return n, pos != len(data)


def test_truncated_tail_keeps_earlier_records(make: Callable[..., DiskSpool]) -> None:
    spool = make()
    for i in range(5):
        spool.put(_batch(i))
    spool.close()
    (segment,) = _segments(spool)
    os.truncate(segment, segment.stat().st_size - 20)
    assert _frames(segment) == (4, True)
    again = make()
    assert _drain(again) == [0, 1, 2, 3]
    assert again.stats()["torn"] == 1
    assert _segments(again) == []  # consumed, deleted


@pytest.mark.parametrize("victim", [4, 2])
def test_flipped_byte_stops_reading_that_segment(
    make: Callable[..., DiskSpool], victim: int
) -> None:
    spool = make()
    for i in range(5):
        spool.put(_batch(i))
    spool.close()
    (segment,) = _segments(spool)
    data = bytearray(segment.read_bytes())
    data[data.index(b"%08d|" % victim) + 20] ^= 0x01  # inside that request's bytes
    segment.write_bytes(bytes(data))
    again = make()
    assert _drain(again) == list(range(victim))
    assert again.stats()["torn"] == 1


def test_kill_9_mid_append_loses_only_the_torn_record(tmp_path: Path) -> None:
    child = _python(
        """
        spool = DiskSpool("langfuse", service="svc", directory=sys.argv[1],
                          max_bytes=2**31, segment_bytes=2**31, segment_seconds=3600)
        for i in range(5):
            spool.put(batch(i))
        (seg,) = spool.path.glob("*.seg")
        print(seg, seg.stat().st_size, flush=True)
        sys.stdin.readline()
        big = 64 * 2**20
        for i in range(5, 100):
            spool.put(batch(i, big))
        """,
        str(tmp_path),
    )
    assert child.stdin and child.stdout
    name, size = child.stdout.readline().split()
    segment, start = Path(name), int(size)
    child.stdin.write("go\n")
    child.stdin.flush()
    while not start < segment.stat().st_size < start + 64 * 2**20:
        assert child.poll() is None, "the writer exited early"
    # The 64 MiB append has begun and not finished: kill it mid-write.
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    complete, torn = _frames(segment)
    assert torn and complete >= 5
    spool = DiskSpool(DEST, service=SERVICE, directory=tmp_path)
    assert _drain(spool) == list(range(complete))
    assert spool.stats()["torn"] == 1
    spool.close()


def test_failed_write_is_cut_off_not_left_torn(make: Callable[..., DiskSpool]) -> None:
    def child() -> int:  # a file size limit makes the append stop half way
        spool = make(segment_seconds=3600)
        spool.put(_batch(0))
        (segment,) = _segments(spool)
        size = segment.stat().st_size
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1000, hard))
        refused = not spool.put(_batch(1, 5000))  # 1000 bytes written, then EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        cut = segment.stat().st_size == size
        ok = refused and cut and spool.put(_batch(2)) and spool.stats()["errors"] == 1
        spool.close()
        return 0 if ok else 1

    assert _in_fork(child) == 0
    spool = make()
    assert _drain(spool) == [0, 2]
    assert spool.stats()["torn"] == 0


# -- processes sharing a spool --------------------------------------------------------------

_READER = """
import time
spool = DiskSpool("langfuse", service="svc", directory=sys.argv[1])
done = Path(sys.argv[2]) if len(sys.argv) > 2 else None
sys.stdin.readline()
ids = []
while True:
    finished = done is None or done.exists()  # looked at before the take
    b = spool.take()
    if b is not None:
        ids.append(ident(b))
    elif finished:
        break
    else:
        time.sleep(0.001)
print(json.dumps(ids), flush=True)
"""


def _start(readers: list[subprocess.Popen[str]]) -> list[list[int]]:
    for r in readers:
        assert r.stdin
        r.stdin.write("go\n")
        r.stdin.flush()
    results = []
    for r in readers:
        out, _ = r.communicate(timeout=60)
        assert r.returncode == 0
        results.append(json.loads(out))
    return results


def test_two_processes_never_take_the_same_batch(make: Callable[..., DiskSpool]) -> None:
    spool = make(segment_bytes=400)
    for i in range(300):
        spool.put(_batch(i))
    spool.close()
    assert len(_segments(spool)) > 20
    a, b = _start([_python(_READER, str(spool.path.parent.parent)) for _ in range(2)])
    assert len(a) + len(b) == 300
    assert sorted(a + b) == list(range(300))
    assert a == sorted(a) and b == sorted(b)


def test_readers_never_read_a_live_writers_segment(tmp_path: Path) -> None:
    done = tmp_path / "writer-done"
    readers = [_python(_READER, str(tmp_path), str(done)) for _ in range(2)]
    writer = _python(
        """
        spool = DiskSpool("langfuse", service="svc", directory=sys.argv[1], segment_bytes=2000)
        for i in range(400):
            assert spool.put(batch(i))
        spool.close()
        Path(sys.argv[2]).touch()
        """,
        str(tmp_path),
        str(done),
    )
    a, b = _start(readers)
    assert writer.wait(60) == 0
    assert sorted(a + b) == list(range(400))


# -- bounds and errors ------------------------------------------------------------------------


def test_size_bound_evicts_oldest_and_counts(make: Callable[..., DiskSpool]) -> None:
    spool = make(max_bytes=4000, segment_bytes=1000)
    for i in range(40):
        assert spool.put(_batch(i, 150))
    stats = spool.stats()
    assert 0 < stats["bytes"] <= 4000
    kept = _drain(spool)
    assert kept == list(range(kept[0], 40)) and kept[0] > 0
    gone = range(kept[0])
    assert stats["evicted_batches"] == len(gone)
    assert stats["evicted"] == sum(_batch(i).spans for i in gone)


def test_oversize_batch_is_refused(make: Callable[..., DiskSpool]) -> None:
    spool = make(max_bytes=1000)
    assert spool.put(_batch(0, 100))
    assert not spool.put(_batch(1, 2000))
    assert spool.stats()["refused"] == 1 and spool.stats()["evicted"] == 0
    assert _drain(spool) == [0]


def test_read_only_directory_means_put_false_counted_no_raise() -> None:
    # As root, permissions are not enforced: drop to nobody in a forked child.
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        root = base / "ro"
        root.mkdir(mode=0o555)

        def child() -> int:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            spool = DiskSpool(DEST, service=SERVICE, directory=root)
            results = [spool.put(_batch(i)) for i in range(3)]
            taken = spool.take()
            stats = spool.stats()
            spool.close()
            return 0 if results == [False] * 3 and taken is None and stats["errors"] == 3 else 1

        assert _in_fork(child) == 0
        assert list(root.iterdir()) == []
    finally:
        shutil.rmtree(base)


# -- fork -------------------------------------------------------------------------------------


def test_forked_child_writes_its_own_segment(make: Callable[..., DiskSpool]) -> None:
    spool = make(segment_seconds=3600)
    for i in range(3):
        spool.put(_batch(i))
    assert _id(spool.take()) == 0  # type: ignore[arg-type]  # claims the first segment
    spool.put(_batch(3))  # a new active segment, locked by the parent
    parent_segments = set(_segments(spool))

    def child() -> int:
        if spool.take() is not None:  # the parent's claim and segment are not ours
            return 1
        ok = all(spool.put(_batch(i)) for i in range(100, 103))
        spool.close()
        return 0 if ok else 2

    assert _in_fork(child) == 0
    spool.put(_batch(4))  # the parent's segment is still its own, intact
    new = set(_segments(spool)) - parent_segments
    assert len(new) == 1 and f"-{os.getpid()}-" not in next(iter(new)).name
    assert sorted(_drain(spool)) == [1, 2, 3, 4, 100, 101, 102]
    assert spool.stats()["torn"] == 0
