"""Calibrated abstention: the refusal score is the model's own probability of starting the
refusal sentence, the threshold decides, and the answer never starts with the refusal."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from ragtune.eval.answer import Question, answer_all
from ragtune.generation import abstain
from ragtune.generation.base import Generation
from ragtune.generation.local import LocalGenerator
from ragtune.models import load_model
from ragtune.prompt.grounded import PromptConfig, build_messages, render_prompt

CFG = PromptConfig()
QUESTIONS = [
    Question("a", "Where is the Eiffel Tower?", ["The Eiffel Tower is in Paris."]),
    Question("b", "Who founded Marlowe Station?", ["Marlowe Station was founded by Ada Quill."]),
    Question("c", "When?", ["It was built in 1889 by Gustave Eiffel, who lived in Paris."]),
]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> LocalGenerator:
    model, tok = load_model(str(tiny_model_dir))
    return LocalGenerator(model, tok, max_new_tokens=5, batch_size=3, name="tiny")


def _by_hand(engine: LocalGenerator, q: Question, sentence: str) -> float:
    """softmax probabilities of the refusal's start, one full forward pass, no cache."""
    tok, model = engine.tokenizer, engine.model
    prompt = tok(render_prompt(tok, build_messages(q.question, q.passages, CFG)))["input_ids"]
    start = engine.refusal_start(sentence)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + list(start.ids[:-1])])).logits[0]
    probs = torch.softmax(logits[len(prompt) - 1 :].float(), dim=-1)
    p = 1.0
    for j, t in enumerate(start.ids[:-1]):
        p *= float(probs[j, t])
    return p * sum(float(probs[len(start.ids) - 1, t]) for t in start.ends)


OTHER_REFUSAL = "The answer is not in the context."


@pytest.mark.parametrize("tokens", [1, 2])
@pytest.mark.parametrize("cached", [True, False])  # per-row prefill, or the padded fallback
@pytest.mark.parametrize("sentence", [CFG.refusal_en, OTHER_REFUSAL])  # 1 and 2 spellings
def test_score_is_the_softmax_probability_of_the_refusal_start(
    engine: LocalGenerator,
    monkeypatch: pytest.MonkeyPatch,
    tokens: int,
    cached: bool,
    sentence: str,
) -> None:
    monkeypatch.setattr(abstain, "START_TOKENS", tokens)
    if not cached:
        prefill = engine._prefill
        monkeypatch.setattr(engine, "_prefill", lambda rows: (*prefill(rows)[:2], None))
    batch = [build_messages(q.question, q.passages, CFG) for q in QUESTIONS]
    gens = engine.generate(batch, refusals=[sentence] * len(batch))
    for q, g in zip(QUESTIONS, gens, strict=True):
        assert g.refusal_score == pytest.approx(_by_hand(engine, q, sentence), rel=1e-4)
    # the probability of the first token alone (in its spellings), by hand, when the start
    # is one token
    if tokens == 1:
        tok = engine.tokenizer
        first = tok(sentence, add_special_tokens=False)["input_ids"][0]
        ends = engine.refusal_start(sentence).ends
        assert ends[0] == first
        ids = tok(render_prompt(tok, batch[0]))["input_ids"]
        with torch.no_grad():
            logits = engine.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
        assert gens[0].refusal_score == pytest.approx(
            float(torch.softmax(logits, -1)[list(ends)].sum()), rel=1e-4
        )


def test_without_refusals_nothing_is_scored_or_suppressed(engine: LocalGenerator) -> None:
    batch = [build_messages(q.question, q.passages, CFG) for q in QUESTIONS]
    plain = engine.generate(batch)
    assert all(g.refusal_score is None and g.unrefused is None for g in plain)
    # and greedy stays the model's own greedy: the same as one prompt at a time
    alone = [engine.generate([m])[0].text for m in batch]
    assert [g.text for g in plain] == alone


def test_suppression_never_emits_the_refusal_start(
    engine: LocalGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Make the "refusal start" exactly the tokens the model emits greedily, so only
    # suppression can keep it out (the tiny model's tokens need not decode to clean text).
    batch = [build_messages(q.question, q.passages, CFG) for q in QUESTIONS]
    emitted: list[list[list[int]]] = []
    generate = engine.model.generate

    def spy(**kw: Any) -> Any:
        seqs = generate(**kw)
        emitted.append(seqs[:, kw["input_ids"].shape[1] :].tolist())
        return seqs

    monkeypatch.setattr(engine.model, "generate", spy)
    for tokens in (1, 2):
        monkeypatch.setattr(abstain, "START_TOKENS", tokens)
        for messages in batch:
            emitted.clear()
            engine.generate([messages])
            start = tuple(emitted[0][0][:tokens])
            # the greedy token, and the one greedy takes once that is blocked: both spellings
            # of the start's end are kept out
            blocked = abstain.Start(start, start[-1:])
            monkeypatch.setattr(engine, "refusal_start", lambda s, b=blocked: b)
            engine.generate([messages], refusals=["(patched)"])
            second = emitted[1][0][tokens - 1]
            both = abstain.Start(start, (start[-1], second))
            monkeypatch.setattr(engine, "refusal_start", lambda s, b=both: b)
            engine.generate([messages], refusals=["(patched)"])
            assert tuple(emitted[2][0][: tokens - 1]) != start[:-1] or (
                emitted[2][0][tokens - 1] not in both.ends
            )
            assert len(emitted[2][0]) >= tokens
            monkeypatch.delattr(engine, "refusal_start")


def test_threshold_zero_refuses_everything_and_one_nothing(engine: LocalGenerator) -> None:
    refuse_all = answer_all(engine, QUESTIONS, CFG, threshold=abstain.Threshold(0.0))
    assert [g.text for g in refuse_all] == [CFG.refusal_en] * len(QUESTIONS)
    assert all(g.unrefused is not None and g.refusal_score is not None for g in refuse_all)
    refuse_none = answer_all(engine, QUESTIONS, CFG, threshold=abstain.Threshold(1.0))
    assert all(g.text != CFG.refusal_en for g in refuse_none)
    # the same suppressed answers either way: one pass serves every threshold
    assert [g.unrefused for g in refuse_all] == [g.text for g in refuse_none]


def test_each_question_is_decided_at_its_languages_threshold(engine: LocalGenerator) -> None:
    """A per-language threshold: Chinese questions at theirs, the rest at the pooled one."""
    zh = Question("z", "塔在哪里？", ["塔在巴黎。"])
    mixed = [*QUESTIONS, zh]
    per_lang = abstain.Threshold.of(1.0, {"zh": 0.0})
    gens = answer_all(engine, mixed, CFG, threshold=per_lang)
    assert [g.text for g in gens[:-1]] == [
        g.text for g in answer_all(engine, QUESTIONS, CFG, threshold=abstain.Threshold(1.0))
    ]
    assert all(g.text != CFG.refusal_en for g in gens[:-1])
    assert gens[-1].text == CFG.refusal_zh  # refused at 0.0, in its own language
    assert per_lang.at("zh") == 0.0 and per_lang.at("en") == 1.0 and per_lang.at("fr") == 1.0
    assert per_lang.for_question("塔在哪里？") == 0.0
    # the identity of a plain threshold is the number, as before per-language ones existed
    assert abstain.Threshold(0.25).identity() == repr(0.25)
    assert "zh" in per_lang.identity()


def test_decide_and_threshold_settings(tmp_path: Path, tiny_adapter_dir: Path) -> None:
    g = Generation("Paris", 1, 0.1, 1, refusal_score=0.3)
    assert abstain.decide(g, 0.2, "No.").text == "No."
    assert abstain.decide(g, 0.3, "No.").text == "Paris"  # refuse only strictly above
    assert abstain.decide(g, None, "No.") is g
    unscored = Generation("Paris", 1, 0.1, 1)
    assert abstain.decide(unscored, 0.0, "No.") is unscored  # an API model: greedy decides
    assert abstain.resolve_threshold("none", str(tiny_adapter_dir)) is None
    assert abstain.resolve_threshold(0.25, None) == abstain.Threshold(0.25)
    assert abstain.resolve_threshold("auto", str(tiny_adapter_dir)) is None  # not calibrated
    abstain.calibration_path(tiny_adapter_dir).write_text('{"threshold": 0.4}')
    try:
        assert abstain.resolve_threshold("auto", str(tiny_adapter_dir)) == abstain.Threshold(0.4)
        abstain.calibration_path(tiny_adapter_dir).write_text(
            '{"threshold": 0.4, "thresholds_by_lang": {"zh": 0.9}}'
        )
        both = abstain.resolve_threshold("auto", str(tiny_adapter_dir))
        assert both == abstain.Threshold(0.4, (("zh", 0.9),))
        abstain.calibration_path(tiny_adapter_dir).write_text(
            '{"threshold": 0.4, "thresholds_by_lang": 3}'
        )
        with pytest.raises(Exception, match="not a ragtune calibration"):
            abstain.resolve_threshold("auto", str(tiny_adapter_dir))
        abstain.calibration_path(tiny_adapter_dir).write_text('{"thresh": 1}')
        with pytest.raises(Exception, match="not a ragtune calibration"):
            abstain.resolve_threshold("auto", str(tiny_adapter_dir))
    finally:
        abstain.calibration_path(tiny_adapter_dir).unlink()
    with pytest.raises(Exception, match=r"\[0, 1\]"):
        abstain.resolve_threshold(1.5, None)


def test_a_threshold_chosen_on_the_earlier_score_is_refused(tiny_adapter_dir: Path) -> None:
    """A calibration made before the score counted the start's spellings chose its number on
    lower scores: loading it says to recalibrate instead of refusing more than it meant."""
    from ragtune.errors import RagtuneError
    from ragtune.generation.load import GenerateConfig, refusal_threshold

    cfg = GenerateConfig(model="tiny", adapter=str(tiny_adapter_dir))
    path = abstain.calibration_path(tiny_adapter_dir)
    try:
        path.write_text('{"threshold": 0.4, "score": "start", "answered": {"dtype": null}}')
        with pytest.raises(RagtuneError, match="earlier P\\(refusal start\\).*recalibrate"):
            refusal_threshold(cfg)
        current = {"dtype": None, "refusal_block": abstain.BLOCK}
        path.write_text(json.dumps({"threshold": 0.4, "score": "start", "answered": current}))
        assert refusal_threshold(cfg) == abstain.Threshold(0.4)
        # a record that names no answers (written by hand) is the number it holds
        path.write_text('{"threshold": 0.4}')
        assert refusal_threshold(cfg) == abstain.Threshold(0.4)
    finally:
        path.unlink()


def test_blocked_next_follows_the_start() -> None:
    one, two = abstain.Start((7,), (7, 9)), abstain.Start((7, 8), (8, 5))
    assert abstain.blocked_next([], one) == (7, 9)
    assert abstain.blocked_next([], two) == ()
    assert abstain.blocked_next([7], two) == (8, 5)
    assert abstain.blocked_next([6], two) == ()
    assert abstain.blocked_next([7, 8], two) == ()


# A toy tokenizer: longest match over a vocabulary, so each test says which tokens exist.
VOCAB = [
    "The",
    " context",
    " Context",
    " CONTEXT",
    " contexts",
    " Con",
    "text",
    "s",
    " does",
    "上下",
    "文中",
    "文",
    "上",
    "下",
    " ",
    "c",
    "o",
    "n",
    "t",
    "e",
    "x",
    "T",
    "h",
    "S",
    " co",
    " cos",
    "C",
    "O",
]


def _encode(texts: list[str]) -> list[list[int]]:
    out = []
    for text in texts:
        ids, at = [], 0
        while at < len(text):
            best = max((v for v in VOCAB if text.startswith(v, at)), key=len)
            ids.append(VOCAB.index(best))
            at += len(best)
        out.append(ids)
    return out


def _pieces(ids: list[int]) -> list[str]:
    return [VOCAB[i] for i in ids]


def test_the_start_counts_every_spelling_of_its_last_token() -> None:
    start = abstain.refusal_start(_encode(["The context does"])[0], _pieces, _encode)
    assert start.ids == (0, 1)
    assert start.ends[0] == 1  # the sentence's own token first
    assert {VOCAB[t] for t in start.ends} == {" context", " Context", " CONTEXT", " contexts"}
    # Without " Context" in the vocabulary "The Context" is "The"+" Con"+"text": " Con" is
    # not the word, and blocking it would block "The Congress"
    VOCAB.remove(" Context")
    try:
        split = abstain.refusal_start(_encode(["The context does"])[0], _pieces, _encode)
        assert _encode(["The Context"])[0][1] == VOCAB.index(" Con")
        assert {VOCAB[t] for t in split.ends} == {" context", " CONTEXT", " contexts"}
    finally:
        VOCAB.insert(2, " Context")
    # a short word takes no plural: " ins" is a piece of " insured" as much as of " in"
    short = abstain.refusal_start(_encode(["The co"])[0], _pieces, _encode)
    assert short.ends == (VOCAB.index(" co"),)
    assert abstain.start_score(abstain.Start((3, 4), (4, 5)), lambda j, t: -float(t)) == (
        pytest.approx(math.exp(-3) * (math.exp(-4) + math.exp(-5)))
    )
    with pytest.raises(Exception, match="own last token first"):
        abstain.Start((1, 2), (3,))
    # Chinese: a shorter piece of the word is the same refusal ("上下文没有答案")
    zh = abstain.refusal_start(_encode(["上下文中"])[0], _pieces, _encode)
    assert zh.ids == (9, 10) and {VOCAB[t] for t in zh.ends} == {"文中", "文"}
    # without a tokenizer to ask: the sentence's own tokens only
    assert abstain.refusal_start([0, 1, 8]) == abstain.Start((0, 1), (1,))
    with pytest.raises(Exception, match="no tokens"):
        abstain.refusal_start([])


def test_the_engine_asks_its_tokenizer_for_the_spellings(engine: LocalGenerator) -> None:
    """The tiny vocabulary holds " answer" and " Answer": a refusal beginning "The answer"
    has both as its start's end (the score over both is checked by hand above)."""
    tok = engine.tokenizer
    start = engine.refusal_start(OTHER_REFUSAL)
    assert start.ids == tuple(tok(OTHER_REFUSAL, add_special_tokens=False)["input_ids"][:2])
    assert [tok.decode([t]) for t in start.ends] == [" answer", " Answer"]


def test_scoring_leaves_the_cache_as_it_was(
    engine: LocalGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With suppression switched off, a scored run must decode exactly what greedy does: the
    # scoring pass appends to the prefilled cache and must crop it back.
    from ragtune.generation import local

    monkeypatch.setattr(local, "_suppress", lambda *a: _NoOp())
    batch = [build_messages(q.question, q.passages, CFG) for q in QUESTIONS]
    greedy = engine.generate(batch)
    scored = engine.generate(batch, refusals=[CFG.refusal_en] * len(batch))
    assert [g.text for g in scored] == [g.text for g in greedy]
    assert all(g.refusal_score is not None for g in scored)


class _NoOp:
    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return scores
