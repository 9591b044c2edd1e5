"""The one grounded prompt, used identically for training and inference.

A system message tells the model to answer only from the numbered context passages, briefly,
and to reply with a fixed refusal sentence (in the question's language) when the passages lack
the answer. Rendering goes through the model's own chat template. `encode_example` returns
token ids with labels masked to -100 everywhere but the answer, so loss is on the answer only.

    messages = build_messages(example, cfg)
    prompt = render_prompt(tokenizer, messages)             # what generation sees
    ids = encode_example(tokenizer, example, cfg, max_length=1024)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ragtune.data.example import Example

IGNORE_INDEX = -100  # label value that cross-entropy skips: prompt and padding positions

# Used when a tokenizer has no chat template of its own (base models, tiny test models).
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass
class PromptConfig:
    system: str = (
        "You answer questions using only the numbered context passages. "
        "Reply with the shortest exact answer, copied from the context when possible. "
        'If the context does not contain the answer, reply exactly: "{refusal}"'
    )
    """System instruction; "{refusal}" is replaced by the refusal sentence in the question's language."""
    refusal_en: str = "The context does not contain the answer."
    """Refusal sentence for English (and any non-Chinese) questions."""
    refusal_zh: str = "上下文中没有答案。"
    """Refusal sentence for Chinese questions."""


_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def language(text: str) -> str:
    """ "zh" when CJK characters make up a fifth or more of the non-space characters, else "en"."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return "en"
    return "zh" if len(_CJK.findall(text)) * 5 >= len(chars) else "en"


def refusal_for(question: str, cfg: PromptConfig) -> str:
    return cfg.refusal_zh if language(question) == "zh" else cfg.refusal_en


# Phrases by which models (tuned or not) decline; the configured sentences are added at call time.
# Refusal detection must be generous: a base model that says "The text does not mention it" has
# refused, and scoring it as an answer would inflate its hallucination rate unfairly.
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


def format_contexts(contexts: list[str]) -> str:
    return "\n\n".join(f"[{i}] {c.strip()}" for i, c in enumerate(contexts, 1))


def build_messages(
    ex: Example, cfg: PromptConfig, contexts: list[str] | None = None
) -> list[dict[str, str]]:
    """System + user messages for `ex` (the assistant turn is added for training only)."""
    system = cfg.system.replace("{refusal}", refusal_for(ex.question, cfg))
    ctx = format_contexts(ex.contexts if contexts is None else contexts)
    user = f"Context:\n{ctx}\n\nQuestion: {ex.question.strip()}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def target(ex: Example, cfg: PromptConfig) -> str:
    """What the model should reply: the first gold answer, or the refusal sentence."""
    return ex.answer if ex.answerable else refusal_for(ex.question, cfg)


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def _answer_suffix(tokenizer: Any, messages: list[dict[str, str]], answer: str) -> tuple[str, str]:
    """(prompt text, answer text incl. the template's end-of-turn marker)."""
    prompt = render_prompt(tokenizer, messages)
    full = str(
        tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": answer}], tokenize=False
        )
    )
    if not full.startswith(prompt):
        # Templates that rewrite earlier turns (rare) cannot be split; fall back to prompt + answer + eos.
        return prompt, answer + (tokenizer.eos_token or "")
    return prompt, full[len(prompt) :].rstrip()


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_example(
    tokenizer: Any, ex: Example, cfg: PromptConfig, max_length: int
) -> dict[str, Any]:
    """Token ids and labels for one training example, answer-only loss.

    When prompt + answer exceed `max_length` tokens the contexts are shortened from the end
    (never the answer), and `truncated` is set so data checks can count it.
    """
    answer = target(ex, cfg)
    contexts = list(ex.contexts)
    truncated = False
    for _ in range(4):
        prompt, suffix = _answer_suffix(tokenizer, build_messages(ex, cfg, contexts), answer)
        prompt_ids, answer_ids = _ids(tokenizer, prompt), _ids(tokenizer, suffix)
        overflow = len(prompt_ids) + len(answer_ids) - max_length
        if overflow <= 0:
            break
        truncated = True
        # Cut the overflow (plus slack for re-tokenisation at the seam) off the last passages.
        cut = overflow + 8
        while cut > 0 and contexts:
            ids = _ids(tokenizer, contexts[-1])
            if len(ids) > cut:
                contexts[-1] = tokenizer.decode(ids[: len(ids) - cut])
                cut = 0
            else:
                cut -= len(ids)
                contexts.pop()
    else:
        # Still too long (answer alone near max_length): keep the answer, clip the prompt's head.
        keep = max(0, max_length - len(answer_ids))
        prompt_ids = prompt_ids[-keep:] if keep else []
        answer_ids = answer_ids[:max_length]
    input_ids = prompt_ids + answer_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    return {"input_ids": input_ids, "labels": labels, "truncated": truncated}
