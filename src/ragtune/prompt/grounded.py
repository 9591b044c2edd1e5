"""The one grounded prompt, used identically for training, eval, RAG and serving.

A system message tells the model to answer only from the numbered context passages, briefly,
and to reply with a fixed refusal sentence (in the question's language) when the passages lack
the answer. It takes a question and passages, not an `Example`, so a RAG query or a chat
request builds the same prompt a training example does. Rendering goes through the model's
own chat template.

    messages = build_messages("Where is it?", ["The tower is in Paris."], PromptConfig())
    prompt = render_prompt(tokenizer, messages)             # what generation sees
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ragtune.example import Example
from ragtune.text import language

Messages = list[dict[str, str]]

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
    system_zh: str = ""
    """System instruction for Chinese questions, in Chinese ("{refusal}" as in system); empty:
    `system` for every language. With cite on, cite_instruction is appended to it as to
    `system`; closed_book uses closed_book_system for every language. Off by default: one
    asking for CMRC's complete spans measured no gain (benchmarks/RESULTS.md)."""
    refusal_en: str = "The context does not contain the answer."
    """Refusal sentence for English (and any non-Chinese) questions."""
    refusal_zh: str = "上下文中没有答案。"
    """Refusal sentence for Chinese questions."""
    cite: bool = False
    """Ask for the passage number after the answer ("Paris [2]"), as RAFT data made with
    cite=true teaches; metrics score the answer without it, RAG maps it to the source."""
    cite_instruction: str = "End the answer with the number of the passage it comes from, as [n]."
    """Added to the system instruction when cite is on."""
    closed_book: bool = False
    """Leave the passages out: the model answers from what training put into it (notes turned
    into QA, knowledge once kept in a system message). The same in train, eval and serve,
    so a closed-book model is tuned and scored on the prompt it will see."""
    closed_book_system: str = (
        "Answer the question with the shortest exact answer you know. "
        'If you do not know the answer, reply exactly: "{refusal}"'
    )
    """System instruction in closed-book mode; "{refusal}" as in system."""

    def __post_init__(self) -> None:
        from ragtune.config import ConfigError

        if self.cite and self.closed_book:
            raise ConfigError(
                "cite: a closed-book prompt has no passages to cite; set one of cite, closed_book"
            )
        for key in ("refusal_en", "refusal_zh"):
            # The refusal's first tokens are what the threshold scores and blocks.
            if not getattr(self, key).strip():
                raise ConfigError(f"{key}: the refusal sentence is empty; give the sentence")


def refusal_for(question: str, cfg: PromptConfig) -> str:
    return _refusal(language(question), cfg)


def _refusal(lang: str, cfg: PromptConfig) -> str:
    return cfg.refusal_zh if lang == "zh" else cfg.refusal_en


def instruction(lang: str, cfg: PromptConfig) -> str:
    """The grounded system instruction for a question in `lang` ("zh", or any other), with the
    refusal sentence of that language filled in."""
    text = cfg.system_zh if lang == "zh" and cfg.system_zh else cfg.system
    return text.replace("{refusal}", _refusal(lang, cfg))


def format_contexts(contexts: Sequence[str]) -> str:
    return "\n\n".join(f"[{i}] {c.strip()}" for i, c in enumerate(contexts, 1))


def build_messages(question: str, contexts: Sequence[str], cfg: PromptConfig) -> Messages:
    """System + user messages for a question on passages (the assistant turn is added for
    training only). Passages are numbered [1], [2], ... in the order given."""
    if cfg.closed_book:  # no passages at all: not even an empty "Context:" block
        system = cfg.closed_book_system.replace("{refusal}", refusal_for(question, cfg))
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Question: {question.strip()}"},
        ]
    system = instruction(language(question), cfg)
    if cfg.cite:
        system += " " + cfg.cite_instruction
    user = f"Context:\n{format_contexts(contexts)}\n\nQuestion: {question.strip()}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def target(ex: Example, cfg: PromptConfig) -> str:
    """What the model should reply: the first gold answer, or the refusal sentence."""
    return ex.answer if ex.answerable else refusal_for(ex.question, cfg)


def render_prompt(tokenizer: Any, messages: Messages) -> str:
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
