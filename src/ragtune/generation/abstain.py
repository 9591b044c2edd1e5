"""Calibrated abstention: refuse by the model's own probability of starting the refusal
sentence, not by whatever greedy decoding happens to emit first.

At the start of the answer an engine scores each prompt: the probability that the reply
begins with the refusal sentence's first `START_TOKENS` tokens (P(t1) * P(t2 | t1)). Two
tokens, not one, because the English sentence begins with "The", which also begins many
answers ("The Normans"); "The context" is the refusal's own. The last of them counts in
every spelling the model may write it in (`Start.ends`: " Context", " contexts"; "文" for
"文中"): a tuned model kept from " context" wrote "The Context does not contain the
answer." instead, so an exact-token block let through refusals no threshold had chosen
(every refusal of the demo's run, once). A model set on refusing can still word it
otherwise ("The story does not contain the answer."); eval counts that as the refusal it
is, so a threshold of 1 refuses nothing by the score, not nothing at all. The engine then
decodes the answer with that start suppressed, so every prompt yields a score and a real
answer. `decide` turns the pair into the reply at a threshold: the refusal sentence when
the score is above it, the answer otherwise. One decoding pass thus serves every
threshold, which is what calibration (`ragtune.eval.calibrate`) and the eval report's
trade-off curve need.

The threshold comes from `gen.refusal_threshold`: a number, `none` (plain greedy decoding,
no scoring), or `auto`: the one calibrated for the adapter (`CALIBRATION_FILE` in its
folder), or with no adapter for the model itself when it is a full fine-tune's folder, else
none. A calibrated `Threshold` may hold one number per language, chosen on that language's
held-out questions; `Threshold.for_question` picks the question's.

    gens = engine.generate(batch, refusals=["The context does not contain the answer."] * n)
    replies = [decide(g, 0.4, sentence) for g, sentence in zip(gens, sentences)]
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.errors import RagtuneError
from ragtune.generation.base import Generation
from ragtune.generation.extractive import capitalized, own_word
from ragtune.runs import tuned_dir
from ragtune.text import language

START_TOKENS = 2
"""Tokens of the refusal sentence that make its start: scored, and never emitted when the
threshold says answer."""
CALIBRATION_FILE = "ragtune_calibration.json"
"""Written by calibration into the adapter folder (or a full fine-tune's model folder), so
the threshold travels with the weights."""


BLOCK = "start-spellings"
"""How the start is scored and blocked, recorded with every calibrated answer (eval and
calibration identities): answers made under the earlier exact-token block differ."""


@dataclass(frozen=True)
class Start:
    """The scored and suppressed start of a refusal sentence."""

    ids: tuple[int, ...]
    """The sentence's own first `START_TOKENS` tokens."""
    ends: tuple[int, ...]
    """Every spelling of the last of them the model may write instead (its own first)."""

    def __post_init__(self) -> None:
        if not self.ids or not self.ends or self.ends[0] != self.ids[-1]:
            raise RagtuneError(f"a refusal start needs its own last token first in ends: {self}")


def refusal_start(
    ids: Sequence[int],
    pieces: Callable[[list[int]], list[str]] | None = None,
    encode: Callable[[list[str]], list[list[int]]] | None = None,
) -> Start:
    """The start of a refusal sentence from its token ids; with the tokenizer's `pieces` (each
    token's text, leading space kept) and `encode`, its last token in every spelling
    (`spellings`)."""
    if not ids:
        raise RagtuneError("the refusal sentence encodes to no tokens")
    own = tuple(ids[:START_TOKENS])
    if pieces is None or encode is None:
        return Start(own, own[-1:])
    return Start(own, spellings(own, pieces, encode))


def spellings(
    start: tuple[int, ...],
    pieces: Callable[[list[int]], list[str]],
    encode: Callable[[list[str]], list[list[int]]],
) -> tuple[int, ...]:
    """The tokens that may stand for `start`'s last token after the ones before it: the
    word in other cases and with a plural "s" (" Context", " CONTEXT", " contexts"), or, in
    Chinese, a shorter piece of it ("文" of "文中": "上下文没有答案" is the same refusal).
    A spelling counts only when it is one token that begins with the word (or, in Chinese,
    is a piece of it): "The Con"+"text" would otherwise block every answer "The Con..."."""
    texts = pieces(list(start))
    head, tail = "".join(texts[:-1]), texts[-1]
    core = tail.lstrip()
    lead = tail[: len(tail) - len(core)]
    if not core or "\ufffd" in core:
        return start[-1:]
    chinese = all(own_word(c) for c in core)
    # The plural only for a word long enough that its "s" form is no other word's piece
    # (" ins" of "Not in": "Not ins|ured").
    plural = ("", "s") if core.isalpha() and len(core) >= 4 else ("",)
    forms = (
        [core[:i] for i in range(1, len(core))]
        if chinese
        else [
            f + s
            for f in dict.fromkeys([core.lower(), core.upper(), capitalized(core)])
            for s in plural
        ]
    )
    if not forms:
        return start[-1:]
    n, key, found = len(start) - 1, core.casefold(), [start[-1]]
    for ids in encode([head + lead + f for f in forms]):
        if len(ids) <= n or tuple(ids[:n]) != start[:-1] or ids[n] in found:
            continue
        text = pieces([ids[n]])[0].strip().casefold()
        if text.startswith(key) or (chinese and text and key.startswith(text)):
            found.append(ids[n])
    return tuple(found)


def blocked_next(generated: Sequence[int], start: Start) -> tuple[int, ...]:
    """The tokens that may not come next, so that a reply never begins with `start`: every
    spelling of its last token, once the reply so far is the rest of it; none otherwise."""
    k = len(start.ids) - 1
    if len(generated) == k and tuple(generated) == start.ids[:k]:
        return start.ends
    return ()


def start_score(start: Start, logprob: Callable[[int, int], float]) -> float:
    """P(the reply begins with `start`): `logprob(j, token)` is the log-probability of
    `token` at the start's j-th position, given the start's tokens before it. The last
    position counts every spelling."""
    k = len(start.ids) - 1
    p = math.exp(sum(logprob(j, t) for j, t in enumerate(start.ids[:k])))
    return p * sum(math.exp(logprob(k, t)) for t in start.ends)


@dataclass(frozen=True)
class Threshold:
    """A refusal threshold: `value` for every question, unless `by_lang` holds one for the
    question's language (`text.language`). Calibration chooses one per language that its
    held-out split has answerable and unanswerable questions of: the score means something
    else in each (a model can refuse well in Chinese and blindly in English)."""

    value: float
    by_lang: tuple[tuple[str, float], ...] = ()
    """(language, threshold) pairs, sorted: a tuple so that the threshold stays hashable."""

    @classmethod
    def of(cls, value: float, by_lang: Mapping[str, float] | None = None) -> Threshold:
        return cls(float(value), tuple(sorted((k, float(v)) for k, v in (by_lang or {}).items())))

    def at(self, lang: str) -> float:
        return dict(self.by_lang).get(lang, self.value)

    def for_question(self, question: str) -> float:
        # No per-language thresholds (the common case): no language detection per answer.
        return self.at(language(question)) if self.by_lang else self.value

    def identity(self) -> str:
        """What an eval's identity records: the plain number when there are no per-language
        thresholds, as before they existed, so earlier evals still match."""
        return repr(self.value) if not self.by_lang else repr((self.value, self.by_lang))


def at_question(threshold: Threshold | None, question: str) -> float | None:
    """The number that decides `question`'s reply (None: no threshold, greedy decoding)."""
    return None if threshold is None else threshold.for_question(question)


def decide(gen: Generation, threshold: float | None, sentence: str) -> Generation:
    """The reply at `threshold`: the refusal sentence when the refusal score is above it (the
    suppressed answer kept in `unrefused`), else the answer. Unscored generations (greedy, or
    an engine without logits) pass through."""
    if threshold is None or gen.refusal_score is None:
        return gen
    if gen.refusal_score > threshold:
        return dataclasses.replace(gen, text=sentence, unrefused=gen.text)
    return dataclasses.replace(gen, unrefused=gen.text)


def calibration_path(tuned: str | Path) -> Path:
    """Where the threshold of a run's adapter or full fine-tune (`runs.tuned_dir`) is kept."""
    return Path(tuned_dir(str(tuned))) / CALIBRATION_FILE


def read_calibration(tuned: str | Path | None) -> dict[str, Any] | None:
    """The calibration saved with an adapter or a full fine-tune (a folder), or None: also
    for a hub id, a .gguf file or a folder that training did not write."""
    if not tuned or str(tuned).endswith(".gguf"):
        return None
    try:
        path = calibration_path(tuned)
    except RagtuneError:
        return None
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        saved_threshold(record)  # the number, and each language's if there are any
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RagtuneError(f"{path}: not a ragtune calibration ({e}); recalibrate") from None
    return dict(record)


def saved_threshold(record: dict[str, Any] | None) -> Threshold | None:
    """The threshold a calibration record holds (with its per-language ones), or None."""
    if not record:
        return None
    return Threshold.of(record["threshold"], record.get("thresholds_by_lang"))


def resolve_threshold(
    value: float | str | None, adapter: str | None, model: str | None = None
) -> Threshold | None:
    """The threshold `gen.refusal_threshold` asks for: a number in [0, 1] (for every
    language); None for "none"; for "auto", the adapter's calibrated one (without an adapter,
    the model's: a full fine-tune's folder), or None when it has none."""
    if value is None or value == "none":
        return None
    if value == "auto":
        return saved_threshold(read_calibration(adapter or model))
    threshold = float(value)
    if not 0 <= threshold <= 1:
        raise RagtuneError(f"gen.refusal_threshold must be in [0, 1], auto or none, got {value}")
    return Threshold(threshold)
