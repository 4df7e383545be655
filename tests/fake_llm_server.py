"""A real OpenAI-compatible HTTP server on loopback, for integration tests.

It speaks enough of the OpenAI API for the real ``openai`` client (and anything
built on it, e.g. ``langchain-openai``) to parse every reply into its own types:

- ``POST /v1/chat/completions``: JSON, or real SSE streaming (``data: {...}`` ...
  ``data: [DONE]``) with the final usage chunk when the request asks for
  ``stream_options.include_usage``; tool calls streamed as argument deltas.
- ``POST /v1/embeddings``: float or base64 vectors, as requested.
- ``POST /v1/responses``: JSON, or the event stream (``response.created``,
  ``response.output_text.delta`` ..., ``response.completed`` with usage).
- Azure paths (``/openai/deployments/{deployment}/...?api-version=...``).

Behaviour is chosen per request by the model name, or by the
``x-fake-behaviour`` header (which wins), as a comma-separated list:

==================  ============================================================
``tool``            reply with two tool calls (``get_weather``, ``get_time``)
``length``          finish_reason ``length``
``slow``            sleep between stream chunks (``x-fake-delay`` seconds, 0.05)
``error-429``       429 rate-limit JSON error (with ``retry-after-ms: 10``)
``error-500``       500 server error JSON
``error-400``       400 invalid-request JSON error
``break-mid-stream``  stream a few chunks, then drop the connection
``error-mid-stream``  stream a few chunks, then an SSE ``error`` payload
==================  ============================================================

Every request is recorded (method, path, query, headers, raw body, parsed JSON)
so tests can assert the client sent exactly what the user asked for.

Usage::

    with FakeLLMServer() as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="test")
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["REPLY_TEXT", "FakeLLMServer", "RecordedRequest"]

REPLY_TEXT = "Hello! I am a fake model, streaming for tests."
"""The assistant text every non-tool reply carries (streams split it into words)."""

TOOL_CALLS: tuple[tuple[str, str, str], ...] = (
    ("call_weather_1", "get_weather", '{"city": "Paris", "unit": "celsius"}'),
    ("call_time_2", "get_time", '{"timezone": "Europe/Paris"}'),
)
"""(id, name, arguments) of the tool calls a ``tool`` reply makes."""

EMBEDDING_DIMENSIONS = 8

_AZURE_PREFIX = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)")
_V1_PREFIX = re.compile(r"^(/openai)?/v1")


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    """The path without query string, as sent (``/v1/...`` or the Azure path)."""
    route: str
    """The normalized endpoint: ``/chat/completions``, ``/embeddings``, ``/responses``."""
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names lowercased."""
    body: bytes
    json: Any
    deployment: str | None = None
    behaviours: frozenset[str] = field(default_factory=frozenset)


class FakeLLMServer:
    """Threaded HTTP/1.1 server on 127.0.0.1 (port 0). Start with ``with`` or ``start()``."""

    def __init__(self, *, response_model_suffix: str = "-2024-08-06") -> None:
        self.response_model_suffix = response_model_suffix
        self.requests: list[RecordedRequest] = []  # guarded by _lock
        self._lock = threading.Lock()
        self._counter = 0  # guarded by _lock
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> FakeLLMServer:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:{port}`` (append ``/v1`` for an OpenAI client's base_url)."""
        return f"http://127.0.0.1:{self.port}"

    # -- recorded requests -----------------------------------------------------------
    def record(self, request: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            self._counter += 1
            return self._counter

    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    def requests_to(self, route: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.route == route]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def response_model(self, model: str) -> str:
        return f"{model}{self.response_model_suffix}" if model else "fake-model"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # many concurrent clients connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-stream is part of the tests, not an error.
        return None


def _tokens(text: str) -> int:
    return len(text.split())


def _text_of(value: Any) -> str:
    """All text inside a messages list / responses input / embeddings input."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text_of(v) for v in value)
    if isinstance(value, dict):
        parts = [_text_of(value[k]) for k in ("content", "text", "input") if k in value]
        return " ".join(parts)
    return ""


def _structured_reply(payload: dict[str, Any]) -> str | None:
    """For ``response_format`` json_schema: a JSON object filling each string property."""
    response_format = payload.get("response_format") or {}
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    names = list((schema.get("properties") or {}).keys()) or ["answer"]
    return json.dumps({name: REPLY_TEXT for name in names})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeLLMServer  # set on the bound subclass

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def setup(self) -> None:
        super().setup()
        # Stream chunks are tiny writes: without this, Nagle + delayed ACK add ~40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- plumbing ---------------------------------------------------------------------
    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        deployment = None
        route = path
        azure = _AZURE_PREFIX.match(path)
        if azure:
            deployment = azure.group("deployment")
            route = path[azure.end() :]
        else:
            route = _V1_PREFIX.sub("", path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        payload = payload if isinstance(payload, dict) else {}
        model = str(payload.get("model") or deployment or "")
        spec = self.headers.get("x-fake-behaviour") or model
        behaviours = frozenset(b.strip() for b in spec.split(",") if b.strip())
        request = RecordedRequest(
            method="POST",
            path=path,
            route=route,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            json=payload,
            deployment=deployment,
            behaviours=behaviours,
        )
        number = self.fake.record(request)
        if self._error_reply(behaviours):
            return
        handler = {
            "/chat/completions": self._chat,
            "/embeddings": self._embeddings,
            "/responses": self._responses,
        }.get(route)
        if handler is None:
            self._json(
                404,
                {
                    "error": {
                        "message": f"no route {path}",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
            return
        handler(payload, model, behaviours, number)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", f"req_fake_{status}_{id(payload):x}")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error_reply(self, behaviours: frozenset[str]) -> bool:
        errors = {
            "error-429": (
                429,
                "Rate limit reached for requests",
                "requests",
                "rate_limit_exceeded",
            ),
            "error-500": (
                500,
                "The server had an error while processing your request.",
                "server_error",
                None,
            ),
            "error-400": (
                400,
                "Invalid value for 'temperature'.",
                "invalid_request_error",
                "invalid_value",
            ),
        }
        for name, (status, message, kind, code) in errors.items():
            if name in behaviours:
                body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
                self._json(status, body, {"retry-after-ms": "10"} if status == 429 else None)
                return True
        return False

    @contextlib.contextmanager
    def _event_stream(self) -> Iterator[None]:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("x-request-id", "req_fake_stream")
        self.end_headers()
        yield
        self._chunk(b"")  # the terminating zero-length chunk

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _sse(self, payload: Any, event: str | None = None) -> None:
        head = f"event: {event}\n" if event else ""
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self._chunk(f"{head}data: {data}\n\n".encode())

    def _drop_connection(self) -> None:
        """Vanish mid-body: no terminating chunk, socket shut down."""
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _delay(self, behaviours: frozenset[str]) -> None:
        if "slow" in behaviours:
            time.sleep(float(self.headers.get("x-fake-delay") or 0.05))

    # -- /chat/completions ----------------------------------------------------------------
    def _chat(
        self, payload: dict[str, Any], model: str, behaviours: frozenset[str], number: int
    ) -> None:
        n = int(payload.get("n") or 1)
        tools = "tool" in behaviours
        finish = "tool_calls" if tools else ("length" if "length" in behaviours else "stop")
        prompt_tokens = _tokens(_text_of(payload.get("messages")))
        completion_tokens = _tokens(REPLY_TEXT) if not tools else 12
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        common = {
            "id": f"chatcmpl-fake{number}",
            "created": int(time.time()),
            "model": self.fake.response_model(model),
            "system_fingerprint": "fp_fake",
            "service_tier": "default",
        }
        if not payload.get("stream"):
            reply = _structured_reply(payload) or REPLY_TEXT
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if tools else reply,
                "refusal": None,
                "annotations": [],
            }
            if tools:
                message["tool_calls"] = [
                    {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                    for cid, name, args in TOOL_CALLS
                ]
            choices = [
                {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                for i in range(n)
            ]
            self._json(
                200, {**common, "object": "chat.completion", "choices": choices, "usage": usage}
            )
            return
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        base = {**common, "object": "chat.completion.chunk"}
        if include_usage:
            base["usage"] = None

        def chunk(
            index: int, delta: dict[str, Any], finish_reason: str | None = None
        ) -> dict[str, Any]:
            choice = {
                "index": index,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            return {**base, "choices": [choice]}

        with self._event_stream():
            for i in range(n):
                self._sse(
                    chunk(
                        i, {"role": "assistant", "content": None if tools else "", "refusal": None}
                    )
                )
            for sent, piece in enumerate(self._pieces(tools), start=1):
                for i in range(n):
                    self._delay(behaviours)
                    self._sse(chunk(i, piece))
                if sent == 3 and "break-mid-stream" in behaviours:
                    self._drop_connection()
                    return
                if sent == 3 and "error-mid-stream" in behaviours:
                    self._sse(
                        {
                            "error": {
                                "message": "The model overloaded mid-stream.",
                                "type": "server_error",
                                "param": None,
                                "code": None,
                            }
                        }
                    )
                    self._sse("[DONE]")
                    return
            for i in range(n):
                self._sse(chunk(i, {}, finish))
            if include_usage:
                self._sse({**base, "choices": [], "usage": usage})
            self._sse("[DONE]")

    @staticmethod
    def _pieces(tools: bool) -> Iterator[dict[str, Any]]:
        if not tools:
            words = REPLY_TEXT.split(" ")
            for k, word in enumerate(words):
                yield {"content": word if k == 0 else " " + word}
            return
        for index, (cid, name, args) in enumerate(TOOL_CALLS):
            yield {
                "tool_calls": [
                    {
                        "index": index,
                        "id": cid,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            }
            third = max(1, len(args) // 3)
            for start in range(0, len(args), third):
                yield {
                    "tool_calls": [
                        {"index": index, "function": {"arguments": args[start : start + third]}}
                    ]
                }

    # -- /embeddings ------------------------------------------------------------------------
    def _embeddings(
        self, payload: dict[str, Any], model: str, behaviours: frozenset[str], number: int
    ) -> None:
        raw = payload.get("input")
        inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        dims = int(payload.get("dimensions") or EMBEDDING_DIMENSIONS)
        as_base64 = payload.get("encoding_format") == "base64"
        data = []
        for index in range(len(inputs)):
            vector = [round((index + 1) * 0.01 * (k + 1), 4) for k in range(dims)]
            embedding: Any = vector
            if as_base64:
                embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = _tokens(_text_of(raw)) or len(inputs)
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": self.fake.response_model(model),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # -- /responses ---------------------------------------------------------------------------
    def _responses(
        self, payload: dict[str, Any], model: str, behaviours: frozenset[str], number: int
    ) -> None:
        tools = "tool" in behaviours
        input_tokens = _tokens(
            _text_of(payload.get("input")) + " " + str(payload.get("instructions") or "")
        )
        output_tokens = _tokens(REPLY_TEXT) if not tools else 12
        response_id = f"resp_fake{number}"
        message_id = f"msg_fake{number}"
        if tools:
            output = [
                {
                    "type": "function_call",
                    "id": f"fc_{cid}",
                    "call_id": cid,
                    "name": name,
                    "arguments": args,
                    "status": "completed",
                }
                for cid, name, args in TOOL_CALLS
            ]
        else:
            output = [
                {
                    "type": "message",
                    "id": message_id,
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {
                            "type": "output_text",
                            "text": REPLY_TEXT,
                            "annotations": [],
                            "logprobs": [],
                        }
                    ],
                }
            ]
        incomplete = "length" in behaviours
        response = {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "status": "incomplete" if incomplete else "completed",
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": payload.get("instructions"),
            "max_output_tokens": payload.get("max_output_tokens"),
            "model": self.fake.response_model(model),
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": True,
            "temperature": payload.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": payload.get("tools") or [],
            "top_p": payload.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
            "user": None,
            "metadata": {},
        }
        if not payload.get("stream"):
            self._json(200, response)
            return
        sequence = iter(range(10_000))

        def event(kind: str, **fields: Any) -> None:
            self._sse({"type": kind, "sequence_number": next(sequence), **fields}, event=kind)

        pending = {
            **response,
            "status": "in_progress",
            "output": [],
            "usage": None,
            "incomplete_details": None,
        }
        with self._event_stream():
            event("response.created", response=pending)
            event("response.in_progress", response=pending)
            if tools:
                for index, item in enumerate(output):
                    event(
                        "response.output_item.added",
                        output_index=index,
                        item={**item, "arguments": "", "status": "in_progress"},
                    )
                    self._delay(behaviours)
                    event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=item["arguments"],
                    )
                    event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=index,
                        arguments=item["arguments"],
                    )
                    event("response.output_item.done", output_index=index, item=item)
            else:
                item = output[0]
                event(
                    "response.output_item.added",
                    output_index=0,
                    item={**item, "status": "in_progress", "content": []},
                )
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                event(
                    "response.content_part.added",
                    item_id=message_id,
                    output_index=0,
                    content_index=0,
                    part=part,
                )
                for k, word in enumerate(REPLY_TEXT.split(" ")):
                    self._delay(behaviours)
                    delta = word if k == 0 else " " + word
                    event(
                        "response.output_text.delta",
                        item_id=message_id,
                        output_index=0,
                        content_index=0,
                        delta=delta,
                        logprobs=[],
                    )
                    if k == 2 and "break-mid-stream" in behaviours:
                        self._drop_connection()
                        return
                event(
                    "response.output_text.done",
                    item_id=message_id,
                    output_index=0,
                    content_index=0,
                    text=REPLY_TEXT,
                    logprobs=[],
                )
                event(
                    "response.content_part.done",
                    item_id=message_id,
                    output_index=0,
                    content_index=0,
                    part={**part, "text": REPLY_TEXT},
                )
                event("response.output_item.done", output_index=0, item=item)
            event("response.incomplete" if incomplete else "response.completed", response=response)
