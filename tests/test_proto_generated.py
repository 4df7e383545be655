"""The committed protobuf code is exactly what `make proto` generates, and works here."""

from __future__ import annotations

import re
import subprocess
import zlib
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from otel_llm._proto.otel_llm.v1 import spool_pb2

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "src" / "otel_llm" / "_proto"

# pip's words for "the registry could not be reached" (offline, no DNS, no route).
_NO_REGISTRY = re.compile(
    r"from versions: none|Could not fetch URL|Failed to establish a new connection"
    r"|Temporary failure in name resolution|Network is unreachable|ConnectionError"
    r"|Max retries exceeded",
)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.mark.timeout(300)  # the first run creates .venv-proto (~20 s)
def test_committed_code_matches_make_proto(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    run = subprocess.run(
        ["bash", str(ROOT / "tools" / "proto.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    if run.returncode == 3 and _NO_REGISTRY.search(run.stderr):
        pytest.skip("tools/proto.sh could not create .venv-proto: pip cannot reach the registry")
    assert run.returncode == 0, run.stderr
    generated, committed = _files(out), _files(COMMITTED)
    assert sorted(generated) == sorted(committed)
    for name, data in generated.items():
        assert data == committed[name], f"{name} differs from `make proto` output: rerun it"


def test_gencode_is_the_compatible_generation() -> None:
    source = (COMMITTED / "otel_llm" / "v1" / "spool_pb2.py").read_text()
    assert "# Protobuf Python Version: 5.26.1\n" in source  # same as opentelemetry-proto
    assert "runtime_version" not in source  # no runtime pin: works on 5.26 through 7.x


def test_record_round_trips_on_the_installed_runtime() -> None:
    body = b"\x0a\x00" * 100
    record = spool_pb2.SpoolRecord(
        format_version=1,
        request=body,
        destination="langfuse",
        span_count=512,
        attempts=3,
        created_time_unix_nano=1_700_000_000_123_456_789,
        request_crc32=zlib.crc32(body),
    )
    parsed = spool_pb2.SpoolRecord.FromString(record.SerializeToString())
    assert parsed == record
    assert parsed.request_crc32 == zlib.crc32(body) and parsed.span_count == 512
    assert spool_pb2.SpoolRecord.DESCRIPTOR.full_name == "otel_llm.v1.SpoolRecord"
    fields = {f.name: (f.number, f.type) for f in spool_pb2.SpoolRecord.DESCRIPTOR.fields}
    assert fields == {
        "format_version": (1, FieldDescriptor.TYPE_UINT32),
        "request": (2, FieldDescriptor.TYPE_BYTES),
        "destination": (3, FieldDescriptor.TYPE_STRING),
        "span_count": (4, FieldDescriptor.TYPE_UINT32),
        "attempts": (5, FieldDescriptor.TYPE_UINT32),
        "created_time_unix_nano": (6, FieldDescriptor.TYPE_FIXED64),
        "request_crc32": (7, FieldDescriptor.TYPE_FIXED32),
    }
