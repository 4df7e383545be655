"""The one LLM call every benchmark mode records, so modes differ only in how they record it.

Sizes are those of a short real chat turn (a ~300-character message list in, a
~150-character answer out) so serialization cost is in the picture at a realistic
scale, neither hidden by tiny strings nor dominated by huge ones.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["MAX_TOKENS", "MESSAGES", "MODEL", "MODEL_PARAMETERS", "OUTPUT", "TEMPERATURE", "USAGE"]

MODEL: Final = "gpt-4o-mini"
TEMPERATURE: Final = 0.2
MAX_TOKENS: Final = 256
MODEL_PARAMETERS: Final[dict[str, Any]] = {"temperature": TEMPERATURE, "max_tokens": MAX_TOKENS}

MESSAGES: Final[list[dict[str, str]]] = [
    {
        "role": "system",
        "content": "You are a concise assistant for a travel booking site. Answer in one "
        "short paragraph.",
    },
    {
        "role": "user",
        "content": "I land in Lisbon at 23:40 on a Friday. Is the metro still running, "
        "and what is the cheapest way to reach Alfama with one suitcase? Thanks a lot!",
    },
]

OUTPUT: Final = (
    "The metro closes at 01:00, so take the red line to Alameda, change to green for "
    "Baixa-Chiado, then walk or take tram 28 uphill to Alfama (about 2 EUR)."
)

USAGE: Final[dict[str, int]] = {"input_tokens": 74, "output_tokens": 41}
