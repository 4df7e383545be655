"""Configuration keys each Collector component accepts, for the static checks of collector-config/.

We cannot run ``otelcol-contrib validate`` in CI (no binary can be fetched there), so the tests
check every key of every component against this table. It covers the component types our configs
use, and for each one the keys of its upstream config struct, recursively for the nested blocks we
use. A key outside the table fails the test: the collector would refuse to start on it ("has invalid
keys"). Keys were read from the upstream sources named next to each entry (the generated
``config.schema.yaml`` files, or the README/config.go when a component has no schema), at the
v0.15x releases the research notes in /work/shared/reference/semconv-collector.md (Part C) are
based on.

Repositories: ``core`` = github.com/open-telemetry/opentelemetry-collector,
``contrib`` = github.com/open-telemetry/opentelemetry-collector-contrib.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "ANY",
    "CONNECTORS",
    "EXPORTERS",
    "EXTENSIONS",
    "LEAF",
    "OTTL_FUNCTIONS",
    "OTTL_SPAN_ENUMS",
    "OTTL_SPAN_PATH_ROOTS",
    "PROCESSORS",
    "RECEIVERS",
    "TAIL_SAMPLING_POLICY_TYPES",
    "Block",
    "ListOf",
    "Spec",
]


@dataclass(frozen=True)
class _Leaf:
    """A scalar or a list of scalars (or an env placeholder standing for one)."""


@dataclass(frozen=True)
class _Any:
    """Not checked: a mapping with free keys (HTTP headers), or a block our configs do not use."""


@dataclass(frozen=True)
class ListOf:
    """A list whose items all follow ``item``."""

    item: Spec


@dataclass(frozen=True)
class Block:
    """A mapping with a fixed set of keys; ``extends`` are blocks squashed into this one."""

    keys: Mapping[str, Spec] = field(default_factory=dict)
    extends: tuple[Block, ...] = ()

    def allowed(self) -> dict[str, Spec]:
        merged: dict[str, Spec] = {}
        for base in self.extends:
            merged.update(base.allowed())
        merged.update(self.keys)
        return merged


Spec = _Leaf | _Any | ListOf | Block
LEAF = _Leaf()
ANY = _Any()

# --- shared blocks (core/config/*) -----------------------------------------------------------

# core: config/configtls/config.schema.yaml ($defs.config, client_config, server_config)
_TLS = Block(
    {
        "ca_file": LEAF,
        "ca_pem": LEAF,
        "cert_file": LEAF,
        "cert_pem": LEAF,
        "key_file": LEAF,
        "key_pem": LEAF,
        "cipher_suites": LEAF,
        "curve_preferences": LEAF,
        "include_system_ca_certs_pool": LEAF,
        "min_version": LEAF,
        "max_version": LEAF,
        "reload_interval": LEAF,
        "tpm": Block({"auth": LEAF, "enabled": LEAF, "owner_auth": LEAF, "path": LEAF}),
    }
)
TLS_CLIENT = Block(
    {"insecure": LEAF, "insecure_skip_verify": LEAF, "server_name_override": LEAF}, (_TLS,)
)
TLS_SERVER = Block({"client_ca_file": LEAF, "client_ca_file_reload": LEAF}, (_TLS,))

# core: config/configauth and config/configmiddleware. We use neither, so their contents are not
# checked (ANY) rather than listed from memory.
_AUTH = ANY
_MIDDLEWARES = ANY

# core: config/configgrpc/config.schema.yaml ($defs.client_config, server_config, keepalive_*)
# plus config/confignet addr_config (endpoint, transport) squashed into the server config.
GRPC_CLIENT = Block(
    {
        "auth": _AUTH,
        "authority": LEAF,
        "balancer_name": LEAF,
        "compression": LEAF,
        "endpoint": LEAF,
        "headers": ANY,
        "keepalive": Block({"permit_without_stream": LEAF, "time": LEAF, "timeout": LEAF}),
        "middlewares": _MIDDLEWARES,
        "read_buffer_size": LEAF,
        "tls": TLS_CLIENT,
        "wait_for_ready": LEAF,
        "write_buffer_size": LEAF,
    }
)
GRPC_SERVER = Block(
    {
        "endpoint": LEAF,
        "transport": LEAF,
        "auth": _AUTH,
        "include_metadata": LEAF,
        "keepalive": Block(
            {
                "enforcement_policy": Block({"min_time": LEAF, "permit_without_stream": LEAF}),
                "server_parameters": Block(
                    {
                        "max_connection_age": LEAF,
                        "max_connection_age_grace": LEAF,
                        "max_connection_idle": LEAF,
                        "time": LEAF,
                        "timeout": LEAF,
                    }
                ),
            }
        ),
        "max_concurrent_streams": LEAF,
        "max_recv_msg_size_mib": LEAF,
        "middlewares": _MIDDLEWARES,
        "read_buffer_size": LEAF,
        "tls": TLS_SERVER,
        "write_buffer_size": LEAF,
    }
)

# core: config/confighttp/config.schema.yaml ($defs.client_config, server_config)
HTTP_CLIENT = Block(
    {
        "auth": _AUTH,
        "compression": LEAF,
        "compression_params": ANY,
        "cookies": ANY,
        "endpoint": LEAF,
        "force_attempt_http2": LEAF,
        "headers": ANY,
        "http2_ping_timeout": LEAF,
        "http2_read_idle_timeout": LEAF,
        "keepalive": Block(
            {
                "enabled": LEAF,
                "idle_conn_timeout": LEAF,
                "max_idle_conns": LEAF,
                "max_idle_conns_per_host": LEAF,
            }
        ),
        "max_conns_per_host": LEAF,
        "middlewares": _MIDDLEWARES,
        "proxy_url": LEAF,
        "read_buffer_size": LEAF,
        "timeout": LEAF,
        "tls": TLS_CLIENT,
        "write_buffer_size": LEAF,
    }
)
HTTP_SERVER = Block(
    {
        "auth": ANY,
        "compression_algorithms": LEAF,
        "cors": Block(
            {
                "allowed_headers": LEAF,
                "allowed_origins": LEAF,
                "exposed_headers": LEAF,
                "max_age": LEAF,
            }
        ),
        "endpoint": LEAF,
        "include_metadata": LEAF,
        "keepalive": Block({"enabled": LEAF, "idle_timeout": LEAF}),
        "max_request_body_size": LEAF,
        "middlewares": _MIDDLEWARES,
        "read_header_timeout": LEAF,
        "read_timeout": LEAF,
        "response_headers": ANY,
        "tls": TLS_SERVER,
        "write_timeout": LEAF,
    }
)

# core: config/configretry/config.schema.yaml ($defs.back_off_config)
RETRY = Block(
    {
        "enabled": LEAF,
        "initial_interval": LEAF,
        "max_interval": LEAF,
        "max_elapsed_time": LEAF,
        "multiplier": LEAF,
        "randomization_factor": LEAF,
        "max_retries": LEAF,
    }
)

# core: exporter/exporterhelper/internal/queuebatch/config.schema.yaml ($defs.config, batch_config)
# (README: exporter/exporterhelper/README.md "Sending Queue", "Persistent Queue")
SENDING_QUEUE = Block(
    {
        "enabled": LEAF,
        "num_consumers": LEAF,
        "queue_size": LEAF,
        "sizer": LEAF,
        "storage": LEAF,
        "block_on_overflow": LEAF,
        "wait_for_result": LEAF,
        "batch": Block(
            {
                "flush_timeout": LEAF,
                "min_size": LEAF,
                "max_size": LEAF,
                "sizer": LEAF,
                "partition": Block({"metadata_keys": LEAF, "cardinality_limit": LEAF}),
            }
        ),
    }
)

# core: exporter/exporterhelper/internal/config.schema.yaml ($defs.timeout_config)
_TIMEOUT = Block({"timeout": LEAF})

# --- receivers -------------------------------------------------------------------------------

# core: receiver/otlpreceiver/config.schema.yaml (protocols.grpc, protocols.http = http_config)
RECEIVERS: dict[str, Block] = {
    "otlp": Block(
        {
            "protocols": Block(
                {
                    "grpc": GRPC_SERVER,
                    "http": Block(
                        {"traces_url_path": LEAF, "metrics_url_path": LEAF, "logs_url_path": LEAF},
                        (HTTP_SERVER,),
                    ),
                }
            )
        }
    ),
}

# --- processors ------------------------------------------------------------------------------

# contrib: internal/coreinternal/attraction/config.schema.yaml ($defs.action_key_value)
_ATTRIBUTE_ACTION = Block(
    {
        "key": LEAF,
        "value": LEAF,
        "default_value": LEAF,
        "from_attribute": LEAF,
        "from_context": LEAF,
        "action": LEAF,
        "pattern": LEAF,
        "converted_type": LEAF,
    }
)

# contrib: processor/tailsamplingprocessor/config.schema.yaml ($defs.policy_cfg, *_cfg blocks)
TAIL_SAMPLING_POLICY_TYPES = frozenset(
    {
        "always_sample",
        "and",
        "boolean_attribute",
        "bytes_limiting",
        "composite",
        "drop",
        "latency",
        "not",
        "numeric_attribute",
        "ottl_condition",
        "probabilistic",
        "rate_limiting",
        "span_count",
        "status_code",
        "string_attribute",
        "trace_state",
    }
)
_POLICY = Block(
    {
        "name": LEAF,
        "type": LEAF,
        "status_code": Block({"status_codes": LEAF}),
        "probabilistic": Block({"hash_salt": LEAF, "sampling_percentage": LEAF}),
        "ottl_condition": Block({"error_mode": LEAF, "span": LEAF, "spanevent": LEAF}),
        "numeric_attribute": Block(
            {"key": LEAF, "min_value": LEAF, "max_value": LEAF, "invert_match": LEAF}
        ),
        "latency": Block({"threshold_ms": LEAF, "upper_threshold_ms": LEAF}),
        "string_attribute": Block(
            {
                "key": LEAF,
                "values": LEAF,
                "enabled_regex_matching": LEAF,
                "cache_max_size": LEAF,
                "invert_match": LEAF,
            }
        ),
        "boolean_attribute": Block({"key": LEAF, "value": LEAF, "invert_match": LEAF}),
        "rate_limiting": Block({"spans_per_second": LEAF}),
        "bytes_limiting": Block({"bytes_per_second": LEAF, "burst_capacity": LEAF}),
        "span_count": Block({"min_spans": LEAF, "max_spans": LEAF}),
        "trace_state": Block({"key": LEAF, "values": LEAF}),
        # Composite policies nest whole policies; we use none, so their contents are not checked.
        "and": ANY,
        "composite": ANY,
        "drop": ANY,
        "not": ANY,
    }
)

PROCESSORS: dict[str, Block] = {
    # core: internal/memorylimiter/config.schema.yaml (processor/memorylimiterprocessor wraps it)
    "memory_limiter": Block(
        {
            "check_interval": LEAF,
            "limit_mib": LEAF,
            "limit_percentage": LEAF,
            "spike_limit_mib": LEAF,
            "spike_limit_percentage": LEAF,
            "min_gc_interval_when_soft_limited": LEAF,
            "min_gc_interval_when_hard_limited": LEAF,
            "max_gc_interval_when_soft_limited": LEAF,
            "max_gc_interval_when_hard_limited": LEAF,
        }
    ),
    # core: processor/batchprocessor/config.schema.yaml
    "batch": Block(
        {
            "send_batch_size": LEAF,
            "send_batch_max_size": LEAF,
            "timeout": LEAF,
            "metadata_keys": LEAF,
            "metadata_cardinality_limit": LEAF,
        }
    ),
    # contrib: processor/filterprocessor/config.go (Config, TraceFilters) and README.md.
    # The legacy per-signal blocks other than `traces` are not used here and not checked.
    "filter": Block(
        {
            "error_mode": LEAF,
            "traces": Block({"resource": LEAF, "span": LEAF, "spanevent": LEAF}),
            "trace_conditions": LEAF,
            "metric_conditions": LEAF,
            "log_conditions": LEAF,
            "profile_conditions": LEAF,
            "spans": ANY,
            "metrics": ANY,
            "logs": ANY,
            "profiles": ANY,
        }
    ),
    # contrib: processor/resourceprocessor/config.schema.yaml (attributes: list of actions)
    "resource": Block({"attributes": ListOf(_ATTRIBUTE_ACTION)}),
    # contrib: processor/resourcedetectionprocessor/config.schema.yaml (+ confighttp client_config
    # squashed) and internal/system/config.schema.yaml. Other detectors' blocks are not checked.
    "resourcedetection": Block(
        {
            "detectors": LEAF,
            "override": LEAF,
            "refresh_interval": LEAF,
            "fail_on_missing_metadata": LEAF,
            "system": Block({"hostname_sources": LEAF, "resource_attributes": ANY}),
            "env": ANY,
            "docker": ANY,
            "ec2": ANY,
            "gcp": ANY,
            "azure": ANY,
            "tencent_cvm": ANY,
        },
        (HTTP_CLIENT,),
    ),
    # contrib: processor/tailsamplingprocessor/config.schema.yaml (top-level Config)
    "tail_sampling": Block(
        {
            "decision_wait": LEAF,
            "decision_wait_after_root_received": LEAF,
            "num_traces": LEAF,
            "expected_new_traces_per_sec": LEAF,
            "decision_cache": Block({"sampled_cache_size": LEAF, "non_sampled_cache_size": LEAF}),
            "policies": ListOf(_POLICY),
            "sample_on_first_match": LEAF,
            "block_on_overflow": LEAF,
            "drop_pending_traces_on_shutdown": LEAF,
            "maximum_trace_size_bytes": LEAF,
            "sampling_strategy": LEAF,
        }
    ),
}

# --- exporters -------------------------------------------------------------------------------

# core: exporter/otlpexporter/config.schema.yaml (timeout_config + configgrpc client_config
# squashed, retry_on_failure, sending_queue)
_OTLP_GRPC_EXPORTER = Block(
    {"retry_on_failure": RETRY, "sending_queue": SENDING_QUEUE}, (_TIMEOUT, GRPC_CLIENT)
)
# core: exporter/otlphttpexporter/config.schema.yaml and README.md (confighttp client_config
# squashed; `endpoint` gets /v1/traces appended, `traces_endpoint` is used as given)
_OTLP_HTTP_EXPORTER = Block(
    {
        "encoding": LEAF,
        "traces_endpoint": LEAF,
        "metrics_endpoint": LEAF,
        "logs_endpoint": LEAF,
        "profiles_endpoint": LEAF,
        "retry_on_failure": RETRY,
        "sending_queue": SENDING_QUEUE,
    },
    (HTTP_CLIENT,),
)
# contrib: exporter/loadbalancingexporter/config.schema.yaml and README.md
_LOADBALANCING_EXPORTER = Block(
    {
        "routing_key": LEAF,
        "routing_attributes": LEAF,
        "protocol": Block({"otlp": _OTLP_GRPC_EXPORTER}),
        "resolver": Block(
            {
                "static": Block({"hostnames": LEAF}),
                "dns": Block({"hostname": LEAF, "port": LEAF, "interval": LEAF, "timeout": LEAF}),
                "k8s": Block(
                    {"service": LEAF, "ports": LEAF, "timeout": LEAF, "return_hostnames": LEAF}
                ),
                "aws_cloud_map": ANY,
            }
        ),
        "sending_queue": SENDING_QUEUE,
        "retry_on_failure": RETRY,
    },
    (_TIMEOUT,),
)

# The OTLP exporters were renamed in v0.144 (otlp -> otlp_grpc, otlphttp -> otlp_http) and the
# load-balancing exporter later (loadbalancing -> load_balancing); the old names stay as deprecated
# aliases (core exporter/otlphttpexporter/metadata.yaml `deprecated_type`; reference Part C.1).
EXPORTERS: dict[str, Block] = {
    "otlp": _OTLP_GRPC_EXPORTER,
    "otlp_grpc": _OTLP_GRPC_EXPORTER,
    "otlphttp": _OTLP_HTTP_EXPORTER,
    "otlp_http": _OTLP_HTTP_EXPORTER,
    "loadbalancing": _LOADBALANCING_EXPORTER,
    "load_balancing": _LOADBALANCING_EXPORTER,
}

# --- extensions and connectors ---------------------------------------------------------------

EXTENSIONS: dict[str, Block] = {
    # contrib: extension/healthcheckextension/README.md (confighttp server_config + path,
    # response_body, check_collector_pipeline)
    "health_check": Block(
        {
            "path": LEAF,
            "response_body": LEAF,
            "check_collector_pipeline": Block(
                {"enabled": LEAF, "interval": LEAF, "exporter_failure_threshold": LEAF}
            ),
        },
        (HTTP_SERVER,),
    ),
    # contrib: extension/storage/filestorage/README.md (directory, timeout, fsync,
    # create_directory, directory_permissions, compaction.*)
    "file_storage": Block(
        {
            "directory": LEAF,
            "timeout": LEAF,
            "fsync": LEAF,
            "create_directory": LEAF,
            "directory_permissions": LEAF,
            "compaction": Block(
                {
                    "on_start": LEAF,
                    "on_rebound": LEAF,
                    "directory": LEAF,
                    "max_transaction_size": LEAF,
                    "cleanup_on_start": LEAF,
                    "rebound_needed_threshold_mib": LEAF,
                    "rebound_trigger_threshold_mib": LEAF,
                    "check_interval": LEAF,
                }
            ),
        }
    ),
}

# core: connector/forwardconnector/README.md ("does not have any configuration settings")
CONNECTORS: dict[str, Block] = {"forward": Block({})}

# --- OTTL --------------------------------------------------------------------------------------

# contrib: pkg/ottl/ottlfuncs/README.md ("Available Editors", "Available Converters"). A function
# name outside this set is a typo or a function of a newer release than we target.
OTTL_FUNCTIONS = frozenset(
    {
        # editors
        "append", "delete_index", "delete_key", "delete_matching_keys", "keep_matching_keys",
        "flatten", "keep_keys", "limit", "merge_maps", "replace_all_matches",
        "replace_all_patterns", "replace_match", "replace_pattern", "set", "stringify_all",
        "truncate_all",
        # converters
        "Base64Decode", "Base64Encode", "Bool", "Decode", "Coalesce", "CommunityID", "Concat",
        "ContainsValue", "ConvertCase", "ConvertAttributesToElementsXML",
        "ConvertTextToElementsXML", "Day", "Double", "Duration", "ExtractPatterns",
        "ExtractGrokPatterns", "Filter", "Find", "FNV", "Format", "FormatTime", "GetXML",
        "HasPrefix", "HasSuffix", "Hex", "Hour", "Hours", "Index", "InsertXML", "Int", "IsBool",
        "IsDouble", "IsEmpty", "IsInCIDR", "IsInt", "IsRootSpan", "IsMap", "IsMatch", "IsList",
        "IsString", "Keys", "Len", "Log", "IsValidLuhn", "MD5", "Microseconds", "Milliseconds",
        "Minute", "Minutes", "Month", "Murmur3Hash", "Murmur3Hash128", "Nanosecond",
        "Nanoseconds", "Now", "ParseCSV", "ParseInt", "ParseJSON", "ParseKeyValue",
        "ParseSeverity", "ParseSimplifiedXML", "ParseXML", "ProfileID", "Reduce", "RemoveXML",
        "Second", "Seconds", "SHA1", "SHA256", "SHA512", "SliceToMap", "Sort", "SpanID", "Split",
        "String", "Substring", "Time", "ToCamelCase", "ToKeyValueString", "ToLowerCase",
        "ToSnakeCase", "ToUpperCase", "TraceID", "Trim", "TrimPrefix", "TrimSuffix",
        "TruncateTime", "Unix", "UnixMicro", "UnixMilli", "UnixNano", "UnixSeconds", "URL",
        "UserAgent", "UUID", "UUIDv7", "Values", "Weekday", "Year", "XXH3", "XXH128",
    }
)  # fmt: skip

# contrib: pkg/ottl/contexts/ottlspan/README.md ("Paths", "Enums"): the first segment of every path
# a span-context condition may use. `span` and `scope` are the context-inference prefixes of newer
# releases (reference Part C.1, v0.120+).
OTTL_SPAN_PATH_ROOTS = frozenset(
    {
        "cache", "resource", "instrumentation_scope", "attributes", "trace_id", "span_id",
        "parent_span_id", "trace_state", "status", "name", "kind", "start_time_unix_nano",
        "end_time_unix_nano", "dropped_attributes_count", "events", "dropped_events_count",
        "links", "dropped_links_count", "span", "scope",
    }
)  # fmt: skip
OTTL_SPAN_ENUMS = frozenset(
    {
        "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER", "STATUS_CODE_UNSET", "STATUS_CODE_OK",
        "STATUS_CODE_ERROR",
    }
)  # fmt: skip
