"""Scoring of generated answers against gold answers, in English and Chinese.

Per example, `score_example` gives a row (JSON-ready dict); `aggregate` turns rows into the
metrics dict that `metrics.json`, the report and `ragtune compare` read; `evaluate` does both:

    metrics, rows = evaluate(examples, predictions, generations)   # generations may be None

EM, F1 and ROUGE-L compare `ragtune.text.metric_tokens`: the SQuAD script for English, CMRC
2018 for Chinese. Answer-in-context and support take the more favourable of those and
`text.grounding_tokens`, which split words at punctuation (`grounding`).
An example is Chinese when its question or any gold answer is (`ragtune.text.language`).

Per-example scores are fractions 0-1; `aggregate` reports rates and scores as percentages
0-100, `semantic_similarity` as a mean cosine (-1..1, in practice 0-1), latencies in seconds.

- em / f1 / rouge_l: exact token-sequence match, token-bag F1 and LCS F-measure (beta 1),
  each the max over gold answers. An unanswerable question scores 1 on all three when the
  prediction is a refusal (`prompt.refusal.is_refusal`) and 0 otherwise (SQuAD 2.0 convention).
- in_context: the prediction is not a refusal and its token sequence occurs in the tokens of
  the passages it was answered from (joined in order): the example's gold contexts, or the
  passages a retriever supplied, under either tokenization (`grounding`): SQuAD's, where
  "1000" is in "1,000", or one splitting at punctuation, where "Wang Zhen" is in "Wang
  Zhen's" (SQuAD's makes that "wangzhens").
- support: share of the prediction's tokens (counted with repeats) that occur anywhere in the
  contexts' tokens, the larger under the two tokenizations; None for a prediction with no
  tokens.
- refusals_in_words (aggregate only, when a refusal threshold decided): the share of
  refusals that the threshold did not make: the answer decoded with the refusal start
  blocked was itself a refusal, in other words ("The story does not contain the answer.").
  High, the threshold is not what decides (a threshold of 1 refuses nothing by the score).
- hallucinated: the prediction is not a refusal, has at least one token, AND either the
  question is unanswerable or support < 0.5 (fewer than half of its tokens occur in the
  context). An empty answer asserts nothing, so it is wrong but not a hallucination.
  `hallucination_rate` divides by all examples. This is a lexical proxy (docs/metrics.md).

Timing. A prediction carries the wall time of the generate call that produced it, that call's
batch size and the part of it spent on prompts (`Generation.latency_s`, `batch_size`,
`prompt_s`). answer_s_mean/p50/p95 are over latency_s / batch_size: the time per answer.
prompt_tokens_per_s = prompt tokens / prompt time and generated_tokens_per_s = new tokens /
decoding time, each call's time counted once. latency_s_mean/p50 are single requests (batch
1) on a few questions, timed by the eval stage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ragtune.embed import Embedder, default_embedder
from ragtune.example import Example
from ragtune.generation.base import Generation
from ragtune.prompt.grounded import PromptConfig
from ragtune.prompt.refusal import is_refusal
from ragtune.text import grounding_tokens, language, metric_tokens, strip_citations

# key -> (label, unit) for every scalar `aggregate` reports; "%" means 0-100.
METRIC_INFO: dict[str, tuple[str, str]] = {
    "exact_match": ("Exact match", "%"),
    "f1": ("Token F1", "%"),
    "rouge_l": ("ROUGE-L", "%"),
    "answerable_em": ("Exact match (answerable)", "%"),
    "answerable_f1": ("Token F1 (answerable)", "%"),
    "answerable_rouge_l": ("ROUGE-L (answerable)", "%"),
    "semantic_similarity": ("Semantic similarity", "cos"),
    "answer_in_context_rate": ("Answer in context", "%"),
    "refusal_accuracy": ("Refusal accuracy (unanswerable)", "%"),
    "false_refusal_rate": ("False refusals (answerable)", "%"),
    "refusal_rate": ("Refusals (all)", "%"),
    "refusals_in_words": ("Refusals the threshold did not make (model's own words)", "%"),
    "hallucination_rate": ("Hallucination rate", "%"),
    "answer_s_mean": ("Time per answer, mean (batch wall / batch size)", "s"),
    "answer_s_p50": ("Time per answer, p50", "s"),
    "answer_s_p95": ("Time per answer, p95", "s"),
    "latency_s_mean": ("Single-request latency, mean (batch 1)", "s"),
    "latency_s_p50": ("Single-request latency, p50 (batch 1)", "s"),
    "prompt_tokens_per_s": ("Prompt processing", "tok/s"),
    "generated_tokens_per_s": ("Generation (decoding)", "tok/s"),
    "n": ("Examples", ""),
    "retrieval_miss_rate": ("Own passage not retrieved (answerable)", "%"),
    "judge_faithfulness": ("Judge: faithfulness (1-5)", ""),
    "judge_correctness": ("Judge: correctness (1-5)", ""),
    "judge_style": ("Judge: style (1-5)", ""),
    "judge_failures": ("Judge: unparsed replies", ""),
    "judge_scored": ("Judge: answers graded", ""),
    "judge_by_rule": ("Judge: refusals graded by rule", ""),
    "citation_accuracy": ("Citation holds the answer (answered)", "%"),
    "n_answerable": ("Answerable", ""),
    "n_unanswerable": ("Unanswerable", ""),
}
HEADLINE = [
    # The metrics a summary shows first (report, CLI output, model cards), in this order.
    "exact_match",
    "f1",
    "rouge_l",
    "answerable_em",
    "answerable_f1",
    "semantic_similarity",
    "answer_in_context_rate",
    "refusal_accuracy",
    "false_refusal_rate",
    "hallucination_rate",
]
# Reported by an end-to-end eval (`eval --index`, eval.end_to_end) only.
END_TO_END_KEYS = ["retrieval_miss_rate", "citation_accuracy"]
# Reported when an LLM judge graded the answers (`eval judge=openai:MODEL`, eval.judge).
JUDGE_KEYS = ["judge_faithfulness", "judge_correctness", "judge_style", "judge_failures"]

LOWER_IS_BETTER = frozenset(
    {
        "retrieval_miss_rate",
        "judge_failures",
        "false_refusal_rate",
        "hallucination_rate",
        "answer_s_mean",
        "answer_s_p50",
        "answer_s_p95",
        "latency_s_mean",
        "latency_s_p50",
    }
)
# Shown, never judged better or worse: a model that answers in fewer tokens decodes fewer
# tokens per batch, which says nothing about its speed per answer.
NEUTRAL = frozenset({"generated_tokens_per_s", "refusals_in_words"})


def example_language(ex: Example) -> str:
    """Return "zh" when the question or any gold answer is Chinese, else "en"."""
    texts = [ex.question, *ex.answers]
    return "zh" if any(language(t) == "zh" for t in texts) else "en"


def _f1_tokens(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)  # SQuAD: two empty answers agree
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    p, r = same / len(pred), same / len(gold)
    return 2 * p * r / (p + r)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence; O(len(a) * len(b)) time, O(len(b)) memory."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _rouge_l_tokens(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    lcs = lcs_length(pred, gold)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(pred), lcs / len(gold)
    return 2 * p * r / (p + r)


def exact_match(pred: str, golds: Sequence[str], lang: str) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer, else 0.0."""
    p = metric_tokens(pred, lang)
    return max((float(p == metric_tokens(g, lang)) for g in golds), default=0.0)


def f1(pred: str, golds: Sequence[str], lang: str) -> float:
    """Token-bag F1 (0-1), max over gold answers."""
    p = metric_tokens(pred, lang)
    return max((_f1_tokens(p, metric_tokens(g, lang)) for g in golds), default=0.0)


def rouge_l(pred: str, golds: Sequence[str], lang: str) -> float:
    """ROUGE-L F-measure (0-1) on the same tokens, max over gold answers."""
    p = metric_tokens(pred, lang)
    return max((_rouge_l_tokens(p, metric_tokens(g, lang)) for g in golds), default=0.0)


def _contains(haystack: list[str], needle: list[str]) -> bool:
    # Pad with spaces so "cat" does not match inside "concatenate".
    return bool(needle) and f" {' '.join(needle)} " in f" {' '.join(haystack)} "


def grounding(prediction: str, context: str, lang: str) -> tuple[bool, float | None]:
    """Whether `prediction` occurs in `context` as whole tokens, in order, and its support
    (the share of its tokens found anywhere there; None without tokens), each the more
    favourable of two tokenizations: SQuAD's (`metric_tokens`: punctuation deleted, so
    "1000" is in "1,000" and "US" in "U.S.") and one splitting at punctuation
    (`grounding_tokens`: "Wang Zhen" is in "Wang Zhen's", "World War II" in
    "post-World War II"). A copied span should count under whichever way it was copied."""
    found, supports = False, []
    # Chinese grounding tokens are its metric tokens: one pass is enough.
    for tokens in (metric_tokens,) if lang == "zh" else (metric_tokens, grounding_tokens):
        pred, ctx = tokens(prediction, lang), tokens(context, lang)
        found = found or _contains(ctx, pred)
        if pred:
            ctx_set = set(ctx)
            supports.append(sum(t in ctx_set for t in pred) / len(pred))
    return found, max(supports, default=None)


def score_example(
    ex: Example,
    prediction: str,
    refusal_cfg: PromptConfig | None = None,
    generation: Generation | None = None,
    contexts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One row of per-example scores (fractions 0-1), with the texts the report shows.
    `contexts` are the passages the answer came from (default: the example's own)."""
    lang = example_language(ex)
    scored = strip_citations(prediction)  # "[2]" says where, not what: never scored
    ex_answers = [strip_citations(a) for a in ex.answers]
    refused = is_refusal(scored, refusal_cfg)
    pred_tokens = metric_tokens(scored, lang)
    in_context, support = grounding(
        scored, "\n".join(ex.contexts if contexts is None else contexts), lang
    )
    if ex.answerable:
        em = exact_match(scored, ex_answers, lang)
        f = f1(scored, ex_answers, lang)
        rl = rouge_l(scored, ex_answers, lang)
    else:
        em = f = rl = float(refused)
    answered = not refused and bool(pred_tokens)
    hallucinated = answered and (not ex.answerable or (support or 0.0) < 0.5)
    row: dict[str, Any] = {
        "id": ex.id,
        "question": ex.question,
        "answers": list(ex.answers),
        "prediction": prediction,
        "answerable": ex.answerable,
        "kind": ex.kind,
        "lang": lang,
        "refused": refused,
        "em": em,
        "f1": f,
        "rouge_l": rl,
        "in_context": not refused and in_context,
        "support": support,
        "hallucinated": hallucinated,
    }
    if generation is not None:
        row.update(
            latency_s=generation.latency_s,
            batch_size=generation.batch_size,
            new_tokens=generation.new_tokens,
            prompt_tokens=generation.prompt_tokens,
            prompt_s=generation.prompt_s,
        )
        if generation.refusal_score is not None:
            # What any other threshold would have replied: refuse, or this answer
            unrefused = generation.text if generation.unrefused is None else generation.unrefused
            alt = score_example(ex, unrefused, refusal_cfg, None, contexts)
            row.update(
                refusal_score=generation.refusal_score,
                unrefused=unrefused,
                unrefused_f1=alt["f1"],
                unrefused_refused=alt["refused"],
            )
    return row


def semantic_scores(rows: Sequence[dict[str, Any]], embedder: Embedder) -> list[float | None]:
    """Cosine between each answerable row's prediction and its closest gold; None elsewhere."""
    import numpy as np

    texts = sorted({t for r in rows if r["answerable"] for t in [r["prediction"], *r["answers"]]})
    if not texts:
        return [None] * len(rows)
    vecs = np.asarray(embedder.embed(texts), dtype=np.float64)  # (T, D)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs = vecs / np.where(norms == 0, 1.0, norms)  # an all-zero vector gives cosine 0
    index = {t: i for i, t in enumerate(texts)}
    out: list[float | None] = []
    for r in rows:
        if not r["answerable"]:
            out.append(None)
            continue
        p = vecs[index[r["prediction"]]]
        out.append(max(float(p @ vecs[index[g]]) for g in r["answers"]))
    return out


def _pct(num: float, den: int) -> float | None:
    return 100.0 * num / den if den else None


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in 0-1."""
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The scores every group reports: EM/F1/ROUGE-L and refusal/hallucination rates, in %."""
    n = len(rows)
    return {
        "n": n,
        "exact_match": _pct(sum(r["em"] for r in rows), n),
        "f1": _pct(sum(r["f1"] for r in rows), n),
        "rouge_l": _pct(sum(r["rouge_l"] for r in rows), n),
        "refusal_rate": _pct(sum(r["refused"] for r in rows), n),
        "hallucination_rate": _pct(sum(r["hallucinated"] for r in rows), n),
    }


TIMING_KEYS = [
    "answer_s_mean",
    "answer_s_p50",
    "answer_s_p95",
    "prompt_tokens_per_s",
    "generated_tokens_per_s",
]


# The speed rows every table shows, in this order (report, compare).
SPEED_KEYS = [*TIMING_KEYS[:3], "latency_s_mean", "latency_s_p50", *TIMING_KEYS[3:]]


def timing(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Per-answer time and the two token rates (module docstring); None where untimed."""
    timed = [r for r in rows if r.get("latency_s") is not None]
    if not timed:
        return dict.fromkeys(TIMING_KEYS)
    size = [max(int(r.get("batch_size") or 1), 1) for r in timed]
    per_answer = [float(r["latency_s"]) / b for r, b in zip(timed, size)]
    # A call's times counted once: each of its batch_size rows carries 1/batch_size of them.
    prompt_s = sum(float(r.get("prompt_s") or 0.0) / b for r, b in zip(timed, size))
    decode_s = sum(per_answer) - prompt_s
    prompt_tokens = sum(int(r.get("prompt_tokens") or 0) for r in timed)
    new_tokens = sum(int(r.get("new_tokens") or 0) for r in timed)
    return {
        "answer_s_mean": sum(per_answer) / len(per_answer),
        "answer_s_p50": percentile(per_answer, 0.5),
        "answer_s_p95": percentile(per_answer, 0.95),
        "prompt_tokens_per_s": prompt_tokens / prompt_s if prompt_s > 0 else None,
        "generated_tokens_per_s": new_tokens / decode_s if decode_s > 0 else None,
    }


def _group(rows: Sequence[dict[str, Any]], key: str, empty: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r[key] or empty, []).append(r)
    return {k: _summary(v) for k, v in sorted(groups.items())}


def _in_words(rows: Sequence[dict[str, Any]]) -> float | None:
    """Of the refusals a threshold decided over, the share it did not make: the reply is the
    answer decoded past the blocked refusal start, and that answer refused (None: no
    threshold applied, or nothing refused)."""
    refused = [r for r in rows if r.get("refusal_score") is not None and r["refused"]]
    return _pct(sum(r["prediction"] == r["unrefused"] for r in refused), len(refused))


def aggregate(
    rows: Sequence[dict[str, Any]], *, embedder: Embedder | None = None, semantic: bool = True
) -> dict[str, Any]:
    """Metrics over `score_example` rows (units in the module docstring and METRIC_INFO).

    `embedder` defaults to `default_embedder()`; `semantic=False` skips the metric. When no
    embedder is available, semantic_similarity is None and `notes` says why.
    """
    ans = [r for r in rows if r["answerable"]]
    unans = [r for r in rows if not r["answerable"]]
    answered = [r for r in ans if not r["refused"]]
    out: dict[str, Any] = {
        "n": len(rows),
        "n_answerable": len(ans),
        "n_unanswerable": len(unans),
        **{k: v for k, v in _summary(rows).items() if k != "n"},
        "answerable_em": _pct(sum(r["em"] for r in ans), len(ans)),
        "answerable_f1": _pct(sum(r["f1"] for r in ans), len(ans)),
        "answerable_rouge_l": _pct(sum(r["rouge_l"] for r in ans), len(ans)),
        "semantic_similarity": None,
        "semantic_model": None,
        "answer_in_context_rate": _pct(sum(r["in_context"] for r in answered), len(answered)),
        "refusal_accuracy": _pct(sum(r["refused"] for r in unans), len(unans)),
        "false_refusal_rate": _pct(sum(r["refused"] for r in ans), len(ans)),
        "refusals_in_words": _in_words(rows),
        **timing(rows),
        # Single-request latency (batch 1) is measured by the eval stage, not derived here.
        "latency_s_mean": None,
        "latency_s_p50": None,
        "by_kind": _group(rows, "kind", "default"),
        "by_lang": _group(rows, "lang", "en"),
        "notes": [],
    }
    if not semantic:
        out["notes"].append("semantic_similarity: disabled")
    elif ans:
        if embedder is None:
            embedder, note = default_embedder()
        else:
            note = getattr(embedder, "name", "custom embedder")
        if embedder is None:
            out["notes"].append(f"semantic_similarity: {note}")
        else:
            sims = [s for s in semantic_scores(rows, embedder) if s is not None]
            out["semantic_similarity"] = sum(sims) / len(sims)
            out["semantic_model"] = note
    return out


def evaluate(
    examples: Sequence[Example],
    predictions: Sequence[str],
    generations: Sequence[Generation] | None = None,
    *,
    refusal_cfg: PromptConfig | None = None,
    embedder: Embedder | None = None,
    semantic: bool = True,
    contexts: Sequence[Sequence[str]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score every prediction against its example; returns (metrics, rows). `contexts`, one
    list per example, are the passages each answer came from (default: the example's own)."""
    if len(predictions) != len(examples):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
    if generations is not None and len(generations) != len(examples):
        raise ValueError(f"{len(generations)} generations for {len(examples)} examples")
    rows = [
        score_example(
            ex,
            p,
            refusal_cfg,
            generations[i] if generations is not None else None,
            contexts[i] if contexts is not None else None,
        )
        for i, (ex, p) in enumerate(zip(examples, predictions, strict=True))
    ]
    return aggregate(rows, embedder=embedder, semantic=semantic), rows
