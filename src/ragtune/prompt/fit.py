"""Fitting a prompt into a token budget: passages shortened from the end, never the question.

Training (`encode.encode_example`) and inference (eval, and later RAG and serving) apply the
same rule, so a model is never asked to answer a prompt longer than what it was trained on,
and a 200k-character passage cannot stall a run. The rule needs only a way to count a
rendered prompt's tokens, so it works for any engine that can tokenize (transformers,
llama.cpp); an API model without a tokenizer is left as it is.

    passages, shortened = fit_passages(count, "Where is it?", passages, PromptConfig(), 1024)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ragtune.prompt.grounded import Messages, PromptConfig, build_messages

MAX_ROUNDS = 8  # each round re-measures; two or three rounds fit in practice


def fit_passages(
    count_tokens: Callable[[Messages], int],
    question: str,
    passages: Sequence[str],
    cfg: PromptConfig,
    budget: int,
) -> tuple[list[str], bool]:
    """(passages, whether any was shortened) so that the prompt's token count is at most
    `budget`. The last passages lose their ends first; one that is used up is dropped."""
    kept = list(passages)
    shortened = False
    bare = None  # tokens of the prompt without passages: system text and question
    for _ in range(MAX_ROUNDS):
        n = count_tokens(build_messages(question, kept, cfg))
        overflow = n - budget
        if overflow <= 0 or not kept:
            break
        shortened = True
        if bare is None:
            bare = count_tokens(build_messages(question, [], cfg))
        # Characters per passage token, measured on these passages, and slack for tokens
        # that merge across the cut.
        per_token = sum(len(p) for p in kept) / max(1, n - bare)
        cut = int((overflow + 8) * max(per_token, 1.0))
        while cut > 0 and kept:
            if len(kept[-1]) > cut:
                kept[-1] = kept[-1][: len(kept[-1]) - cut].rstrip()
                cut = 0
            else:
                cut -= len(kept[-1])
                kept.pop()
    return kept, shortened
