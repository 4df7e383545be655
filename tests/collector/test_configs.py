"""Static validation of the OpenTelemetry Collector configs in collector-config/.

CI cannot fetch ``otelcol-contrib`` to run ``validate``, so these tests check what it would
(declared/used components, known types, accepted keys; tables in component_keys.py) and what it
would not: our own rules about secrets, destinations, queues, sampling and OTTL. Each rule runs on
the real files (no problems expected) and on a broken copy (the problem must be reported).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from otel_llm.export.dialects import DIALECTS
from otel_llm.processing.entry import is_llm_related
from tests.collector import config_checks as cc

Config = dict[str, Any]
Check = Callable[[Config], list[str]]

CONFIGS: dict[str, Config] = {}


def config(name: str) -> Config:
    """A fresh copy of a parsed config (tests may mutate it)."""
    if name not in CONFIGS:
        CONFIGS[name] = cc.load(name)
    return copy.deepcopy(CONFIGS[name])


README = (cc.CONFIG_DIR / "README.md").read_text(encoding="utf-8")

# --- every file ----------------------------------------------------------------------------------

EVERY_FILE_CHECKS: dict[str, Check] = {
    "references": cc.check_references,
    "types": cc.check_types,
    "keys": cc.check_keys,
    "env_placeholders": cc.check_env_placeholders,
    "pipeline_order": cc.check_pipeline_order,
    "secret_isolation": cc.check_secret_isolation,
    "ottl": cc.check_ottl,
    "tencent_service_names": cc.check_tencent_service_names,
}


@pytest.mark.parametrize("name", cc.CONFIG_FILES)
def test_yaml_parses_into_a_collector_config(name: str) -> None:
    parsed = config(name)
    assert {"receivers", "exporters", "service"} <= set(parsed), name
    assert cc.pipelines(parsed), name


@pytest.mark.parametrize("check", sorted(EVERY_FILE_CHECKS))
@pytest.mark.parametrize("name", cc.CONFIG_FILES)
def test_every_file_passes(name: str, check: str) -> None:
    assert EVERY_FILE_CHECKS[check](config(name)) == []


# --- gateways ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", cc.GATEWAY_FILES)
def test_gateway_destinations(name: str) -> None:
    gateway = config(name)
    assert cc.destination_exporter(gateway, cc.LANGFUSE) == "otlphttp/langfuse"
    assert cc.destination_exporter(gateway, cc.APM) == "otlp/tencent"
    assert cc.check_langfuse_exporter(gateway) == []
    assert cc.check_apm_exporter(gateway) == []
    assert cc.check_langfuse_drops_token(gateway) == []


@pytest.mark.parametrize("destination", [cc.LANGFUSE, cc.APM])
@pytest.mark.parametrize("name", cc.GATEWAY_FILES)
def test_gateway_queues_are_persistent(name: str, destination: str) -> None:
    assert cc.check_persistent_queue(config(name), destination) == []


@pytest.mark.parametrize("name", cc.GATEWAY_FILES)
def test_token_processor_is_referenced_by_the_apm_pipeline_only(name: str) -> None:
    gateway = config(name)
    users = {n for n, p in cc.pipelines(gateway).items() if "resource/tencent" in p["processors"]}
    assert users == {"traces/tencent"}
    assert cc.pipelines(gateway)["traces/tencent"]["exporters"] == ["otlp/tencent"]


@pytest.mark.parametrize("name", [*cc.GATEWAY_FILES, "loadbalancing.yaml"])
def test_server_tiers_listen_on_all_interfaces(name: str) -> None:
    grpc = config(name)["receivers"]["otlp"]["protocols"]
    assert grpc["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert grpc["http"]["endpoint"] == "0.0.0.0:4318"


def test_sampling_gateway_is_the_gateway_plus_tail_sampling() -> None:
    """The two gateway files must not drift apart: only the sampler may differ."""
    sampling = config("gateway-tail-sampling.yaml")
    assert cc.check_tail_sampling(sampling) == []
    del sampling["processors"]["tail_sampling"]
    ingest = sampling["service"]["pipelines"]["traces/in"]["processors"]
    assert ingest == ["memory_limiter", "tail_sampling", "batch"]
    ingest.remove("tail_sampling")
    assert sampling == config("gateway.yaml")


def test_langfuse_filter_keeps_exactly_what_the_sdk_would_send_to_langfuse() -> None:
    """filter/llm_only drops a span iff otel_llm's own Langfuse destination would not send it.

    Spans reach the gateway in the bundle's genai dialect or, recommended in README.md, in the
    both dialect, which adds langfuse.* keys (trace-level ones on every span). Either way the
    decision must equal is_llm_related() on the canonical attributes. The collector matches
    IsMatch against the attribute map encoded as compact JSON (as Go's encoder writes it); we
    replay that with the condition's own regex and nil checks.
    """
    condition = config("gateway.yaml")["processors"]["filter/llm_only"]["traces"]["span"][0]
    nil_keys = re.findall(r'attributes\["([^"]+)"\] == nil', condition)
    literal = re.search(r'IsMatch\(attributes, ("(?:\\.|[^"\\])*")\)', condition)
    assert nil_keys and literal, condition
    pattern = re.compile(json.loads(literal.group(1)))

    def collector_keeps(attributes: dict[str, Any]) -> bool:
        encoded = json.dumps(attributes, sort_keys=True, separators=(",", ":"))
        return any(k in attributes for k in nil_keys) or bool(pattern.search(encoded))

    trace_level = {
        "user.id": "u-1",
        "session.id": "s-1",
        "otel_llm.trace.name": "checkout",
        "otel_llm.trace.tags": ["prod"],
        "otel_llm.release": "r1",
        "otel_llm.version": "1.2",
        "otel_llm.environment": "prod",
    }
    samples: list[dict[str, Any]] = [
        {},
        {"http.request.method": "GET", "url.full": "https://api.example/gen_ai.chat"},
        {"db.system": "postgresql", **trace_level},
        {"gen_ai.operation.name": "chat", **trace_level},
        {"gen_ai.usage.input_tokens": 3, "http.route": "/"},
        {"otel_llm.observation.type": "span", **trace_level},
        {"otel_llm.observation.type": "generation", "gen_ai.request.model": "gpt-4o"},
        {"traceloop.span.kind": "task"},
        {"llm.model_name": "gpt-4o"},
        {"openinference.span.kind": "LLM"},
        {"langfuse.observation.type": "generation"},
        {"xgen_ai.note": 1, "db.system": "postgresql"},
        {"tags": ["prod", "gen_ai.experimental"]},
        {"note": '","gen_ai.fake":1'},
    ]
    for canonical in samples:
        expected = is_llm_related(canonical)
        for dialect in ("genai", "both"):
            sent = DIALECTS[dialect](dict(canonical))
            assert collector_keeps(sent) == expected, (dialect, sent)


# --- agent and load-balancing tiers ------------------------------------------------------------


def test_agent_forwards_with_a_persistent_queue_and_holds_no_secrets() -> None:
    agent = config("agent.yaml")
    assert cc.check_persistent_queue(agent, "gateway") == []
    assert cc.check_no_secrets(agent) == []
    exporter = agent["exporters"]["otlp/gateway"]
    assert exporter["endpoint"] == "${env:OTEL_LLM_GATEWAY_ENDPOINT}"


def test_loadbalancing_tier_routes_by_trace_id_and_holds_no_secrets() -> None:
    tier = config("loadbalancing.yaml")
    assert cc.check_loadbalancing(tier) == []
    assert cc.check_no_secrets(tier) == []
    assert tier["exporters"]["loadbalancing"]["resolver"]["static"]["hostnames"] == (
        "${env:OTEL_LLM_GATEWAY_HOSTNAMES}"
    )


# --- README ------------------------------------------------------------------------------------


def test_readme_documents_every_env_var() -> None:
    used = {var for name in cc.CONFIG_FILES for var in cc.env_vars(config(name))}
    assert used, "no env vars found: the scan is broken"
    missing = sorted(var for var in used if f"`{var}`" not in README)
    assert missing == []


def test_readme_shows_how_to_run_and_validate_every_file() -> None:
    for name in cc.CONFIG_FILES:
        assert f"collector-config/{name}" in README or f"/{name}" in README, name
    assert "otelcol-contrib validate --config" in README
    assert "otel/opentelemetry-collector-contrib" in README


# --- each check can fail -----------------------------------------------------------------------


def _path(cfg: Config, *keys: str) -> Any:
    node: Any = cfg
    for key in keys:
        node = node[key]
    return node


def _rename_exporter(cfg: Config, old: str, new: str) -> None:
    cfg["exporters"][new] = cfg["exporters"].pop(old)
    for p in cfg["service"]["pipelines"].values():
        p["exporters"] = [new if e == old else e for e in p["exporters"]]


def _set(*keys: str, value: Any) -> Callable[[Config], None]:
    def mutate(cfg: Config) -> None:
        _path(cfg, *keys[:-1])[keys[-1]] = value

    return mutate


def _pipe(name: str, role: str) -> tuple[str, ...]:
    return ("service", "pipelines", name, role)


LANGFUSE_X = ("exporters", "otlphttp/langfuse")
APM_X = ("exporters", "otlp/tencent")
FILTER = ("processors", "filter/llm_only", "traces", "span")
POLICIES = ("processors", "tail_sampling", "policies")
LB = ("exporters", "loadbalancing")
GW, TS, AG, LBF = "gateway.yaml", "gateway-tail-sampling.yaml", "agent.yaml", "loadbalancing.yaml"

# (description, file, mutation, check, expected words in one of the problems)
BREAKAGES: list[tuple[str, str, Callable[[Config], None], Check, str]] = [
    ("undeclared processor", GW,
     lambda c: _path(c, *_pipe("traces/in", "processors")).append("batch/nope"),
     cc.check_references, "not declared"),
    ("unused component", GW, _set("processors", "batch/spare", value={}),
     cc.check_references, "never used"),
    ("undeclared extension", AG, lambda c: c["service"]["extensions"].append("zpages"),
     cc.check_references, "not declared"),
    ("connector only on one side", GW,
     lambda c: [_set(*_pipe(p, "receivers"), value=["otlp"])(c)
                for p in ("traces/langfuse", "traces/tencent")],
     cc.check_references, "forward/fanout must be an exporter of one pipeline and a receiver"),
    ("unknown component type", GW, _set("exporters", "kafka/x", value={}),
     cc.check_types, "unknown component type"),
    ("misspelled top-level key", GW, _set(*LANGFUSE_X, "compresion", value="gzip"),
     cc.check_keys, "compresion"),
    ("misspelled nested key", GW, _set(*APM_X, "sending_queue", "storgae", value="x"),
     cc.check_keys, "storgae"),
    ("misspelled key in a list item", GW,
     lambda c: _path(c, "processors", "resource/tencent", "attributes")[0].update(actoin="x"),
     cc.check_keys, "actoin"),
    ("misspelled receiver protocol key", LBF,
     _set("receivers", "otlp", "protocols", "grpc", "max_recv_msg_size", value=4),
     cc.check_keys, "max_recv_msg_size"),
    ("bare $NAME", GW, _set(*APM_X, "endpoint", value="$TENCENT_APM_ENDPOINT"),
     cc.check_env_placeholders, "$"),
    ("${NAME} without env:", GW, _set(*APM_X, "endpoint", value="${TENCENT_APM_ENDPOINT}"),
     cc.check_env_placeholders, "$"),
    ("token processor in the shared ingest pipeline", GW,
     lambda c: _path(c, *_pipe("traces/in", "processors")).insert(1, "resource/tencent"),
     cc.check_secret_isolation, "TENCENT_APM_TOKEN"),
    ("token processor also in the Langfuse pipeline", GW,
     lambda c: _path(c, *_pipe("traces/langfuse", "processors")).append("resource/tencent"),
     cc.check_secret_isolation, "traces/langfuse"),
    ("literal token key in a shared processor", GW,
     lambda c: _path(c, "processors", "resource/drop_token", "attributes").append(
         {"key": "token", "value": "abc", "action": "insert"}),
     cc.check_secret_isolation, "TENCENT_APM_TOKEN"),
    ("Langfuse credentials on the APM exporter", GW,
     _set(*APM_X, "headers", value={"authorization": "Basic ${env:LANGFUSE_AUTH}"}),
     cc.check_secret_isolation, "LANGFUSE_AUTH"),
    ("Langfuse pipeline keeps the token", GW,
     _set(*_pipe("traces/langfuse", "processors"), value=["filter/llm_only"]),
     cc.check_langfuse_drops_token, "without deleting"),
    ("APM pipeline deletes the token", GW,
     lambda c: _path(c, *_pipe("traces/tencent", "processors")).append("resource/drop_token"),
     cc.check_langfuse_drops_token, "deletes"),
    ("Langfuse over gRPC", GW, lambda c: _rename_exporter(c, "otlphttp/langfuse", "otlp/langfuse"),
     cc.check_langfuse_exporter, "HTTP only"),
    ("Langfuse endpoint with /v1/traces", GW,
     _set(*LANGFUSE_X, "endpoint", value="${env:LANGFUSE_HOST}/api/public/otel/v1/traces"),
     cc.check_langfuse_exporter, "/api/public/otel"),
    ("Langfuse traces_endpoint without /v1/traces", GW,
     _set(*LANGFUSE_X, "traces_endpoint", value="${env:LANGFUSE_HOST}/api/public/otel"),
     cc.check_langfuse_exporter, "traces_endpoint"),
    ("literal Basic credentials", GW,
     _set(*LANGFUSE_X, "headers", "Authorization", value="Basic cGstbGYteHg6c2stbGYteHg="),
     cc.check_langfuse_exporter, "Authorization"),
    ("ingestion version as a number", GW,
     _set(*LANGFUSE_X, "headers", "x-langfuse-ingestion-version", value=4),
     cc.check_langfuse_exporter, "ingestion-version"),
    ("no gzip", GW, _set(*LANGFUSE_X, "compression", value="zstd"),
     cc.check_langfuse_exporter, "gzip"),
    ("APM over HTTP", GW, lambda c: _rename_exporter(c, "otlp/tencent", "otlphttp/tencent"),
     cc.check_apm_exporter, "gRPC"),
    ("APM TLS off", GW, _set(*APM_X, "tls", "insecure", value=True),
     cc.check_apm_exporter, "insecure"),
    ("APM TLS off by default", GW,
     _set(*APM_X, "tls", "insecure", value="${env:TENCENT_APM_INSECURE:-true}"),
     cc.check_apm_exporter, "insecure"),
    ("APM certificate not verified", GW, _set(*APM_X, "tls", "insecure_skip_verify", value=True),
     cc.check_apm_exporter, "insecure_skip_verify"),
    ("in-memory queue", GW, lambda c: _path(c, *APM_X, "sending_queue").pop("storage"),
     lambda c: cc.check_persistent_queue(c, cc.APM), "storage"),
    ("queue on an undeclared storage", GW,
     _set(*LANGFUSE_X, "sending_queue", "storage", value="file_storage/other"),
     lambda c: cc.check_persistent_queue(c, cc.LANGFUSE), "file_storage/other"),
    ("queue storage not enabled in service", AG,
     _set("service", "extensions", value=["health_check"]),
     lambda c: cc.check_persistent_queue(c, "gateway"), "enabled"),
    ("retries off", GW, _set(*APM_X, "retry_on_failure", "enabled", value=False),
     lambda c: cc.check_persistent_queue(c, cc.APM), "retry_on_failure"),
    ("no ERROR policy", TS, lambda c: _path(c, *POLICIES).pop(0),
     cc.check_tail_sampling, "ERROR"),
    ("no probabilistic policy", TS, lambda c: _path(c, *POLICIES).pop(),
     cc.check_tail_sampling, "probabilistic"),
    ("no cost policy", TS, lambda c: _path(c, *POLICIES).pop(1),
     cc.check_tail_sampling, "gen_ai.usage.cost"),
    ("policy type without its block", TS, lambda c: _path(c, *POLICIES)[0].pop("status_code"),
     cc.check_tail_sampling, "lacks"),
    ("unknown policy type", TS, lambda c: _path(c, *POLICIES)[0].update(type="status"),
     cc.check_tail_sampling, "unknown type"),
    ("batch before tail_sampling", TS,
     _set(*_pipe("traces/in", "processors"), value=["memory_limiter", "batch", "tail_sampling"]),
     cc.check_pipeline_order, "after tail_sampling"),
    ("memory_limiter not first", AG,
     _set(*_pipe("traces", "processors"), value=["batch", "memory_limiter"]),
     cc.check_pipeline_order, "memory_limiter"),
    ("routing by service", LBF, _set(*LB, "routing_key", value="service"),
     cc.check_loadbalancing, "traceID"),
    ("two resolvers", LBF, _set(*LB, "resolver", "dns", value={"hostname": "gw"}),
     cc.check_loadbalancing, "exactly one resolver"),
    ("unknown OTTL function", GW,
     lambda c: _path(c, *FILTER).__setitem__(0, _path(c, *FILTER)[0].replace("IsMatch", "Matches")),
     cc.check_ottl, "unknown OTTL function"),
    ("unbalanced parenthesis", GW,
     lambda c: _path(c, *FILTER).__setitem__(0, _path(c, *FILTER)[0].rstrip(")")),
     cc.check_ottl, "unclosed"),
    ("unterminated string", GW,
     lambda c: _path(c, *FILTER).__setitem__(1, 'instrumentation_scope.name == "langfuse-sdk'),
     cc.check_ottl, "tokenize"),
    ("unknown path", GW,
     lambda c: _path(c, *FILTER).__setitem__(1, 'scope_name == "langfuse-sdk"'),
     cc.check_ottl, "scope_name"),
    ("regex that does not compile", GW,
     lambda c: _path(c, *FILTER).__setitem__(0, 'IsMatch(attributes, "[{,")'),
     cc.check_ottl, "does not compile"),
    ("OTTL in a sampling policy", TS,
     lambda c: _path(c, *POLICIES)[1]["ottl_condition"]["span"].append("Len(attributes > 3"),
     cc.check_ottl, "unclosed"),
    ("service name against the APM rule", GW,
     lambda c: _path(c, "processors", "resource/tencent", "attributes")[1].update(
         value="${env:TENCENT_APM_SERVICE_NAME:-My_App}"),
     cc.check_tencent_service_names, "My_App"),
    ("secret on the agent", AG,
     _set("exporters", "otlp/gateway", "headers", value={"Authorization": "Bearer x"}),
     cc.check_no_secrets, "secret"),
    ("token on the load-balancing tier", LBF,
     _set("processors", "resource/t", value={"attributes": [{"key": "token", "value": "x",
                                                             "action": "upsert"}]}),
     cc.check_no_secrets, "token"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "mutate", "check", "expected"),
    [pytest.param(n, m, c, e, id=d) for d, n, m, c, e in BREAKAGES],
)
def test_each_check_reports_a_broken_config(
    name: str, mutate: Callable[[Config], None], check: Check, expected: str
) -> None:
    broken = config(name)
    mutate(broken)
    problems = check(broken)
    assert any(expected in p for p in problems), problems
    assert check(config(name)) == [], "the unbroken file must pass the same check"
