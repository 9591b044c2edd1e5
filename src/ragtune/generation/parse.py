"""Reading structured output out of a model's free-text reply.

Models wrap JSON in prose or code fences ("Here are [3] pairs: [...]"). `first_json` finds
the first JSON value of the wanted type wherever it starts, with the standard decoder, so the
judge and the teacher read replies the same way.

    first_json('Sure! {"a": 1} done', dict)      # {"a": 1}
"""

from __future__ import annotations

import json
from typing import Any


def first_json(text: str, kind: type) -> Any:
    """The first JSON value of type `kind` (list or dict) in a model's reply, wherever it
    starts ("Here are [3] pairs: [...]" finds the list of pairs); None when there is none."""
    decoder = json.JSONDecoder()
    opener = "[" if kind is list else "{"
    for i, ch in enumerate(text):
        if ch == opener:
            try:
                value: Any = decoder.raw_decode(text, i)[0]
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and kind is dict:
                return value
            if isinstance(value, list) and kind is list and any(isinstance(v, dict) for v in value):
                return value  # a list of objects, not "[3]" in the prose
    return None
