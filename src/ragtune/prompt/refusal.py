"""Refusal detection: did a reply decline to answer?

Generous on purpose: a base model that says "The text does not mention it" has refused, and
scoring that as an answer would inflate its hallucination rate unfairly. The configured
sentences (`PromptConfig.refusal_en` / `refusal_zh`) always count, so a custom refusal sentence
is recognised wherever the config is passed (eval, export verification, RAG, serving).

    is_refusal("The context does not contain the answer.", cfg)   # True
"""

from __future__ import annotations

import re

from ragtune.prompt.grounded import PromptConfig

# Phrases by which models (tuned or not) decline; the configured sentences are added at call time.
_REFUSAL_PATTERNS = re.compile(
    r"(does not (contain|mention|provide|say|state|specify|include|give)|"
    r"doesn't (contain|mention|provide|say|state|specify|include|give)|"
    r"(is|are) not (mentioned|provided|stated|given|specified|included)|"
    r"no (information|mention|answer)|not enough information|cannot (be )?(answer|determine|find)|"
    r"can't (answer|determine|find)|unable to (answer|determine|find)|"
    r"unanswerable|not in the context|"
    r"没有答案|无法回答|没有提到|未提及|没有提及|无法确定|不包含|没有相关信息)",
    re.IGNORECASE,
)


def is_refusal(text: str, cfg: PromptConfig | None = None) -> bool:
    """True when `text` declines to answer (the configured sentence or a common paraphrase)."""
    cfg = cfg or PromptConfig()
    t = text.strip()
    if not t:
        return False
    for sentence in (cfg.refusal_en, cfg.refusal_zh):
        if sentence and sentence.strip().rstrip(".。").lower() in t.lower():
            return True
    return bool(_REFUSAL_PATTERNS.search(t))
