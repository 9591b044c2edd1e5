"""Extractive decoding: the answer is a contiguous piece of one of the given texts.

At each step only tokens that extend the answer so far into a longer span of some source's
token sequence are allowed (and the end of the answer, once it has a token). Sources are the
passages, each tokenized on its own, and the refusal sentence, which may only be copied from
its start. Token spans decode to substrings of the text (byte-level BPE), so the answer can
hold no word the passages do not (but for its first letter's case). With `words`, a passage
span also begins and ends between words only: without them a model kept from its preferred
first token ("The") took a piece of a word instead ("ans" of " Normans") and ran on along
another sentence. Whether it helps is measured, not assumed: `gen.extractive` is off by
default (benchmarks/RESULTS.md).

    allowed = copy_constraint([passage_ids, refusal_ids], [passage_pieces, refusal_pieces],
                              encode)   # or SpanConstraint(...) for any other sources
    allowed.next_tokens()        # first tokens of any span
    allowed.advance(token_id)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Words:
    """Where a source's words lie, by token position."""

    starts: frozenset[int]
    """Positions an answer may begin at: a word's first token (never a blank one)."""
    ends: frozenset[int]
    """Positions an answer may stop before: a word ends there (the source's end always does)."""


class SpanConstraint:
    """Which tokens may come next so that the tokens so far stay a span of one source.

    `aliases` (per source, position -> spellings, each token ids) name other spellings that
    may stand for the source's token at that position when it begins the answer: in running
    text a word is a token with its leading space (" the", " Puritan"), while an answer
    begins without one, capitalized, often as several tokens ("The"; "Pur", "itan"); the
    answer then goes on as the source does.

    `words` (per source; None: any position) say where its words begin and end: an answer
    may start only at a word's start, and stop only before a word's end."""

    def __init__(
        self,
        sources: Sequence[Sequence[int]],
        from_start: Sequence[bool],
        aliases: Sequence[dict[int, list[tuple[int, ...]]]] | None = None,
        words: Sequence[Words | None] | None = None,
    ):
        self.sources = [list(s) for s in sources]
        self.aliases = (
            [{p: [t for t in twins if t] for p, twins in a.items()} for a in aliases]
            if aliases
            else [{} for _ in self.sources]
        )
        self.words = list(words) if words else [None for _ in self.sources]
        # (source, position of the next token, the rest of an alias being spelled) for every
        # place the answer so far matches
        self.live: list[tuple[int, int, tuple[int, ...]]] = [
            (i, p, ())
            for i, (src, start_only) in enumerate(zip(self.sources, from_start, strict=True))
            for p in (range(1) if start_only else range(len(src)))
            if src and self._word_starts(i, p)
        ]
        self.length = 0

    def _word_starts(self, source: int, position: int) -> bool:
        words = self.words[source]
        return words is None or position in words.starts

    def _word_ends(self, source: int, position: int) -> bool:
        words = self.words[source]
        return words is None or position in words.ends or position >= len(self.sources[source])

    def next_tokens(self) -> set[int]:
        out = set()
        for i, p, rest in self.live:
            if rest:
                out.add(rest[0])
            elif p < len(self.sources[i]):
                out.add(self.sources[i][p])
                if self.length == 0:
                    out |= {twin[0] for twin in self.aliases[i].get(p, [])}
        return out

    def advance(self, token: int) -> None:
        first = self.length == 0
        live: list[tuple[int, int, tuple[int, ...]]] = []
        for i, p, rest in self.live:
            if rest:
                if rest[0] == token:  # spelled out: the answer goes on after the source's token
                    live.append((i, p + 1, ()) if len(rest) == 1 else (i, p, rest[1:]))
                continue
            if p < len(self.sources[i]) and self.sources[i][p] == token:
                live.append((i, p + 1, ()))
            for twin in self.aliases[i].get(p, []) if first else []:
                if twin[0] == token:
                    live.append((i, p + 1, ()) if len(twin) == 1 else (i, p, twin[1:]))
        self.live = list(dict.fromkeys(live))
        self.length += 1

    @property
    def may_stop(self) -> bool:
        """An answer of at least one token may end where a word of its source ends (not in
        the middle of spelling an alias)."""
        return self.length > 0 and any(
            not rest and self._word_ends(i, p) for i, p, rest in self.live
        )


SPACE_MARKS = ("\u0120", "\u2581")  # byte-level BPE's "Ġ" and SentencePiece's "▁": a leading space


def words_of(pieces: Sequence[str]) -> Words:
    """Where words begin and end, from each token's own text. A word boundary lies between
    any two tokens but inside a word written with spaces: two letters or digits ("Par|is",
    "19|62"), a digit group's separator ("1|,000"), and the bytes of one character that
    tokens share (each decodes to U+FFFD on its own: " \ufffd|\ufffd|al" is " Ħal").
    Chinese characters and kana are words of their own: CMRC spans begin anywhere. An
    answer begins at a boundary, but never with a token that is only blank (it would
    otherwise be an answer of nothing but a space)."""
    text = "".join(pieces)
    ends, at = {0}, 0
    for p in range(1, len(pieces)):
        at += len(pieces[p - 1])
        if not _inside_word(text, at):
            ends.add(p)
    starts = {p for p in ends if p < len(pieces) and pieces[p].strip()}
    return Words(frozenset(starts), frozenset(ends))


def _inside_word(text: str, at: int) -> bool:
    """Whether text[at - 1] and text[at] belong to one word."""
    a, b = text[at - 1 : at], text[at : at + 1]
    if _wordlike(a) and _wordlike(b):
        return True
    before2, after2 = text[at - 2 : at - 1], text[at + 1 : at + 2]
    # "1,000" and "3.14": a separator between two digits
    return (a.isdigit() and b in ",." and after2.isdigit()) or (
        a in ",." and b.isdigit() and before2.isdigit()
    )


# Chinese and Japanese write words without spaces: each of these characters is a word.
_OWN_WORD = ((0x2E80, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3FFFF))


def own_word(char: str) -> bool:
    """Whether `char` is a word of its own: a Chinese character or kana."""
    return any(lo <= ord(char) <= hi for lo, hi in _OWN_WORD)


def _wordlike(char: str) -> bool:
    """A letter, digit or combining mark of a script that separates words with spaces, or a
    piece of a character split across tokens (U+FFFD), which belongs to its neighbours."""
    if not char:
        return False
    if char == "\ufffd":
        return True
    if own_word(char):
        return False
    return char.isalnum() or unicodedata.category(char)[0] == "M"


def token_pieces(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Each token's text on its own (a piece of a multi-byte character decodes to U+FFFD),
    with its leading space: SentencePiece tokenizers drop it when a token is decoded alone."""
    out = []
    for i, raw in zip(ids, tokenizer.convert_ids_to_tokens(list(ids)), strict=True):
        text = tokenizer.decode([i])
        if isinstance(raw, str) and raw[:1] in SPACE_MARKS and not text.startswith(" "):
            text = " " + text
        out.append(text)
    return out


def word_starts(
    ids: Sequence[int], pieces: Sequence[str], encode: Callable[[list[str]], list[list[int]]]
) -> dict[int, list[tuple[int, ...]]]:
    """position -> the tokens `encode` makes of a word-starting piece without its leading
    space, as written and capitalized (" the" -> "the", "The"; " Puritan" -> "Pur", "itan"),
    where they differ from the token itself. None for a piece of a split character (its
    U+FFFD would encode as that character itself). A tokenizer that puts a space back
    (SentencePiece's "▁In") gives a spelling with it: harmless, answers are stripped."""
    candidates = [
        (p, spelling)
        for p, piece in enumerate(pieces)
        if piece[:1] == " " and piece[1:].strip() and "\ufffd" not in piece
        for spelling in dict.fromkeys((piece[1:], capitalized(piece[1:])))
    ]
    twins = encode([spelling for _, spelling in candidates]) if candidates else []
    out: dict[int, list[tuple[int, ...]]] = {}
    for (p, _), twin in zip(candidates, twins, strict=True):
        if twin and twin != [ids[p]]:
            out.setdefault(p, []).append(tuple(twin))
    return out


def capitalized(word: str) -> str:
    """The word with its first letter upper-cased, where that is one letter ("the" -> "The";
    "iPhone" and "ßtraße" are left as they are)."""
    first = word[:1]
    if first.islower() and len(first.upper()) == 1 and not word[1:2].isupper():
        return first.upper() + word[1:]
    return word


def copy_constraint(
    sources: Sequence[Sequence[int]],
    pieces: Sequence[Sequence[str]],
    encode: Callable[[list[str]], list[list[int]]],
) -> SpanConstraint:
    """Answers copied from whole words of the passages (all sources but the last), or from
    the start of the last (the refusal sentence), copied whole; an empty last source: no
    refusal may be copied. `pieces` are each source token's own text, `encode` tokenizes
    texts without special tokens."""
    words: list[Words | None] = [words_of(p) for p in pieces[:-1]]
    whole = Words(frozenset({0}), frozenset())  # the refusal may stop at its end only
    return SpanConstraint(
        sources,
        [False] * (len(sources) - 1) + [True],
        [word_starts(s, p, encode) for s, p in zip(sources, pieces, strict=True)],
        words + [whole],
    )
