"""Fitting a prompt into a token budget: passages shortened from the end, never the question.

Training (`encode.encode_example`) and inference (eval, and later RAG and serving) apply the
same rule, so a model is never asked to answer a prompt longer than what it was trained on,
and a 200k-character passage cannot stall a run. The rule needs only a way to count a
rendered prompt's tokens, so it works for any engine that can tokenize (transformers,
llama.cpp); an API model without a tokenizer is left as it is.

    passages, shortened = fit_passages(count, "Where is it?", passages, PromptConfig(), 1024)
    # count(messages) -> tokens of the rendered prompt, e.g. LocalGenerator.count_prompt_tokens
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ragtune.prompt.grounded import Messages, PromptConfig, build_messages


def fit_passages(
    count_tokens: Callable[[Messages], int],
    question: str,
    passages: Sequence[str],
    cfg: PromptConfig,
    budget: int,
) -> tuple[list[str], bool]:
    """(passages, whether any was shortened) so that the prompt's token count is at most
    `budget`. The last passages lose their ends first; one that is used up is dropped.

    Each cut is exact: the last passage's length is found by bisection on the rendered
    prompt's token count (about log2(characters) counts), so passages of any script and
    density fit, and no more is cut than needed."""
    kept = list(passages)
    if count_tokens(build_messages(question, kept, cfg)) <= budget:
        return kept, False
    while kept:
        rest = kept[:-1]
        if count_tokens(build_messages(question, rest, cfg)) > budget:
            kept.pop()  # all of the last passage has to go, and more
            continue
        last = kept[-1]
        lo, hi = 0, len(last)  # lo always fits; the whole passage does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if count_tokens(build_messages(question, [*rest, last[:mid]], cfg)) <= budget:
                lo = mid
            else:
                hi = mid
        cut = last[:lo].rstrip()
        kept = [*rest, cut] if cut else rest
        break
    return kept, True
