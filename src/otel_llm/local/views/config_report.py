"""The ``check-config`` report: the effective configuration from the environment, redacted.

Built from the same code ``configure()`` runs (``settings.resolve`` per setting,
``destinations_from_env()`` and each destination's ``_describe()``), so what it shows
is what an app would get. Every problem is the ``ConfigError`` message ``configure()``
would raise, plus half-configured destinations that ``configure()`` silently skips.

Secrets never appear: variables whose names look secret are shown as ``[secure]``, and
any secret value that shows up elsewhere (a description, a URL) is replaced too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from otel_llm.errors import ConfigError
from otel_llm.local.store_schema import DB_ENV_VAR, resolve_db_path
from otel_llm.settings import SETTINGS, resolve

__all__ = ["MASK", "config_report"]

MASK: Final = "[secure]"
_PREFIXES: Final = (
    "LANGFUSE_",
    "TENCENT_APM_",
    "OTEL_EXPORTER_OTLP_",
    "OTEL_LLM_",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_INSTRUMENTATION_GENAI_",
)
_SECRET_NAME: Final = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|HEADERS|AUTH|CREDENTIAL|PRIVATE|API_KEY", re.IGNORECASE
)
_PAIRS: Final = (
    ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "Langfuse"),
    ("TENCENT_APM_ENDPOINT", "TENCENT_APM_TOKEN", "the Tencent APM"),
)


def _set(environ: Mapping[str, str], name: str) -> bool:
    return bool(environ.get(name, "").strip())


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, Mapping):
        return {
            k: MASK if _SECRET_NAME.search(str(k)) and v else _redact(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(v, secrets) for v in value]
    return value


def _destinations(problems: list[str]) -> list[dict[str, Any]]:
    from otel_llm.export.from_env import destinations_from_env

    try:
        found = destinations_from_env()
    except ConfigError as exc:
        problems.append(str(exc))
        return []
    described = [dict(d._describe()) for d in found]
    for destination in found:
        destination.shutdown(0.5)  # nothing was exported; stop their sender threads
    return described


def config_report(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``{"settings", "destinations", "environment", "problems", "ok"}``, redacted.

    ``environ`` is for reading only the variables' names and values shown; settings and
    destinations are resolved from ``os.environ`` exactly as ``configure()`` would.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    settings: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        try:
            value, source = resolve(name, None)
        except ConfigError as exc:
            problems.append(str(exc))
            value, source = None, "invalid"
        settings[name] = {"value": _plain(value), "source": source, "env": list(setting.env_vars)}
    for first, second, what in _PAIRS:
        for present, missing in ((first, second), (second, first)):
            if _set(env, present) and not _set(env, missing):
                rule = f"is not set while {present} is: both are needed to export to {what}"
                problems.append(str(ConfigError(missing, rule, source="environment")))
    destinations = _destinations(problems)
    db = resolve_db_path()
    if db.is_dir():
        source = f"environment variable {DB_ENV_VAR}" if _set(env, DB_ENV_VAR) else "default"
        problems.append(str(ConfigError(DB_ENV_VAR, f"{str(db)!r} is a directory", source=source)))
    if not destinations and not problems:
        destinations = [
            {"kind": "localstore", "name": "localstore", "path": str(db), "default": True}
        ]
    shown = {k: env[k] for k in sorted(env) if k.startswith(_PREFIXES)}
    secrets = sorted(
        (v.strip() for k, v in env.items() if _SECRET_NAME.search(k) and len(v.strip()) >= 4),
        key=len,
        reverse=True,
    )
    report = {
        "settings": settings,
        "destinations": destinations,
        "environment": {k: MASK if _SECRET_NAME.search(k) and v else v for k, v in shown.items()},
        "problems": problems,
        "ok": not problems,
    }
    redacted: dict[str, Any] = _redact(report, secrets)
    return redacted
