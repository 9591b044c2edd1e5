"""Grounded answering through any `Generator`: questions with their passages in, one
`Generation` each out, with the refusal scoring and extractive constraint the caller asks
for. Eval (gold passages) and the RAG pipeline (retrieved passages) both answer through this
one call, so they build identical prompts and requests.

    gens = generate_grounded(gen, [("Who founded it?", ["Ada Quill founded it."])], PromptConfig(),
                             threshold=Threshold(0.4))
    reply = abstain.decide(gens[0], 0.4, refusal_for("Who founded it?", PromptConfig()))
"""

from __future__ import annotations

from collections.abc import Sequence

from ragtune.generation.abstain import Threshold
from ragtune.generation.base import Generation, Generator
from ragtune.prompt.grounded import PromptConfig, build_messages, refusal_for


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
    batch = [build_messages(q, ps, prompt) for q, ps in items]
    if threshold is None and not extractive:  # the one-argument call every engine takes
        return generator.generate(batch)
    sentences = [refusal_for(q, prompt) for q, _ in items]
    refusals = sentences if threshold is not None else None
    # With a threshold every row is answered with its refusal start blocked (the threshold
    # refuses afterwards), so the refusal is no span to copy: its first word would only be
    # a dead end ("The" of "The context ..."). An empty last text leaves it out.
    last = sentences if threshold is None else [""] * len(items)
    spans = [[*ps, s] for (_, ps), s in zip(items, last, strict=True)] if extractive else None
    return generator.generate(batch, refusals, spans)
