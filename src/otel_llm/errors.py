"""The one exception type users catch from otel-llm.

Configuration is the only place we raise: every later failure is logged once and
counted in ``stats()`` instead, because an observability library must never be
the reason an application request fails.
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A setting is invalid. The message names the setting, where it came from and the rule.

    It subclasses ``ValueError`` so code that already guards configuration with
    ``except ValueError`` keeps working.
    """

    def __init__(self, setting: str, rule: str, *, source: str | None = None) -> None:
        self.setting = setting
        self.rule = rule
        self.source = source
        where = f" (from {source})" if source else ""
        super().__init__(f"{setting}{where}: {rule}")
