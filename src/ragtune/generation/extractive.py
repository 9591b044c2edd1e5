"""Extractive decoding: the answer is a contiguous piece of one of the given texts.

At each step only tokens that extend the answer so far into a longer span of some source's
token sequence are allowed (and the end of the answer, once it has a token). Sources are the
passages, each tokenized on its own, and the refusal sentence, which may only be copied from
its start. Token spans decode to substrings of the text (byte-level BPE), so the answer can
never hold a word the passages do not. Whether it helps is measured, not assumed:
`gen.extractive` is off by default (benchmarks/RESULTS.md).

    allowed = SpanConstraint([passage_ids, refusal_ids], from_start=[False, True],
                             aliases=[word_starts(tokenizer, passage_ids), {}])
    allowed.next_tokens()        # first tokens of any span
    allowed.advance(token_id)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class SpanConstraint:
    """Which tokens may come next so that the tokens so far stay a span of one source.

    `aliases` (per source, position -> token id) name another token that may stand for the
    source's token at that position when it begins the answer: in running text a word is a
    token with its leading space (" Paris"), while an answer begins without one ("Paris")."""

    def __init__(
        self,
        sources: Sequence[Sequence[int]],
        from_start: Sequence[bool],
        aliases: Sequence[dict[int, int]] | None = None,
    ):
        self.sources = [list(s) for s in sources]
        self.aliases = [dict(a) for a in aliases] if aliases else [{} for _ in self.sources]
        # (source, position of the next token) for every place the answer so far matches
        self.live = [
            (i, p)
            for i, (src, start_only) in enumerate(zip(self.sources, from_start, strict=True))
            for p in (range(1) if start_only else range(len(src)))
            if src
        ]
        self.length = 0

    def next_tokens(self) -> set[int]:
        out = {self.sources[i][p] for i, p in self.live if p < len(self.sources[i])}
        if self.length == 0:
            out |= {self.aliases[i][p] for i, p in self.live if p in self.aliases[i]}
        return out

    def advance(self, token: int) -> None:
        first = self.length == 0
        self.live = [
            (i, p + 1)
            for i, p in self.live
            if p < len(self.sources[i])
            and (self.sources[i][p] == token or (first and self.aliases[i].get(p) == token))
        ]
        self.length += 1

    @property
    def may_stop(self) -> bool:
        """An answer of at least one token may end anywhere."""
        return self.length > 0


SPACE_MARKS = ("\u0120", "\u2581")  # byte-level BPE's "Ġ" and SentencePiece's "▁": a leading space


def word_starts(tokenizer: Any, ids: Sequence[int]) -> dict[int, int]:
    """position -> the id of the same token without its leading space, for the tokens of
    `ids` that begin a word and have such a twin in the vocabulary."""
    out = {}
    for p, piece in enumerate(tokenizer.convert_ids_to_tokens(list(ids))):
        if isinstance(piece, str) and piece[:1] in SPACE_MARKS and len(piece) > 1:
            twin = tokenizer.convert_tokens_to_ids(piece[1:])
            if isinstance(twin, int) and twin >= 0 and twin != tokenizer.unk_token_id:
                out[p] = twin
    return out
