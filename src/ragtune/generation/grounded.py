"""Grounded answering through any `Generator`: questions with their passages in, one
`Generation` each out, with the refusal scoring and extractive constraint the caller asks
for. Eval (gold passages), the RAG pipeline (retrieved passages) and the server (its own
batches, `grounded_request`) all build their requests here, so they send identical prompts
and constraints.

    gens = generate_grounded(gen, [("Who founded it?", ["Ada Quill founded it."])], PromptConfig(),
                             threshold=Threshold(0.4))
    reply = abstain.decide(gens[0], 0.4, refusal_for("Who founded it?", PromptConfig()))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ragtune.generation.abstain import Threshold
from ragtune.generation.base import Generation, Generator, Messages
from ragtune.prompt.grounded import PromptConfig, build_messages, refusal_for


@dataclass(frozen=True)
class GroundedRequest:
    """What one grounded question asks of an engine."""

    messages: Messages
    refusal: str | None
    """The refusal sentence whose start is scored and blocked (a threshold decides); None:
    no scoring."""
    spans: list[str] | None
    """The texts the answer is copied from (extractive decoding); None: free decoding."""


def grounded_request(
    question: str,
    passages: Sequence[str],
    prompt: PromptConfig,
    scored: bool,
    extractive: bool,
) -> GroundedRequest:
    """The request for `question` on `passages`: `scored` when a threshold will decide it,
    `extractive` to copy the answer from the passages."""
    sentence = refusal_for(question, prompt)
    spans = None
    if extractive:
        # With a threshold every row is answered with its refusal start blocked (the threshold
        # refuses afterwards), so the refusal is no span to copy: its first word would only be
        # a dead end ("The" of "The context ..."). An empty last text leaves it out.
        spans = [*passages, "" if scored else sentence]
    return GroundedRequest(
        build_messages(question, passages, prompt), sentence if scored else None, spans
    )


def generate_grounded(
    generator: Generator,
    items: Sequence[tuple[str, Sequence[str]]],
    prompt: PromptConfig,
    threshold: Threshold | None = None,
    extractive: bool = False,
) -> list[Generation]:
    """Answers as generated (not yet decided by the threshold: `abstain.decide` does that,
    so saved answers serve any threshold). With a threshold the engine scores each
    question's refusal start; with `extractive` it copies from the passages (or, with no
    threshold to refuse, the refusal sentence)."""
    requests = [
        grounded_request(q, ps, prompt, threshold is not None, extractive) for q, ps in items
    ]
    batch = [r.messages for r in requests]
    if threshold is None and not extractive:  # the one-argument call every engine takes
        return generator.generate(batch)
    refusals = [r.refusal or "" for r in requests] if threshold is not None else None
    spans = [r.spans or [] for r in requests] if extractive else None
    return generator.generate(batch, refusals, spans)
