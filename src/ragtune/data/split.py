"""Leak-free train/eval split: by group, and never one passage on both sides.

Examples are joined into split units when they share a `group` (article, document) or any
passage text (normalized), so a context seen in training never reappears in eval, even when
two sources label the same passage with different groups. Units are shuffled with the seed and
taken into eval until it holds about `eval_fraction` of the examples of each language, as
near as whole units allow (a unit's language is its first question's; a language too small
for its share to round to one example keeps none back).

    train_idx, eval_idx, cut = split_indices(examples, eval_fraction=0.1, seed=0)
"""

from __future__ import annotations

import random
from collections import defaultdict

from ragtune.data.normalize import context_key
from ragtune.example import Example
from ragtune.text import language


def split_units(exs: list[Example]) -> list[list[int]]:
    """Example indices grouped into units that must stay together, in first-seen order."""
    parent = list(range(len(exs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps the trees shallow
            i = parent[i]
        return i

    owner: dict[tuple[str, str], int] = {}
    for i, ex in enumerate(exs):
        keys = [("group", ex.group)] if ex.group else []
        keys += [("context", context_key(c)) for c in ex.contexts if c.strip()]
        for key in keys:
            j = owner.setdefault(key, i)
            if j != i:
                parent[find(i)] = find(j)
    units: dict[int, list[int]] = defaultdict(list)
    for i in range(len(exs)):
        units[find(i)].append(i)
    return sorted(units.values(), key=lambda unit: unit[0])


def _take(units: list[list[int]], max_examples: int) -> list[list[int]]:
    """Units in the given order until `max_examples` are taken, the last one trimmed to fit."""
    kept, n = [], 0
    for unit in units:
        if n >= max_examples:
            break
        take = unit[: max_examples - n]
        kept.append(take)
        n += len(take)
    return kept


def sample(exs: list[Example], max_examples: int | None, seed: int) -> list[Example]:
    """At most `max_examples` of `exs`: whole groups (articles, shared passages) drawn at random
    with `seed`, the last one trimmed to fit, in input order. This is what `max_examples`
    means in every stage: a capped set is a sample of articles, not the file's first articles,
    and only the last article drawn may be cut short."""
    if max_examples is None or len(exs) <= max_examples:
        return list(exs)
    units = split_units(exs)
    random.Random(seed).shuffle(units)
    return [exs[i] for i in sorted(i for u in _take(units, max_examples) for i in u)]


def split_indices(
    exs: list[Example], eval_fraction: float, seed: int, max_examples: int | None = None
) -> tuple[list[int], list[int], int]:
    """(train indices, eval indices, examples cut by `max_examples`), indices in input order.

    `max_examples` keeps whole units in the shuffled order (the last one trimmed to fit), so a
    capped set is a random sample of articles, not the first articles of the file.
    """
    units = split_units(exs)
    random.Random(seed).shuffle(units)
    cut = 0
    if max_examples is not None:
        units = _take(units, max_examples)
        cut = len(exs) - sum(len(u) for u in units)
    # Each language is split on its own, so the held-out side holds every language of the
    # data: with 8 large English articles among 437 small Chinese documents, an unstratified
    # draw held out Chinese only, and the refusal threshold calibrated on it was applied to
    # English questions it had never seen (benchmarks/RESULTS.md, issue 12).
    by_lang: dict[str, list[list[int]]] = defaultdict(list)
    for unit in units:  # shuffled order kept within each language
        by_lang[language(exs[unit[0]].question)].append(unit)
    train: list[int] = []
    evals: list[int] = []
    for lang_units in by_lang.values():
        target = round(eval_fraction * sum(len(u) for u in lang_units))
        taken: list[int] = []
        for unit in lang_units:
            # Take a unit into eval while that brings eval's size closer to the target.
            if len(taken) < target and len(taken) + len(unit) - target <= target - len(taken):
                taken += unit
            else:
                train += unit
        evals += taken
    return sorted(train), sorted(evals), cut
