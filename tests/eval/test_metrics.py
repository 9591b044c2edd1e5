"""Metrics against values computed by hand, in English and Chinese."""

from __future__ import annotations

import math

import pytest

from ragtune.eval import metrics
from ragtune.eval.metrics import (
    aggregate,
    evaluate,
    exact_match,
    f1,
    lcs_length,
    rouge_l,
    score_example,
    semantic_scores,
)
from ragtune.example import Example
from ragtune.generation.base import Generation
from ragtune.text import metric_tokens

REFUSAL = "The context does not contain the answer."
CURIE = "Marie Curie won the Nobel Prize in Physics in 1903."


def ex(
    answers: list[str],
    context: str = CURIE,
    id: str = "x",
    question: str = "When did Curie win?",
    kind: str = "",
) -> Example:
    """An example that is answerable exactly when it has gold answers."""
    return Example(id, question, [context], answers, answerable=bool(answers), kind=kind)


# --- tokenisation --------------------------------------------------------------------------


def test_english_tokens_follow_squad() -> None:
    # lowercase, ASCII punctuation gone, articles dropped
    assert metric_tokens("The Eiffel Tower, in Paris!", "en") == ["eiffel", "tower", "in", "paris"]
    assert metric_tokens("An apple a day", "en") == ["apple", "day"]


def test_chinese_tokens_per_character_with_ascii_runs() -> None:
    assert metric_tokens("2018年世界杯，在“俄罗斯”举行。GPU!", "zh") == [
        "2018", "年", "世", "界", "杯", "在", "俄", "罗", "斯", "举", "行", "gpu",
    ]  # fmt: skip


def test_language_comes_from_question_or_gold() -> None:
    assert score_example(ex(["1903"]), "1903")["lang"] == "en"
    assert score_example(ex(["北京"], question="What is the capital?"), "北京")["lang"] == "zh"
    assert score_example(ex(["1903年"], question="居里夫人哪年获奖？"), "1903年")["lang"] == "zh"


# --- EM / F1 / ROUGE-L ---------------------------------------------------------------------


def test_english_em_and_f1_by_hand() -> None:
    # pred [eiffel, tower] vs gold [eiffel, tower, in, paris]: P = 2/2, R = 2/4, F1 = 2/3
    assert f1("the Eiffel Tower", ["Eiffel Tower in Paris"], "en") == pytest.approx(2 / 3)
    assert exact_match("the Eiffel Tower", ["Eiffel Tower in Paris"], "en") == 0.0
    assert exact_match("The Eiffel Tower.", ["Eiffel Tower"], "en") == 1.0
    # max over golds: [paris] vs [london] -> 0; vs [paris, france] -> P 1, R 1/2, F1 2/3
    assert f1("Paris", ["London", "Paris, France"], "en") == pytest.approx(2 / 3)
    assert f1("Berlin", ["Paris"], "en") == 0.0


def test_chinese_em_and_f1_by_hand() -> None:
    # [北, 京, 大, 学] vs [北, 京]: P = 2/4, R = 2/2, F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert f1("北京大学", ["北京"], "zh") == pytest.approx(2 / 3)
    assert exact_match("北京大学", ["北京"], "zh") == 0.0
    assert exact_match("北京。", ["北京"], "zh") == 1.0


def test_lcs_length_textbook_case() -> None:
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert lcs_length([], ["a"]) == 0


def test_rouge_l_rewards_order_where_f1_does_not() -> None:
    # same bag of tokens, reversed order: F1 = 1; LCS = 1 of 3, so P = R = 1/3
    assert f1("cat sat mat", ["mat sat cat"], "en") == 1.0
    assert rouge_l("cat sat mat", ["mat sat cat"], "en") == pytest.approx(1 / 3)
    # [cat, sat, on, mat] vs [cat, on, mat, sat]: LCS cat-on-mat = 3, P = R = 3/4
    assert rouge_l("the cat sat on the mat", ["a cat on a mat sat"], "en") == pytest.approx(0.75)
    # [大, 学, 北, 京] vs [北, 京, 大, 学]: LCS 2, P = R = 1/2
    assert rouge_l("大学北京", ["北京大学"], "zh") == pytest.approx(0.5)


# --- unanswerable, in-context, hallucination -------------------------------------------------


def test_unanswerable_scores_one_only_for_a_refusal() -> None:
    unanswerable = ex([])
    row = score_example(unanswerable, REFUSAL)
    assert (row["em"], row["f1"], row["rouge_l"]) == (1.0, 1.0, 1.0)
    assert row["refused"] and not row["hallucinated"]
    # an answer copied from the context is still a hallucination when the question is unanswerable
    row = score_example(unanswerable, "1903")
    assert (row["em"], row["f1"], row["rouge_l"]) == (0.0, 0.0, 0.0)
    assert row["hallucinated"] and row["in_context"]


def test_in_context_and_hallucination_english() -> None:
    e = ex(["1903"])
    row = score_example(e, "1903")
    assert row["in_context"] and row["support"] == 1.0 and not row["hallucinated"]
    assert score_example(e, "Physics in 1903")["in_context"]  # contiguous span of the context
    # [albert, einstein, in, 1921]: only "in" occurs in the context -> support 1/4 < 1/2
    row = score_example(e, "Albert Einstein in 1921")
    assert row["support"] == 0.25 and row["hallucinated"] and not row["in_context"]
    # [nobel, chemistry]: support exactly 1/2 is not "fewer than half"
    row = score_example(e, "Nobel chemistry")
    assert row["support"] == 0.5 and not row["hallucinated"] and not row["in_context"]
    # a refusal to an answerable question is a false refusal, not a hallucination
    row = score_example(e, REFUSAL)
    assert row["refused"] and not row["hallucinated"] and not row["in_context"]
    # an empty answer asserts nothing
    row = score_example(e, "")
    assert row["support"] is None and not row["hallucinated"] and not row["refused"]


def test_in_context_matches_whole_tokens_only() -> None:
    assert not score_example(ex(["x"], context="Concatenate the strings."), "cat")["in_context"]


def test_punctuation_inside_the_context_separates_words() -> None:
    """Answers copied verbatim from SQuAD passages that SQuAD's tokens (punctuation deleted)
    call out of context: a possessive, a hyphenated prefix, an em dash between words."""
    context = (
        "Some Yuan documents such as Wang Zhen's Nong Shu were printed. The society became "
        "more diverse in the post-World War II period. It has eleven academic units—ten "
        "faculties and the Radcliffe Institute—with campuses in Boston."
    )
    e = ex(["x"], context=context)
    for answer in ("Wang Zhen", "World War II", "ten faculties and the Radcliffe Institute"):
        row = score_example(e, answer)
        assert row["in_context"] and row["support"] == 1.0, answer
    # Still whole words, in order, and nothing the passage does not say.
    assert not score_example(e, "Zhen Wang")["in_context"]
    assert not score_example(e, "Zhen Nong Shu")["in_context"]  # "s" stands between
    assert not score_example(e, "War II period ten")["in_context"]
    # An article the passage lacks does not take an answer out of it (as before).
    assert score_example(e, "the Nong Shu")["in_context"]
    # Nor does punctuation the answer dropped: SQuAD's tokens still count.
    other = ex(["x"], context="It cost 1,000 dollars in the U.S. that year.")
    for answer in ("1000 dollars", "US", "1,000 dollars", "U.S."):
        row = score_example(other, answer)
        assert row["in_context"] and row["support"] == 1.0, answer


def test_in_context_and_hallucination_chinese() -> None:
    e = ex(
        ["1903年"], context="居里夫人于1903年获得诺贝尔物理学奖。", question="居里夫人哪年获奖？"
    )
    assert score_example(e, "1903年")["in_context"]
    row = score_example(e, "1911年")  # [1911, 年]: 年 occurs -> support 1/2, not hallucinated
    assert row["support"] == 0.5 and not row["hallucinated"] and not row["in_context"]
    row = score_example(e, "爱因斯坦")  # no character occurs in the context
    assert row["support"] == 0.0 and row["hallucinated"]
    assert score_example(ex([], context="北京", question="谁？"), "上下文中没有答案。")["em"] == 1.0


# --- aggregate ---------------------------------------------------------------------------------


def small_set() -> tuple[list[Example], list[str]]:
    france = "The capital of France is Paris."
    examples = [
        ex(["Paris"], france, id="A"),  # exact, in context
        ex(["1903"], CURIE, id="B"),  # false refusal
        ex([], france, id="C"),  # correct refusal
        ex([], france, id="D"),  # answers an unanswerable question: hallucination
        ex(["Lyon"], "The capital of France is Lyon.", id="E", kind="counterfactual"),
        ex(["北京"], "中国的首都是北京。", id="F", question="中国的首都是哪里？"),
    ]
    predictions = ["Paris", REFUSAL, REFUSAL, "Berlin", "Paris", "北京大学"]
    return examples, predictions


def test_aggregate_rates_by_hand() -> None:
    examples, predictions = small_set()
    # Two calls of 3 answers: 3.0 s (1.2 s of it on prompts of 100 tokens each) and 6.0 s
    # (1.8 s on prompts of 200 tokens each).
    timings = [Generation("", n, 3.0, 3, 100, 1.2) for n in (2, 10, 10)] + [
        Generation("", n, 6.0, 3, 200, 1.8) for n in (2, 2, 4)
    ]
    m, rows = evaluate(examples, predictions, timings, semantic=False)
    assert [r["hallucinated"] for r in rows] == [False, False, False, True, True, False]
    assert (m["n"], m["n_answerable"], m["n_unanswerable"]) == (6, 4, 2)
    # per-example EM 1,0,1,0,0,0; F1 and ROUGE-L 1,0,1,0,0,2/3 (F: P 2/4, R 2/2)
    assert m["exact_match"] == pytest.approx(100 * 2 / 6)
    assert m["f1"] == pytest.approx(100 * (2 + 2 / 3) / 6)
    assert m["rouge_l"] == pytest.approx(100 * (2 + 2 / 3) / 6)
    assert m["answerable_em"] == pytest.approx(25.0)  # A of A, B, E, F
    assert m["answerable_f1"] == pytest.approx(100 * (1 + 2 / 3) / 4)
    assert m["answer_in_context_rate"] == pytest.approx(100 / 3)  # A of answered A, E, F
    assert m["refusal_accuracy"] == pytest.approx(50.0)  # C of C, D
    assert m["false_refusal_rate"] == pytest.approx(25.0)  # B of A, B, E, F
    assert m["hallucination_rate"] == pytest.approx(100 * 2 / 6)  # D, E of all six
    assert m["by_kind"]["counterfactual"] == {
        "n": 1, "exact_match": 0.0, "f1": 0.0, "rouge_l": 0.0,
        "refusal_rate": 0.0, "hallucination_rate": 100.0,
    }  # fmt: skip
    assert m["by_kind"]["default"]["exact_match"] == pytest.approx(40.0)  # A, C of 5
    assert m["by_lang"]["zh"]["f1"] == pytest.approx(200 / 3)
    assert m["by_lang"]["en"]["n"] == 5
    # time per answer = the call's wall time / its batch size: [1,1,1,2,2,2] s, not 3 or 6 s
    assert m["answer_s_mean"] == pytest.approx(1.5)
    assert m["answer_s_p50"] == pytest.approx(1.5)
    assert m["answer_s_p95"] == pytest.approx(2.0)
    # each call's times counted once: prompts 900 tokens in 1.2 + 1.8 s, 30 new tokens in
    # (3 - 1.2) + (6 - 1.8) s of decoding
    assert m["prompt_tokens_per_s"] == pytest.approx(900 / 3.0)
    assert m["generated_tokens_per_s"] == pytest.approx(30 / 6.0)
    assert m["latency_s_mean"] is None  # single requests are timed by the eval stage
    assert m["semantic_similarity"] is None and "semantic_similarity: disabled" in m["notes"]


def test_aggregate_without_timings_or_unanswerables() -> None:
    m, _ = evaluate([ex(["1903"])], ["1903"], semantic=False)
    assert m["refusal_accuracy"] is None and m["answer_s_mean"] is None
    assert m["exact_match"] == 100.0


def test_refusals_the_threshold_did_not_make_are_counted() -> None:
    """Three refusals under a threshold: one by the score (the reply is the sentence, the
    blocked answer kept), two in the model's words past the block; one answer."""
    words = "The story does not contain the answer."
    gens = [
        Generation(REFUSAL, 3, 0.1, 1, refusal_score=0.9, unrefused="1903"),  # the score's
        Generation(words, 3, 0.1, 1, refusal_score=0.1, unrefused=words),  # in words
        Generation("Thecontext does not contain the answer.", 3, 0.1, 1, refusal_score=0.2),
        Generation("1903", 1, 0.1, 1, refusal_score=0.05, unrefused="1903"),  # answered
    ]
    examples = [ex([], id="a"), ex([], id="b"), ex(["1903"], id="c"), ex(["1903"], id="d")]
    m, rows = evaluate(examples, [g.text for g in gens], gens, semantic=False)
    assert [r["refused"] for r in rows] == [True, True, True, False]
    assert m["refusals_in_words"] == pytest.approx(100 * 2 / 3)
    assert "refusals_in_words" in metrics.NEUTRAL  # neither better nor worse by itself
    # no threshold (greedy, or an API model): nothing to say
    plain, _ = evaluate(examples, [g.text for g in gens], semantic=False)
    assert plain["refusals_in_words"] is None


def test_evaluate_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="1 predictions for 2 examples"):
        evaluate([ex(["a"]), ex(["b"])], ["a"], semantic=False)


def test_semantic_similarity_with_fake_embedder_is_exact_cosine() -> None:
    vectors = {"paris city": (3.0, 4.0), "Paris": (1.0, 0.0), "City of Light": (0.0, 1.0)}
    vectors |= {"x": (1.0, 1.0), "y": (2.0, 0.0)}
    seen: list[str] = []

    class Fake:
        name = "fake"

        def embed(self, texts: list[str]) -> list[tuple[float, float]]:
            seen.extend(texts)
            return [vectors[t] for t in texts]

    embed = Fake()

    examples = [ex(["Paris", "City of Light"]), ex(["y"]), ex([])]
    rows = [score_example(e, p) for e, p in zip(examples, ["paris city", "x", "z"], strict=True)]
    # (3,4)/5 . (0,1) = 0.8 beats (1,0) at 0.6; (1,1)/sqrt2 . (1,0) = 1/sqrt2; unanswerable: None
    assert semantic_scores(rows, embed) == pytest.approx([0.8, 1 / math.sqrt(2), None])
    assert "z" not in seen  # unanswerable predictions are not embedded
    m = aggregate(rows, embedder=embed)
    assert m["semantic_similarity"] == pytest.approx((0.8 + 1 / math.sqrt(2)) / 2)


def test_semantic_similarity_is_null_when_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "default_embedder", lambda: (None, "package not installed"))
    m = aggregate([score_example(ex(["1903"]), "1903")])
    assert m["semantic_similarity"] is None
    assert m["notes"] == ["semantic_similarity: package not installed"]
