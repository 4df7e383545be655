from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SpoolRecord(_message.Message):
    __slots__ = ("format_version", "request", "destination", "span_count", "attempts", "created_time_unix_nano", "request_crc32")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    SPAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    REQUEST_CRC32_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    request: bytes
    destination: str
    span_count: int
    attempts: int
    created_time_unix_nano: int
    request_crc32: int
    def __init__(self, format_version: _Optional[int] = ..., request: _Optional[bytes] = ..., destination: _Optional[str] = ..., span_count: _Optional[int] = ..., attempts: _Optional[int] = ..., created_time_unix_nano: _Optional[int] = ..., request_crc32: _Optional[int] = ...) -> None: ...
