"""The one LLM call every benchmark mode records, so modes differ only in how they record it.

Sizes are those of a short real chat turn (a ~300-character message list in, a
~150-character answer out) so serialization cost is in the picture at a realistic
scale, neither hidden by tiny strings nor dominated by huge ones.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any, Final

__all__ = [
    "MAX_TOKENS",
    "MESSAGES",
    "MODEL",
    "MODEL_PARAMETERS",
    "OUTPUT",
    "TEMPERATURE",
    "USAGE",
    "distinct",
    "set_by_hand",
    "variants",
]

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


def set_by_hand(span: Any, messages: Any = MESSAGES, output: str = OUTPUT) -> None:
    """The attributes hand-written OTel instrumentation sets on the call's span.

    Content is serialized per call with the stdlib ``json``, as such code would do.
    """
    dumps = json.dumps
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.request.model", MODEL)
    span.set_attribute("gen_ai.request.temperature", TEMPERATURE)
    span.set_attribute("gen_ai.request.max_tokens", MAX_TOKENS)
    span.set_attribute("gen_ai.input.messages", dumps(messages))
    span.set_attribute("gen_ai.output.messages", dumps(output))
    span.set_attribute("gen_ai.usage.input_tokens", USAGE["input_tokens"])
    span.set_attribute("gen_ai.usage.output_tokens", USAGE["output_tokens"])


def distinct(index: int) -> tuple[list[dict[str, str]], str]:
    """The call's messages and output made unique by ``index``, same sizes give or take.

    Real calls rarely repeat their content, so benchmarks of code that might cache by
    value (encoders, scrubbers) use these rather than one payload repeated.
    """
    messages = [dict(message) for message in MESSAGES]
    messages[-1]["content"] = f"{messages[-1]['content']} (#{index})"
    return messages, f"{OUTPUT} (#{index})"


VARIANTS: Final = 1024


def variants(count: int = VARIANTS) -> Iterator[tuple[list[dict[str, str]], str]]:
    """Endless (messages, output) pairs cycling over ``count`` :func:`distinct` ones.

    1024 variants of ~2 KB spans exceed gzip's 32 KiB window many times over, so
    compression sees content as varied as real traffic's.
    """
    return itertools.cycle([distinct(i) for i in range(count)])
