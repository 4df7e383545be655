"""Fork safety: a forked child gets fresh workers and never re-sends the parent's queue."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm
from otel_llm.export.otlp import OTLP
from tests.otlp_http_server import OTLPHTTPServer

PATH = "/v1/traces"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_sends_only_its_own_spans(tmp_path: object) -> None:
    with OTLPHTTPServer() as server:
        dest = OTLP(server.url + PATH, protocol="http/protobuf")
        p = otel_llm.configure(
            destinations=[dest], tracer_provider=TracerProvider(), spool_dir=False
        )
        with otel_llm.start_observation("parent-before-fork"):
            pass  # queued in the processor, not yet exported
        pid = os.fork()
        if pid == 0:  # the child: works and exits without running the parent's cleanup
            code = 1
            try:
                with otel_llm.start_observation("child"):
                    pass
                code = 0 if p.flush(10.0) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with otel_llm.start_observation("parent-after-fork"):
            pass
        assert p.flush(10.0)
        deadline = time.monotonic() + 10
        while len(server.spans(PATH)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        names = Counter(s.name for s in server.spans(PATH))
        assert names == {"parent-before-fork": 1, "child": 1, "parent-after-fork": 1}
