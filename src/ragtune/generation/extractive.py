"""Extractive decoding: the answer is a contiguous piece of one of the given texts.

At each step only tokens that extend the answer so far into a longer span of some source's
token sequence are allowed (and the end of the answer, once it has a token). Sources are the
passages, each tokenized on its own, and the refusal sentence, which may only be copied from
its start. Token spans decode to substrings of the text (byte-level BPE), so the answer can
never hold a word the passages do not. Whether it helps is measured, not assumed:
`gen.extractive` is off by default (benchmarks/RESULTS.md).

    allowed = SpanConstraint([passage_ids, refusal_ids], from_start=[False, True])
    allowed.next_tokens()        # first tokens of any span
    allowed.advance(token_id)
"""

from __future__ import annotations

from collections.abc import Sequence


class SpanConstraint:
    """Which tokens may come next so that the tokens so far stay a span of one source."""

    def __init__(self, sources: Sequence[Sequence[int]], from_start: Sequence[bool]):
        self.sources = [list(s) for s in sources]
        # (source, position of the next token) for every place the answer so far matches
        self.live = [
            (i, p)
            for i, (src, start_only) in enumerate(zip(self.sources, from_start, strict=True))
            for p in (range(1) if start_only else range(len(src)))
            if src
        ]
        self.length = 0

    def next_tokens(self) -> set[int]:
        return {self.sources[i][p] for i, p in self.live if p < len(self.sources[i])}

    def advance(self, token: int) -> None:
        self.live = [
            (i, p + 1)
            for i, p in self.live
            if p < len(self.sources[i]) and self.sources[i][p] == token
        ]
        self.length += 1

    @property
    def may_stop(self) -> bool:
        """An answer of at least one token may end anywhere."""
        return self.length > 0
