"""Configure-time checks for ``masking=`` and ``mask=``: every mistake is a ConfigError.

Kept apart from the stage so the stage module reads as "how a value is masked" and
this one as "what the user may ask for". Nothing here runs per span: options are
turned once into a scrubber, a secret-key predicate and a marker.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from otel_llm.errors import ConfigError
from otel_llm.processing.scrubbers import (
    BUILTIN_RULES,
    DEFAULT_MARKER,
    Scrubber,
    compile_scrubber,
)

__all__ = [
    "SECRET_KEY_NAMES",
    "SECRET_KEY_SUFFIXES",
    "STRUCTURAL_KEYS",
    "MaskOptions",
    "compile_options",
    "mask_call_style",
    "normalize_key",
]

SECRET_KEY_SUFFIXES: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "secretkey",
    "privatekey",
    "accesstoken",
    "refreshtoken",
    "authtoken",
    "sessiontoken",
    "credential",
    "credentials",
    "secretaccesskey",
)
"""Normalized key names that are secret, also as a suffix (``db_password``, ``x-api-key``)."""

SECRET_KEY_NAMES: Final = frozenset(
    {"token", "idtoken", "authorization", "proxyauthorization", "cookie", "setcookie"}
)
"""Normalized key names that are secret only as a whole (``max_tokens`` is not a secret)."""

STRUCTURAL_KEYS: Final = frozenset(
    {"role", "id", "toolcallid", "callid", "type", "name", "index", "finishreason", "mimetype"}
)
"""Normalized keys never redacted by key rules: messages keep roles, ids and part types."""

_OPTIONS: Final = ("scrubbers", "extra_patterns", "key_rules", "redact_keys", "marker")
_KEY_RULE_NAME: Final = "key"


def normalize_key(key: str) -> str:
    """``"X-Api-Key"`` → ``"xapikey"``: last dotted segment, lowercase, no ``-``/``_``/space."""
    return key.rpartition(".")[2].lower().replace("-", "").replace("_", "").replace(" ", "")


@dataclass(frozen=True, slots=True)
class MaskOptions:
    """What ``masking=`` compiled to."""

    scrubber: Scrubber | None
    is_secret_key: Callable[[str], bool] | None
    """None when key rules are off."""
    key_marker: str


def compile_options(masking: bool | Mapping[str, Any] | None) -> MaskOptions:
    """Turn ``masking=`` into options; raise ``ConfigError("masking", ...)`` if it is bad."""
    if masking is None or masking is True:
        masking = {}
    elif masking is False:
        return MaskOptions(None, None, DEFAULT_MARKER.format(rule=_KEY_RULE_NAME))
    elif not isinstance(masking, Mapping):
        raise ConfigError("masking", "must be True, False or a mapping of options")
    unknown = sorted(str(k) for k in masking if k not in _OPTIONS)
    if unknown:
        raise ConfigError(
            "masking", f"unknown option(s) {', '.join(unknown)}; known: {', '.join(_OPTIONS)}"
        )
    marker = _marker(masking.get("marker", DEFAULT_MARKER))
    extra = masking.get("extra_patterns") or {}
    if not isinstance(extra, Mapping):
        raise ConfigError("masking", "extra_patterns must be a mapping of name to regex")
    scrubber = compile_scrubber(_enabled(masking.get("scrubbers", True)), extra, marker)
    key_rules = masking.get("key_rules", True)
    extra_keys = _redact_keys(masking.get("redact_keys", ()))
    if not isinstance(key_rules, bool):
        raise ConfigError("masking", "key_rules must be True or False")
    return MaskOptions(
        scrubber, _key_rule(key_rules, extra_keys), marker.format(rule=_KEY_RULE_NAME)
    )


def _marker(marker: object) -> str:
    rule = "marker must be a non-empty string of at most 100 characters"
    if not isinstance(marker, str) or not 0 < len(marker) <= 100:
        raise ConfigError("masking", rule)
    try:
        marker.format(rule="x")
    except (KeyError, IndexError, ValueError):
        raise ConfigError(
            "masking", "marker may only use the {rule} placeholder (write {{ }} for braces)"
        ) from None
    return marker


def _enabled(scrubbers: object) -> Iterable[str]:
    if scrubbers is True or scrubbers is None:
        return BUILTIN_RULES
    if scrubbers is False:
        return ()
    if isinstance(scrubbers, Mapping):
        _check_names(scrubbers)
        if not all(isinstance(v, bool) for v in scrubbers.values()):
            raise ConfigError("masking", "scrubbers: a mapping must map rule names to True/False")
        return [name for name in BUILTIN_RULES if scrubbers.get(name, True)]
    if isinstance(scrubbers, (list, tuple, set, frozenset)):
        _check_names(scrubbers)
        return scrubbers
    raise ConfigError(
        "masking", "scrubbers must be True, False, a list of rule names or {name: bool}"
    )


def _check_names(names: Iterable[object]) -> None:
    unknown = sorted(repr(n) for n in names if n not in BUILTIN_RULES)
    if unknown:
        raise ConfigError(
            "masking",
            f"scrubbers: unknown rule(s) {', '.join(unknown)}; "
            f"built-in: {', '.join(BUILTIN_RULES)}",
        )


def _redact_keys(extra: object) -> frozenset[str]:
    if isinstance(extra, str) or not isinstance(extra, Iterable):
        raise ConfigError("masking", "redact_keys must be a list of key names")
    names: set[str] = set()
    for key in extra:
        if not isinstance(key, str) or not normalize_key(key):
            raise ConfigError("masking", f"redact_keys: {key!r} is not a key name")
        if normalize_key(key) in STRUCTURAL_KEYS:
            raise ConfigError(
                "masking", f"redact_keys: {key!r} is structural (roles, ids, types stay)"
            )
        names.add(normalize_key(key))
    return frozenset(names)


def _key_rule(enabled: bool, extra: frozenset[str]) -> Callable[[str], bool] | None:
    suffixes: tuple[str, ...] = SECRET_KEY_SUFFIXES if enabled else ()
    exact = extra | (SECRET_KEY_NAMES if enabled else frozenset())
    if not suffixes and not exact:
        return None

    def is_secret_key(key: str) -> bool:
        name = normalize_key(key)
        return name not in STRUCTURAL_KEYS and (name in exact or name.endswith(suffixes))

    return is_secret_key


def mask_call_style(mask: object) -> Literal["keyword", "positional"]:
    """How to call ``mask``: ``mask(data=v)`` like the Langfuse SDK when its signature
    allows it, else ``mask(v)``. Decided once here, never per call."""
    if not callable(mask):
        raise ConfigError("mask", "must be a callable mask(data) -> data")
    try:
        signature = inspect.signature(mask)
    except (TypeError, ValueError):  # some builtins have none: they take positionals
        return "positional"
    for args, kwargs, style in (((), {"data": None}, "keyword"), ((None,), {}, "positional")):
        try:
            signature.bind(*args, **kwargs)
        except TypeError:
            continue
        return style  # type: ignore[return-value]
    raise ConfigError("mask", "must accept one argument, as mask(data=...) or mask(value)")
