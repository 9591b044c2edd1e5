"""The generation seam: what every engine takes and returns. No torch import, so RAG, serving
and tests can type against it without loading a model.

    class MyEngine:                      # satisfies Generator structurally
        name = "my-engine"
        def generate(self, batch, refusals=None) -> list[Generation]: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ragtune.errors import RagtuneError
from ragtune.prompt.grounded import Messages

__all__ = ["CountsTokens", "Generation", "GenerationError", "Generator", "Messages"]


@dataclass
class Generation:
    text: str
    """The answer, special tokens removed and whitespace stripped."""
    new_tokens: int
    """Tokens generated, not counting the end-of-turn token."""
    latency_s: float
    """Wall time of the call that produced this answer (its whole batch)."""
    batch_size: int
    """How many answers that call produced together."""
    prompt_tokens: int = 0
    """Tokens of this answer's prompt (0 when the engine does not say)."""
    prompt_s: float = 0.0
    """Wall time the call spent processing its prompts, before decoding (0: not measured)."""
    refusal_score: float | None = None
    """The model's probability of starting the refusal sentence at the start of its answer,
    when the engine was asked to score it (`generation.abstain`); None otherwise."""
    unrefused: str | None = None
    """The answer decoded with the refusal start suppressed, when a threshold decided the
    reply (`abstain.decide`): what the model says if it is not allowed to refuse."""


class Generator(Protocol):
    """Answers a batch of chat conversations, one `Generation` per conversation, in order.

    With `refusals` (each conversation's refusal sentence), an engine that sees its logits
    scores each conversation's refusal start and decodes the answer with that start
    suppressed (`generation.abstain`); one that cannot (an API model) answers as usual and
    leaves `refusal_score` None. With `spans` (per conversation, the texts its answer must be
    copied from: the passages, then the refusal sentence, or "" where none may be copied),
    an engine that can constrain decoding emits only whole words of one passage, in order,
    or the refusal sentence whole (`generation.extractive`)."""

    name: str

    def generate(
        self,
        batch: list[Messages],
        refusals: list[str] | None = None,
        spans: list[list[str]] | None = None,
    ) -> list[Generation]: ...


@runtime_checkable
class CountsTokens(Protocol):
    """An engine that can count a conversation's prompt tokens as it will render them (local
    engines can; an API model cannot): what fitting a prompt into a budget needs."""

    def count_prompt_tokens(self, messages: Messages) -> int: ...


class GenerationError(RagtuneError):
    """An engine could not answer (an API refused, timed out, or answered nonsense); the
    message names the endpoint or model and says what to try."""
