"""Static checks over OpenTelemetry Collector configs, each returning a list of problems.

Every check is a pure function of a parsed config (a dict), so the tests can run it on the real
files in collector-config/ (expecting no problems) and on deliberately broken copies (expecting the
problem to be reported): that second half proves each check can fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.collector.component_keys import (
    CONNECTORS,
    EXPORTERS,
    EXTENSIONS,
    LEAF,
    OTTL_FUNCTIONS,
    OTTL_SPAN_ENUMS,
    OTTL_SPAN_PATH_ROOTS,
    PROCESSORS,
    RECEIVERS,
    TAIL_SAMPLING_POLICY_TYPES,
    Block,
    ListOf,
    Spec,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "collector-config"
CONFIG_FILES = ("gateway.yaml", "gateway-tail-sampling.yaml", "agent.yaml", "loadbalancing.yaml")
GATEWAY_FILES = ("gateway.yaml", "gateway-tail-sampling.yaml")

TABLES: dict[str, Mapping[str, Block]] = {
    "receivers": RECEIVERS,
    "processors": PROCESSORS,
    "exporters": EXPORTERS,
    "extensions": EXTENSIONS,
    "connectors": CONNECTORS,
}
# Destination exporters are found by name (the part after '/'), so a wrong type is caught.
LANGFUSE = "langfuse"
APM = "tencent"
APM_SECRET_ENV = "TENCENT_APM_TOKEN"
LANGFUSE_SECRET_ENV = "LANGFUSE_AUTH"
# Tencent's rule for an application name (seed 002, DESIGN.md "The Tencent-style APM destination").
TENCENT_SERVICE_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")

# ${env:NAME} or ${env:NAME:-default}; `$$` is the collector's escape for a literal `$`.
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^{}$]*))?\}")

Problems = list[str]


def load(name: str) -> dict[str, Any]:
    with (CONFIG_DIR / name).open(encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict):
        raise TypeError(f"{name}: top level is not a mapping")
    return config


def ctype(component_id: str) -> str:
    """The component type: the part of an id before the first '/'."""
    return component_id.split("/", 1)[0]


def section(config: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return dict(config.get(kind) or {})


def destination_exporter(config: Mapping[str, Any], name: str) -> str:
    """The id of the exporter named ``name`` (e.g. "langfuse" for otlphttp/langfuse), or ""."""
    ids = [cid for cid in section(config, "exporters") if cid.partition("/")[2] == name]
    return ids[0] if len(ids) == 1 else ""


def pipelines(config: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    service = config.get("service") or {}
    return {
        name: {k: list(p.get(k) or []) for k in ("receivers", "processors", "exporters")}
        for name, p in (service.get("pipelines") or {}).items()
    }


def iter_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a parsed config, keys included, with a dotted path to it."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield sub, key
            yield from iter_strings(value, sub)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from iter_strings(item, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def env_vars(config: Mapping[str, Any]) -> dict[str, str | None]:
    """Env vars the config reads, with their default (None when there is none)."""
    found: dict[str, str | None] = {}
    for _, text in iter_strings(config):
        for m in ENV_REF.finditer(text):
            found.setdefault(m.group(1), m.group(2))
    return found


def expand_defaults(text: str) -> str:
    """The string as the collector would see it with no env set but defaults applied."""
    return ENV_REF.sub(lambda m: m.group(2) if m.group(2) is not None else "0", text)


# --- structure ---------------------------------------------------------------------------------


def check_references(config: Mapping[str, Any]) -> Problems:
    """Everything a pipeline or service.extensions names is declared, and vice versa."""
    problems: Problems = []
    declared = {kind: set(section(config, kind)) for kind in TABLES}
    connectors = declared["connectors"]
    used: dict[str, set[str]] = {kind: set() for kind in TABLES}
    as_exporter: set[str] = set()
    as_receiver: set[str] = set()
    if not pipelines(config):
        problems.append("service.pipelines is empty")
    for name, p in pipelines(config).items():
        if ctype(name) not in {"traces", "metrics", "logs"}:
            problems.append(f"pipeline {name}: unknown signal type")
        for role in ("receivers", "exporters"):
            if not p[role]:
                problems.append(f"pipeline {name}: no {role}")
            for cid in p[role]:
                if cid in connectors:
                    (as_exporter if role == "exporters" else as_receiver).add(cid)
                    used["connectors"].add(cid)
                elif cid in declared[role]:
                    used[role].add(cid)
                else:
                    problems.append(f"pipeline {name}: {role[:-1]} {cid!r} is not declared")
        for cid in p["processors"]:
            if cid not in declared["processors"]:
                problems.append(f"pipeline {name}: processor {cid!r} is not declared")
            used["processors"].add(cid)
        if len(set(p["processors"])) != len(p["processors"]):
            problems.append(f"pipeline {name}: a processor is listed twice")
    for cid in (config.get("service") or {}).get("extensions") or []:
        if cid not in declared["extensions"]:
            problems.append(f"service.extensions: {cid!r} is not declared")
        used["extensions"].add(cid)
    for kind in TABLES:
        for cid in sorted(declared[kind] - used[kind]):
            problems.append(f"{kind}.{cid} is declared but never used")
    for cid in sorted(connectors):
        if cid in used["connectors"] and (cid not in as_exporter or cid not in as_receiver):
            problems.append(f"connectors.{cid} must be an exporter of one pipeline and a receiver")
    return problems


def check_types(config: Mapping[str, Any]) -> Problems:
    """Each component's type is one we know (and hold a key table for)."""
    return [
        f"{kind}.{cid}: unknown component type {ctype(cid)!r}"
        for kind, table in TABLES.items()
        for cid in section(config, kind)
        if ctype(cid) not in table
    ]


def _check_spec(value: Any, spec: Spec, path: str) -> Problems:
    if isinstance(spec, Block):
        if value is None:  # `name:` with nothing after it is an empty block
            return []
        if not isinstance(value, Mapping):
            return [f"{path}: expected a mapping, got {type(value).__name__}"]
        allowed = spec.allowed()
        problems: Problems = []
        for key, sub in value.items():
            if key not in allowed:
                problems.append(f"{path}.{key}: not a key of this block")
            else:
                problems += _check_spec(sub, allowed[key], f"{path}.{key}")
        return problems
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [
            p for i, item in enumerate(value) for p in _check_spec(item, spec.item, f"{path}[{i}]")
        ]
    if spec is LEAF and isinstance(value, Mapping):
        return [f"{path}: expected a value, got a mapping"]
    return []


def check_keys(config: Mapping[str, Any]) -> Problems:
    """Every key of every component is one its upstream config struct accepts."""
    problems: Problems = []
    for kind, table in TABLES.items():
        for cid, body in section(config, kind).items():
            spec = table.get(ctype(cid))
            if spec is not None:
                problems += _check_spec(body, spec, f"{kind}.{cid}")
    return problems


def check_env_placeholders(config: Mapping[str, Any]) -> Problems:
    """Only ${env:NAME} / ${env:NAME:-default}: no bare $NAME, no ${NAME}, no other provider."""
    problems: Problems = []
    for path, text in iter_strings(config):
        rest = ENV_REF.sub("", text.replace("$$", ""))
        if "$" in rest:
            problems.append(f"{path}: {text!r} has a `$` that is not an ${{env:NAME}} reference")
    return problems


def check_pipeline_order(config: Mapping[str, Any]) -> Problems:
    """memory_limiter first where data enters; tail_sampling before batch (batch what is kept)."""
    problems: Problems = []
    connectors = set(section(config, "connectors"))
    for name, p in pipelines(config).items():
        types = [ctype(cid) for cid in p["processors"]]
        if any(r not in connectors for r in p["receivers"]) and types[:1] != ["memory_limiter"]:
            problems.append(f"pipeline {name}: memory_limiter must be the first processor")
        if {"tail_sampling", "batch"} <= set(types) and (
            types.index("batch") < types.index("tail_sampling")
        ):
            problems.append(f"pipeline {name}: batch must come after tail_sampling")
    return problems


# --- secrets -----------------------------------------------------------------------------------


def _adds_token(body: Any) -> bool:
    """A resource/attributes action that sets a `token` attribute (delete does not count)."""
    actions = (body or {}).get("attributes") or (body or {}).get("actions") or []
    return any(
        isinstance(a, Mapping)
        and a.get("key") == "token"
        and str(a.get("action", "")).lower() != "delete"
        for a in actions
    )


def _deletes_token(body: Any) -> bool:
    actions = (body or {}).get("attributes") or []
    return any(
        isinstance(a, Mapping) and a.get("key") == "token" and a.get("action") == "delete"
        for a in actions
    )


def _mentions(body: Any, env_name: str) -> bool:
    return any(f"${{env:{env_name}" in text for _, text in iter_strings(body))


def _secret_holders(config: Mapping[str, Any], env_name: str, token: bool) -> list[tuple[str, str]]:
    holders = []
    for kind in TABLES:
        for cid, body in section(config, kind).items():
            if _mentions(body, env_name) or (token and _adds_token(body)):
                holders.append((kind, cid))
    return holders


def check_secret_isolation(config: Mapping[str, Any]) -> Problems:
    """The APM token lives only in components that only APM pipelines use; same for Langfuse auth.

    A pipeline belongs to a destination when all its exporters are that destination's exporter.
    A processor or exporter listed by any other pipeline (the shared ingest pipeline, the other
    destination's) would put the secret on data going elsewhere.
    """
    problems: Problems = []
    cases = (
        (APM_SECRET_ENV, True, destination_exporter(config, APM)),
        (LANGFUSE_SECRET_ENV, False, destination_exporter(config, LANGFUSE)),
    )
    for env_name, token, exporter in cases:
        for kind, cid in _secret_holders(config, env_name, token):
            if kind not in {"processors", "exporters"}:
                problems.append(f"{kind}.{cid} holds {env_name}: only processors/exporters may")
                continue
            users = [n for n, p in pipelines(config).items() if cid in p[kind]]
            for name in users:
                if set(pipelines(config)[name]["exporters"]) != {exporter}:
                    problems.append(
                        f"{kind}.{cid} holds {env_name} but pipeline {name} "
                        f"does not export only to {exporter}"
                    )
    return problems


def check_langfuse_drops_token(config: Mapping[str, Any]) -> Problems:
    """Pipelines to Langfuse delete a resource `token`; pipelines to the APM must not."""
    problems: Problems = []
    processors = section(config, "processors")
    langfuse = destination_exporter(config, LANGFUSE)
    apm = destination_exporter(config, APM)
    for name, p in pipelines(config).items():
        strips = any(
            ctype(cid) == "resource" and _deletes_token(processors.get(cid))
            for cid in p["processors"]
        )
        if langfuse in p["exporters"] and not strips:
            problems.append(f"pipeline {name}: exports to Langfuse without deleting `token`")
        if apm in p["exporters"] and strips:
            problems.append(f"pipeline {name}: deletes `token` on the way to the APM")
    return problems


def check_no_secrets(config: Mapping[str, Any]) -> Problems:
    """For agent/LB tiers: no credentials, no `token` attribute at all."""
    problems = [
        f"{path}: holds a secret" for path, text in iter_strings(config)
        if APM_SECRET_ENV in text or LANGFUSE_SECRET_ENV in text or "authorization" in text.lower()
    ]  # fmt: skip
    problems += [
        f"{kind}.{cid}: sets a `token` attribute"
        for kind in TABLES
        for cid, body in section(config, kind).items()
        if _adds_token(body)
    ]
    return problems


# --- destinations ------------------------------------------------------------------------------


def _header(headers: Mapping[str, Any], name: str) -> Any:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def check_langfuse_exporter(config: Mapping[str, Any]) -> Problems:
    """OTLP/HTTP to {host}/api/public/otel, Basic auth from env, ingestion v4, gzip."""
    cid = destination_exporter(config, LANGFUSE)
    if not cid:
        return ["no (single) exporter named */langfuse"]
    body = section(config, "exporters")[cid] or {}
    problems: Problems = []
    if ctype(cid) not in {"otlphttp", "otlp_http"}:
        problems.append("Langfuse accepts OTLP over HTTP only")
    traces_endpoint = body.get("traces_endpoint")
    if traces_endpoint is not None:
        if not str(traces_endpoint).endswith("/api/public/otel/v1/traces"):
            problems.append("traces_endpoint must be the full URL .../api/public/otel/v1/traces")
    elif not str(body.get("endpoint", "")).endswith("/api/public/otel"):
        problems.append("endpoint must end with /api/public/otel (the exporter adds /v1/traces)")
    headers = body.get("headers") or {}
    auth = _header(headers, "Authorization")
    if not isinstance(auth, str) or not re.fullmatch(r"Basic " + ENV_REF.pattern, auth):
        problems.append("Authorization must be 'Basic ${env:NAME}' (never a literal key)")
    if _header(headers, "x-langfuse-ingestion-version") != "4":
        problems.append('x-langfuse-ingestion-version must be the string "4"')
    if body.get("compression") != "gzip":
        problems.append("compression must be gzip (the only encoding Langfuse decompresses)")
    return problems


def _is_false(value: Any) -> bool:
    """False, or an env reference whose default is false (the value used when it is unset)."""
    if value is None or value is False:
        return True
    if isinstance(value, str):
        m = ENV_REF.fullmatch(value)
        return bool(m and m.group(2) is not None and m.group(2).strip().lower() == "false")
    return False


def check_apm_exporter(config: Mapping[str, Any]) -> Problems:
    """OTLP/gRPC to the access point from env, with TLS on unless explicitly turned off."""
    cid = destination_exporter(config, APM)
    if not cid:
        return ["no (single) exporter named */tencent"]
    body = section(config, "exporters")[cid] or {}
    problems: Problems = []
    if ctype(cid) not in {"otlp", "otlp_grpc"}:
        problems.append("the APM exporter must be OTLP/gRPC")
    if not ENV_REF.fullmatch(str(body.get("endpoint", ""))):
        problems.append("endpoint must come from env (the console's access point)")
    tls = body.get("tls") or {}
    if not _is_false(tls.get("insecure")):
        problems.append("tls.insecure must be false (or an env reference defaulting to false)")
    if not _is_false(tls.get("insecure_skip_verify")):
        problems.append("tls.insecure_skip_verify must stay false")
    return problems


def check_persistent_queue(config: Mapping[str, Any], name: str) -> Problems:
    """Exporter ``name``: sending_queue on a declared, enabled file_storage; retries on."""
    exporter = destination_exporter(config, name)
    if not exporter:
        return [f"no (single) exporter named */{name}"]
    body = section(config, "exporters")[exporter] or {}
    problems: Problems = []
    queue = body.get("sending_queue") or {}
    if not queue or queue.get("enabled") is False:
        problems.append(f"{exporter}: sending_queue must be enabled")
    storage = queue.get("storage")
    extensions = section(config, "extensions")
    enabled = (config.get("service") or {}).get("extensions") or []
    if storage is None:
        problems.append(f"{exporter}: sending_queue.storage must name a file_storage extension")
    elif ctype(storage) != "file_storage" or storage not in extensions or storage not in enabled:
        problems.append(f"{exporter}: storage {storage!r} is not a declared, enabled file_storage")
    if (body.get("retry_on_failure") or {}).get("enabled") is not True:
        problems.append(f"{exporter}: retry_on_failure.enabled must be true")
    return problems


def check_tencent_service_names(config: Mapping[str, Any]) -> Problems:
    """Any service.name we set (literal or env default) satisfies the APM's naming rule."""
    problems: Problems = []
    for cid, body in section(config, "processors").items():
        for action in (body or {}).get("attributes") or []:
            if not isinstance(action, Mapping) or action.get("key") != "service.name":
                continue
            value = str(action.get("value", ""))
            m = ENV_REF.fullmatch(value)
            candidate = (m.group(2) if m else value) or ""
            if m and m.group(2) is None:
                continue  # required env var, no default to check
            if not TENCENT_SERVICE_NAME.fullmatch(candidate) or len(candidate) > 63:
                problems.append(f"processors.{cid}: service.name {candidate!r} breaks the rule")
    return problems


# --- sampling and load balancing ---------------------------------------------------------------


def check_tail_sampling(config: Mapping[str, Any]) -> Problems:
    """Errors kept, expensive generations kept, a probabilistic share of the rest."""
    processors = section(config, "processors")
    samplers = {c: b for c, b in processors.items() if ctype(c) == "tail_sampling"}
    if not samplers:
        return ["no tail_sampling processor"]
    problems: Problems = []
    for cid, body in samplers.items():
        policies = (body or {}).get("policies") or []
        for policy in policies:
            kind = policy.get("type")
            if kind not in TAIL_SAMPLING_POLICY_TYPES:
                problems.append(f"{cid}: policy {policy.get('name')!r} has unknown type {kind!r}")
            elif kind != "always_sample" and kind not in policy:
                problems.append(f"{cid}: policy {policy.get('name')!r} lacks its {kind} block")
        by_type = {p.get("type"): p for p in policies}
        codes = ((by_type.get("status_code") or {}).get("status_code") or {}).get("status_codes")
        if "ERROR" not in (codes or []):
            problems.append(f"{cid}: no status_code policy keeping ERROR")
        prob = (by_type.get("probabilistic") or {}).get("probabilistic") or {}
        pct = expand_defaults(str(prob.get("sampling_percentage", "")))
        try:
            if not 0 < float(pct) <= 100:
                problems.append(f"{cid}: sampling_percentage {pct} is outside (0, 100]")
        except ValueError:
            problems.append(f"{cid}: no probabilistic policy with a sampling_percentage")
        conditions = ((by_type.get("ottl_condition") or {}).get("ottl_condition") or {}).get("span")
        if not any('attributes["gen_ai.usage.cost"]' in c for c in conditions or []):
            problems.append(f"{cid}: no policy keeping expensive generations (gen_ai.usage.cost)")
    return problems


def check_loadbalancing(config: Mapping[str, Any]) -> Problems:
    balancers = {
        c: b for c, b in section(config, "exporters").items()
        if ctype(c) in {"loadbalancing", "load_balancing"}
    }  # fmt: skip
    if not balancers:
        return ["no loadbalancing exporter"]
    problems: Problems = []
    for cid, body in balancers.items():
        if body.get("routing_key") != "traceID":
            problems.append(f"{cid}: routing_key must be traceID (tail sampling needs all spans)")
        known = {"static", "dns", "k8s", "aws_cloud_map"}
        resolvers = [k for k in (body.get("resolver") or {}) if k in known]
        if len(resolvers) != 1:
            problems.append(f"{cid}: configure exactly one resolver, got {resolvers}")
        if "endpoint" in ((body.get("protocol") or {}).get("otlp") or {}):
            problems.append(f"{cid}: protocol.otlp.endpoint is filled in per backend; remove it")
    return problems


# --- OTTL --------------------------------------------------------------------------------------

_OTTL_TOKEN = re.compile(
    r"""\s+
    | (?P<string>"(?:\\.|[^"\\])*")
    | (?P<number>\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/)
    | (?P<punct>[()\[\],.])
    """,
    re.VERBOSE,
)
_OTTL_KEYWORDS = frozenset({"and", "or", "not", "nil", "true", "false"})
_PAIRS = {")": "(", "]": "["}


def ottl_problems(condition: str) -> Problems:
    """A superficial OTTL parse: tokens, balanced brackets/quotes, known names, valid regexes."""
    text = expand_defaults(condition)
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _OTTL_TOKEN.match(text, pos)
        if m is None:
            where = text[pos : pos + 12]
            return [f"cannot tokenize at {where!r} (unterminated string or stray character)"]
        pos = m.end()
        if m.lastgroup:
            tokens.append((m.lastgroup, m.group()))
    problems: Problems = []
    stack: list[str] = []
    for i, (kind, tok) in enumerate(tokens):
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        prev = tokens[i - 1][1] if i else ""
        if tok in ("(", "["):
            stack.append(tok)
        elif tok in (")", "]"):
            if not stack or stack.pop() != _PAIRS[tok]:
                problems.append(f"unbalanced {tok!r}")
        elif kind == "ident":
            if nxt == "(":
                if tok not in OTTL_FUNCTIONS:
                    problems.append(f"unknown OTTL function {tok}()")
            elif prev != "." and tok not in _OTTL_KEYWORDS | OTTL_SPAN_PATH_ROOTS | OTTL_SPAN_ENUMS:
                problems.append(f"unknown path or keyword {tok!r}")
    if stack:
        problems.append(f"unclosed {''.join(stack)!r}")
    for i, (_, tok) in enumerate(tokens):
        if tok == "IsMatch":
            problems += _regex_argument_problems(tokens[i:])
    return problems


def _regex_argument_problems(tokens: list[tuple[str, str]]) -> Problems:
    """IsMatch(target, "regex"): the pattern is a string literal that compiles."""
    depth = 0
    for j, (kind, tok) in enumerate(tokens[1:], start=1):
        depth += (tok in ("(", "[")) - (tok in (")", "]"))
        if depth == 1 and tok == ",":
            kind, literal = tokens[j + 1] if j + 1 < len(tokens) else ("", "")
            if kind != "string":
                return ["IsMatch pattern must be a string literal"]
            try:
                re.compile(json.loads(literal))
            except (ValueError, re.error) as exc:
                return [f"IsMatch pattern {literal} does not compile: {exc}"]
            return []
    return ["IsMatch needs two arguments"]


def ottl_conditions(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every OTTL condition in the config: filter processors and ottl_condition policies."""
    found: dict[str, list[str]] = {}
    for cid, body in section(config, "processors").items():
        body = body or {}
        if ctype(cid) == "filter":
            for key, conds in (body.get("traces") or {}).items():
                found[f"{cid}.traces.{key}"] = list(conds or [])
        if ctype(cid) == "tail_sampling":
            for policy in body.get("policies") or []:
                block = policy.get("ottl_condition") or {}
                for key in ("span", "spanevent"):
                    if block.get(key):
                        found[f"{cid}.{policy.get('name')}.{key}"] = list(block[key])
    return found


def check_ottl(config: Mapping[str, Any]) -> Problems:
    return [
        f"{where}: {cond!r}: {problem}"
        for where, conds in ottl_conditions(config).items()
        for cond in conds
        for problem in ottl_problems(cond)
    ]
