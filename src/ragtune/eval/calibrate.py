"""`ragtune calibrate`: the refusal threshold of a tuned model, chosen on held-out data.

Every held-out question is answered once with its refusal score and the answer decoded with
the refusal start suppressed (`generation.abstain`). At a threshold t a question is refused
when its score is above t, and answered otherwise, so one pass gives the scores at every t:
SQuAD 2.0 style, a refusal scores F1 1 on an unanswerable question and 0 on an answerable
one, an answer scores its F1 against the gold answers (0 on an unanswerable question, unless
it is itself a refusal). The chosen threshold maximises overall F1, or, with
`max_false_refusal`, overall F1 among the thresholds that refuse at most that share of
answerable questions; with `per_language`, the same choice is made again within each
question language that has enough of both kinds. It is written into the adapter folder, or a
full fine-tune's model/
folder (`abstain.CALIBRATION_FILE`), where eval, RAG and serving find it
(`gen.refusal_threshold=auto`).

Training calibrates on the split it held out for eval loss (never the eval set) and keeps
that split as `heldout.jsonl` in its run folder; this command does it again with another
target or data:

    ragtune calibrate runs/x calibrate.max_false_refusal=0.1
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune import atomic, runs, runtime
from ragtune.config import ConfigError, require
from ragtune.data.importers import load_examples
from ragtune.example import Example
from ragtune.generation import abstain, probe
from ragtune.generation.base import Generator
from ragtune.generation.load import GenerateConfig, load_generator
from ragtune.prompt.grounded import PromptConfig
from ragtune.text import language


@dataclass
class CalibrateSection:
    enabled: bool = True
    """Calibrate after training when the held-out split has answerable and unanswerable
    questions (training only; `ragtune calibrate` always does)."""
    max_false_refusal: float | None = None
    """Most answerable questions refused, as a share (0.1 = 10%); None: the threshold that
    maximises overall F1."""
    max_examples: int = 300
    """Held-out questions answered for it, at most (whole articles, drawn with the seed)."""
    max_new_tokens: int = 48
    """Answer length cap while answering them (gen.max_new_tokens's default)."""
    per_language: bool = True
    """Also choose a threshold for each question language with at least `MIN_PER_LANGUAGE`
    held-out questions of both kinds (when there is more than one language); the others
    get the pooled one, and every language does when the mix would break
    `max_false_refusal`. The refusal score does not mean the same in each language: a
    Qwen2.5-Coder-0.5B adapter separated its held-out Chinese questions at 94% AUC and English
    ones at 57% (benchmarks/RESULTS.md has what the pooled threshold cost in Chinese)."""

    probe: bool | None = None
    """Score refusals with a refusal probe (`generation.probe`): a logistic regression on the
    tuned model's hidden state at the answer start, fitted on the training examples
    (`eval.refusal_probe`) and saved beside the weights; the threshold is then chosen on its
    scores. Local transformers engines use it; llama.cpp cannot (recalibrate with false for a
    GGUF). true: fit one now (training checks scikit-learn and 20 examples of each kind
    before it starts); false: the score is P(refusal start), and an old probe is removed;
    None (default; `calibrate.probe=null`): as the run is: training fits none, `ragtune
    calibrate` keeps a probe the run has without refitting it. Not on by default: it
    separates better everywhere it was measured, but with a held-out split of a few dozen
    questions the max-F1 threshold on it refused more answerable questions in `ragtune demo`
    (benchmarks/RESULTS.md)."""
    probe_examples: int = 2000
    """Training examples the probe is fitted on, at most (unanswerable ones kept first)."""

    def __post_init__(self) -> None:
        require(self, "probe_examples", min=1)
        require(self, "max_false_refusal", min=0, max=1)
        require(self, "max_examples", min=1)
        require(self, "max_new_tokens", min=1)


@dataclass
class CalibrateConfig:
    run: str = ""
    """The training run folder (or its adapter, or its full fine-tune's model/) to calibrate."""
    data: str | None = None
    """Held-out questions; default: the run's heldout.jsonl."""
    probe_data: str | None = None
    """Examples to fit the refusal probe on (calibrate.probe=true); default: the run's
    training data less its held-out questions."""
    model: str | None = None
    """Base model spec of a LoRA run; default: the run's (a full fine-tune is its own)."""
    calibrate: CalibrateSection = field(default_factory=CalibrateSection)
    """Target, size and answer length."""
    seed: int | None = None
    """Seed of the max_examples sample; default: the run's own, so a held-out split larger
    than max_examples gives the same questions training calibrated on."""
    runtime: runtime.RuntimeSection = field(default_factory=runtime.RuntimeSection)
    """Device, dtype and CPU threads. The prompt settings and max_length are the run's own
    (its train_config.yaml), so the threshold is chosen on the prompts it was trained on."""


Config = CalibrateConfig


def sweep(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scores at every threshold that changes a decision (each row's refusal score, and 1.0,
    which refuses nothing): overall F1, refusal accuracy on unanswerable questions, false
    refusals on answerable ones and the share answered, in %, lowest threshold first. Rows
    need answerable, refusal_score, unrefused_f1 and unrefused_refused (`metrics`)."""
    scored = [r for r in rows if r.get("refusal_score") is not None]
    if not scored:
        return []
    thresholds = sorted({float(r["refusal_score"]) for r in scored} | {0.0, 1.0})
    return [{"threshold": t, **point(scored, abstain.Threshold(t))} for t in thresholds]


def _with_question_lang(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows carrying `question_lang`, worked out once (language detection per row per
    threshold would make a sweep's cost grow with the square of the questions)."""
    return [r if r.get("question_lang") else {**r, "question_lang": question_lang(r)} for r in rows]


def question_lang(row: dict[str, Any]) -> str:
    """The language a row's threshold is looked up by: its question's, as at answer time
    (`Threshold.for_question`), not the metrics' `lang`, which a Chinese gold answer also
    makes "zh"."""
    if row.get("question_lang"):  # a saved record's rows carry it (None where unknown)
        return str(row["question_lang"])
    return language(row["question"]) if "question" in row else str(row.get("lang", "en"))


def point(scored: Sequence[dict[str, Any]], threshold: abstain.Threshold) -> dict[str, Any]:
    """Overall F1, refusal accuracy, false refusals and share answered (%) of scored rows,
    each decided at its question's language's threshold."""
    at = dict(threshold.by_lang)
    f1 = refused_unans = refused_ans = answered = 0.0
    for r in scored:
        t = at.get(question_lang(r), threshold.value) if at else threshold.value
        refuse = r["refusal_score"] > t
        if refuse:
            f1 += 0.0 if r["answerable"] else 1.0
        else:
            f1 += float(r["unrefused_f1"])
            answered += 1
        said_no = refuse or bool(r["unrefused_refused"])
        refused_ans += said_no and r["answerable"]
        refused_unans += said_no and not r["answerable"]
    n_ans = sum(1 for r in scored if r["answerable"])
    n_unans = len(scored) - n_ans
    return {
        "f1": 100 * f1 / len(scored),
        "refusal_accuracy": 100 * refused_unans / n_unans if n_unans else None,
        "false_refusal_rate": 100 * refused_ans / n_ans if n_ans else None,
        "answered": 100 * answered / len(scored),
    }


MIN_PER_LANGUAGE = 10
"""A language gets a threshold of its own only with at least this many held-out questions of
each kind; below it, one chosen on a handful of questions would follow their noise."""


def choose_by_lang(
    rows: Sequence[dict[str, Any]], max_false_refusal: float | None = None
) -> dict[str, dict[str, Any]]:
    """`choose` within each question language (`question_lang`) with at least
    `MIN_PER_LANGUAGE` answerable and unanswerable scored rows, when `rows` hold more than
    one language; {} otherwise (the pooled choice is then that language's)."""
    scored = _with_question_lang([r for r in rows if r.get("refusal_score") is not None])
    langs = sorted({question_lang(r) for r in scored})
    if len(langs) < 2:
        return {}
    chosen = {}
    for lang in langs:
        own = [r for r in scored if question_lang(r) == lang]
        n_ans = sum(1 for r in own if r["answerable"])
        if min(n_ans, len(own) - n_ans) >= MIN_PER_LANGUAGE:
            chosen[lang] = dict(choose(sweep(own), max_false_refusal), held_out=len(own))
    return chosen


def score_auc(rows: Sequence[dict[str, Any]]) -> float | None:
    """How well the refusal score separates the two kinds, whatever the threshold: the chance
    that an unanswerable question scores above an answerable one (ties count half), in %.
    50 is chance, 100 a threshold that makes no mistake. None without both kinds scored."""
    scored = [r for r in rows if r.get("refusal_score") is not None]
    pos = sorted(float(r["refusal_score"]) for r in scored if not r["answerable"])
    neg = sorted(float(r["refusal_score"]) for r in scored if r["answerable"])
    if not pos or not neg:
        return None
    # Mann-Whitney U: each unanswerable score beats the answerable ones below it (bisect).
    wins = sum(bisect_left(neg, p) + (bisect_right(neg, p) - bisect_left(neg, p)) / 2 for p in pos)
    return 100 * wins / (len(pos) * len(neg))


def score_auc_by_lang(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """`score_auc` within each question language of `rows` (`question_lang`, as thresholds
    are chosen and applied). Pooled, an easy language's unanswerables can hide a hard one's:
    SQuAD 2.0's adversarial questions and synthetic Chinese ones separate very differently."""
    rows = _with_question_lang(rows)
    langs = sorted({question_lang(r) for r in rows})
    return {lang: score_auc([r for r in rows if question_lang(r) == lang]) for lang in langs}


def wilson(rate: float | None, n: int, z: float = 1.96) -> list[float] | None:
    """The 95% Wilson interval, in %, of a share measured as `rate` % of `n` questions; None
    without questions. A threshold's refusal accuracy on 17 held-out unanswerable questions
    is known to within about ±20 points, and the record says so."""
    if rate is None or n <= 0:
        return None
    p = rate / 100
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [100 * max(0.0, centre - half), 100 * min(1.0, centre + half)]


def choose(points: Sequence[dict[str, Any]], max_false_refusal: float | None = None) -> dict:
    """The point to use: highest F1 (ties: the higher threshold, which refuses less), among
    those with at most `max_false_refusal` (a share) false refusals when it is given; when
    none meets it, the one with the fewest."""
    if not points:
        raise ValueError("no scored rows to calibrate on")
    pool = list(points)
    if max_false_refusal is not None:
        meets = [p for p in pool if (p["false_refusal_rate"] or 0) <= 100 * max_false_refusal]
        if meets:
            pool = meets
        else:
            fewest = min(p["false_refusal_rate"] or 0 for p in pool)
            pool = [p for p in pool if (p["false_refusal_rate"] or 0) == fewest]
    return max(pool, key=lambda p: (round(p["f1"], 9), p["threshold"]))


def choose_thresholds(
    rows: Sequence[dict[str, Any]], points: Sequence[dict[str, Any]], target: CalibrateSection
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The pooled choice among `points` (`sweep(rows)`) and each language's own
    (`choose_by_lang`, with `target.per_language`). With languages of their own, the pooled
    point is replaced by what the rows score at the thresholds that will be applied. A
    language without its own keeps the pooled threshold, which met `max_false_refusal` over
    all rows only: if the mix breaks it, no language gets its own."""
    best = choose(points, target.max_false_refusal)
    by_lang = choose_by_lang(rows, target.max_false_refusal) if target.per_language else {}
    if not by_lang:
        return best, {}
    scored = [r for r in rows if r.get("refusal_score") is not None]
    own = {lang: p["threshold"] for lang, p in by_lang.items()}
    applied = {"threshold": best["threshold"]} | point(
        scored, abstain.Threshold.of(best["threshold"], own)
    )
    cap = target.max_false_refusal
    if cap is not None and (applied["false_refusal_rate"] or 0) > 100 * cap:
        return best, {}
    return applied, by_lang


def calibrate(
    generator: Generator,
    examples: Sequence[Example],
    prompt: PromptConfig,
    target: CalibrateSection,
    max_length: int = 1024,
    model: str | None = None,
    dtype: str | None = None,
) -> dict[str, Any]:
    """The calibration record for `generator` (`model`, computing in `dtype`) on held-out
    `examples`, their passages fitted into `max_length` as eval fits them: the chosen
    threshold, the point it scores, the score's AUC there, and the whole sweep."""
    from ragtune.eval import metrics
    from ragtune.eval.answer import answer_all, fit_questions

    questions, _ = fit_questions(generator, examples, prompt, max_length, target.max_new_tokens)
    # Score all, refuse none.
    gens = answer_all(generator, questions, prompt, threshold=abstain.Threshold(1.0))
    if all(g.refusal_score is None for g in gens):
        raise ConfigError(f"{generator.name}: this engine cannot score refusals (no logits)")
    _, rows = metrics.evaluate(
        examples,
        [g.text for g in gens],
        gens,
        refusal_cfg=prompt,
        contexts=[q.passages for q in questions],
    )
    for r in rows:
        r["question_lang"] = question_lang(r)
    probe = getattr(generator, "probe", None)
    info = None if probe is None else {"layer": probe.layer, "digest": probe.digest(), **probe.info}
    return {
        **record_from_rows(rows, target, info),
        "answered": answered_key(examples, target, max_length, model, dtype),
    }


def answered_key(
    examples: Sequence[Example],
    target: CalibrateSection,
    max_length: int,
    model: str | None,
    dtype: str | None = None,
) -> dict[str, Any]:
    """What the held-out answers depend on besides the adapter's weights and the score: the
    questions (a digest of them as written), the caps, the model spec (`model`: a LoRA
    run's base, or the full fine-tune), the compute dtype (bf16 and fp32 answers differ on
    a few questions) and how the refusal start is blocked. A calibration with the same key
    can choose another threshold from the answers saved in the record."""
    import hashlib
    import json

    text = json.dumps([e.to_dict() for e in examples], ensure_ascii=False, sort_keys=True)
    return {
        "examples": hashlib.sha256(text.encode()).hexdigest(),
        "max_new_tokens": target.max_new_tokens,
        "max_length": max_length,
        "model": model,
        "dtype": dtype,
        "refusal_block": abstain.BLOCK,  # the start's spellings kept out of the answers
    }


def target_label(max_false_refusal: float | None) -> str:
    """A record's `target`: max_f1, or max_false_refusal=0.1 for that cap."""
    return "max_f1" if max_false_refusal is None else f"max_false_refusal={max_false_refusal}"


def target_cap(label: str) -> float | None:
    """The false-refusal cap a record's `target` (`target_label`) names; None for max_f1."""
    return None if label == "max_f1" else float(label.split("=", 1)[1])


def record_from_rows(
    rows: Sequence[dict[str, Any]], target: CalibrateSection, probe_info: dict[str, Any] | None
) -> dict[str, Any]:
    """The record's choice from scored held-out rows (`SCORE_KEYS`): the threshold(s) for
    `target`, the point each scores, and the sweep; `probe_info` says which score it was."""
    points = sweep(rows)
    best, by_lang = choose_thresholds(rows, points, target)
    thresholds = {lang: p["threshold"] for lang, p in by_lang.items()}
    n_ans = sum(1 for r in rows if r["answerable"])
    return {
        "score": "start" if probe_info is None else "probe",
        "probe": probe_info,
        "threshold": best["threshold"],
        "thresholds_by_lang": thresholds,
        "chosen_by_lang": by_lang,
        "per_language": target.per_language,
        "target": target_label(target.max_false_refusal),
        "chosen": best,
        "chosen_interval": {
            "refusal_accuracy": wilson(best["refusal_accuracy"], len(rows) - n_ans),
            "false_refusal_rate": wilson(best["false_refusal_rate"], n_ans),
        },
        "held_out": len(rows),
        "answerable": n_ans,
        "score_auc": score_auc(rows),
        "score_auc_by_lang": score_auc_by_lang(rows),
        "sweep": points,
        # Each question's score and fallback answer: the sweep can be re-derived and two
        # calibrations of one adapter compared question by question.
        "scores": [{k: r.get(k) for k in SCORE_KEYS} for r in rows],
    }


SCORE_KEYS = (
    "id",
    "lang",
    "question_lang",
    "answerable",
    "refusal_score",
    "unrefused_f1",
    "unrefused_refused",
)


def prepare_probe(
    engine: Generator,
    tuned: str | Path,
    train: Sequence[Example],
    prompt: PromptConfig,
    target: CalibrateSection,
    max_length: int,
    seed: int,
) -> None:
    """With `target.probe`, fit the refusal probe on `train` and save it beside the weights in
    `tuned`, so `engine` scores refusals with it from now on (calibrate on it next); without,
    remove any old probe, so the threshold about to be chosen is never read against one."""
    if not target.probe:
        probe.remove(tuned)
        if hasattr(engine, "probe"):
            engine.probe = None
        return
    from ragtune.eval import refusal_probe

    fitted = refusal_probe.fit(
        engine, train, prompt, max_length, target.probe_examples, seed, target.max_new_tokens
    )
    engine.probe = fitted  # type: ignore[attr-defined]  # a local engine: fit checked it
    fitted.save(tuned)
    print(
        f"calibrate: refusal probe on layer {fitted.layer}, fitted on {fitted.info['fitted_on']} "
        f"training examples ({fitted.info['unanswerable']} unanswerable), "
        f"cross-validated AUC {fitted.info['cv_auc']:.1f}%"
    )


def save(tuned: str | Path, record: dict[str, Any]) -> Path:
    path = abstain.calibration_path(tuned)
    atomic.write_json(path, record)
    return path


def has_both_kinds(examples: Sequence[Example]) -> bool:
    return any(e.answerable for e in examples) and any(not e.answerable for e in examples)


def run(cfg: CalibrateConfig) -> dict[str, Any]:
    from ragtune.data.split import sample

    if not cfg.run:
        raise ConfigError("run: the training run folder to calibrate is required")
    tuned = runs.tuned_dir(cfg.run)  # the adapter, or a full fine-tune's model
    full = runs.full_model_dir(tuned) is not None
    run_dir = Path(tuned).parent
    data = cfg.data or str(run_dir / runs.HELDOUT)
    if not Path(data).is_file():
        raise ConfigError(f"data: {data} not found; name held-out questions with data=FILE")
    saved_path = run_dir / runs.TRAIN_CONFIG
    saved = runs.saved_train_config(cfg.run)
    if full and cfg.model:
        raise ConfigError(
            f"model: {cfg.run} is a full fine-tune, which is its own model; leave model unset"
        )
    model = tuned if full else cfg.model or saved.get("model")
    if not model:
        raise ConfigError(f"model: {saved_path} not found; name the base model with model=SPEC")
    prompt = PromptConfig(**(saved.get("prompt") or {}))
    max_length = int(saved.get("max_length") or 1024)
    seed = int(saved.get("seed") or 0) if cfg.seed is None else cfg.seed
    examples = sample(load_examples(data), cfg.calibrate.max_examples, seed)
    if not has_both_kinds(examples):
        raise ConfigError(
            f"{data}: calibration needs answerable and unanswerable questions "
            "(data prepare unanswerable_share=0.3 makes unanswerable ones)"
        )
    target = cfg.calibrate
    train: list[Example] = []
    if target.probe:  # checked before the model loads
        from ragtune.eval import refusal_probe

        train, source = _probe_examples(cfg, saved)
        refusal_probe.check_can_fit(train, source)
    previous = abstain.read_calibration(tuned) or {}
    rt = runtime.for_stage(cfg.runtime, str(model))  # its dtype is part of the answers' key
    saved_rows = _saved_answers(
        previous, tuned, examples, target, max_length, str(model), str(rt.dtype)
    )
    if saved_rows is not None:  # another target on the same answers: seconds, not minutes
        print(
            "calibrate: the held-out answers saved by the last calibration reused (the same "
            "questions, caps, model, dtype and refusal score); no model loaded"
        )
        record = {
            **record_from_rows(saved_rows, target, previous.get("probe")),
            "answered": previous["answered"],
        }
    else:
        record = _answer_and_choose(
            rt, model, full, tuned, train, prompt, target, max_length, seed, examples
        )
    record["data"] = data
    record["path"] = str(save(tuned, record))
    return record


def _answer_and_choose(
    rt: runtime.Runtime,
    model: str | Path,
    full: bool,
    tuned: str | Path,
    train: list[Example],
    prompt: PromptConfig,
    target: CalibrateSection,
    max_length: int,
    seed: int,
    examples: list[Example],
) -> dict[str, Any]:
    """Load the tuned model, fit, keep or remove its probe as `target.probe` says, answer the
    held-out `examples` and choose: the calibration record."""
    # Unset, the probe the run has is kept (loaded and checked with the model): choosing
    # another threshold is then a pass over the held-out questions, not minutes of refitting.
    gen = GenerateConfig(
        model=str(model),
        adapter=None if full else str(tuned),
        refusal_score="auto" if target.probe is None else "start",
    )
    engine = load_generator(gen, rt)
    kept = getattr(engine, "probe", None)
    if kept is not None:
        print(
            f"calibrate: the run's refusal probe kept (layer {kept.layer}); "
            "calibrate.probe=true fits it again"
        )
    else:
        prepare_probe(engine, tuned, train, prompt, target, max_length, seed)
    return calibrate(engine, examples, prompt, target, max_length, str(model), str(rt.dtype))


def _saved_answers(
    previous: dict[str, Any],
    tuned: str | Path,
    examples: Sequence[Example],
    target: CalibrateSection,
    max_length: int,
    model: str,
    dtype: str,
) -> list[dict[str, Any]] | None:
    """The scored rows of `previous` (the run's calibration record) when they are what this
    calibration would compute: the same questions, caps and model (`answered_key`), no probe
    to fit or remove, and the score the run has now (its probe, by digest, or none)."""
    key = answered_key(examples, target, max_length, model, dtype)
    if not previous or previous.get("answered") != key:
        return None
    on_disk = probe.RefusalProbe.load(tuned)
    if target.probe or (target.probe is False and on_disk is not None):
        return None
    digest = (previous.get("probe") or {}).get("digest")
    if (on_disk.digest() if on_disk is not None else None) != digest:
        return None
    return list(previous["scores"])


def _probe_examples(cfg: CalibrateConfig, saved: dict[str, Any]) -> tuple[list[Example], str]:
    """What the probe is fitted on, and where they come from: `probe_data`, or the run's
    training side rebuilt as training built it (its data, split, sample and augmentation:
    `augment.training_split`), so the unanswerable questions `augment.unanswerable_share`
    made are there too."""
    from ragtune.data.augment import AugmentSection, training_split

    if cfg.probe_data:
        return load_examples(cfg.probe_data), f"examples in {cfg.probe_data}"
    path = saved.get("data")
    if not path or not Path(path).is_file():
        raise ConfigError(
            f"probe_data: the run's training data {path!r} is not here; name the examples "
            "to fit the refusal probe on with probe_data=FILE"
        )
    fmt = saved.get("format") or "auto"
    evals = load_examples(saved["eval_data"], fmt) if saved.get("eval_data") else None
    train, _ = training_split(
        load_examples(path, fmt),
        evals,
        float(saved.get("eval_fraction") or 0),
        int(saved.get("seed") or 0),
        saved.get("max_examples"),
        AugmentSection(**(saved.get("augment") or {})),
    )
    return train, f"training examples in {path}"


MIN_PER_KIND = 30
"""Fewer held-out questions of a kind than this and `show` warns that the chosen point is
rough: a 50% rate on 30 questions is known only to ±17 points (Wilson, 95%)."""


def show(record: dict[str, Any]) -> None:
    c, ci = record["chosen"], record.get("chosen_interval") or {}
    n_ans = int(record.get("answerable") or 0)
    n_unans = int(record["held_out"]) - n_ans
    if record.get("score") == "probe":
        layer = (record.get("probe") or {}).get("layer")
        print(f"refusal score: the refusal probe on layer {layer}, not P(refusal start)")
    print(
        f"refusal threshold {record['threshold']:.4f} ({record['target']}, "
        f"{record['held_out']} held-out questions): F1 {c['f1']:.1f}, "
        f"refusal accuracy {_pct(c['refusal_accuracy'])}{_range(ci.get('refusal_accuracy'))}, "
        f"false refusals {_pct(c['false_refusal_rate'])}{_range(ci.get('false_refusal_rate'))}; "
        f"score AUC {_pct(record.get('score_auc'))} (50% is chance)"
    )
    if min(n_ans, n_unans) < MIN_PER_KIND:
        print(
            f"calibrate: only {n_unans} unanswerable and {n_ans} answerable held-out "
            f"questions, so these rates are rough (95% intervals in brackets); calibrate on "
            f"more with `ragtune calibrate RUN data=FILE` or a larger eval_fraction"
        )
    for lang, (ans, unans) in pooled_languages(record).items():
        print(
            f"calibrate: {lang} has {unans} unanswerable and {ans} answerable held-out "
            f"questions, fewer than {MIN_PER_LANGUAGE} of a kind, so it gets no threshold of "
            f"its own: the one chosen on every language's questions together applies to it; "
            f"calibrate on more {lang} questions with `ragtune calibrate RUN data=FILE`"
        )
    by_lang = record.get("score_auc_by_lang") or {}
    if len(by_lang) > 1:
        print("score AUC by language: " + ", ".join(f"{k} {_pct(v)}" for k, v in by_lang.items()))
    for lang, p in (record.get("chosen_by_lang") or {}).items():
        print(
            f"  {lang} ({p['held_out']} questions): threshold {p['threshold']:.4f}, F1 "
            f"{p['f1']:.1f}, refusal accuracy {_pct(p['refusal_accuracy'])}, false refusals "
            f"{_pct(p['false_refusal_rate'])}"
        )
    if record.get("thresholds_by_lang"):
        print("  (the first line's F1 and rates are the held-out set at these thresholds)")
    print(f"written to {record.get('path')}")


def pooled_languages(record: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """The languages of a calibration record's questions that got no threshold of their own
    for want of questions (`choose_by_lang`), with their answerable and unanswerable counts;
    {} for a one-language record, or one made with `per_language` off."""
    if record.get("per_language") is False:
        return {}
    rows = _with_question_lang(record.get("scores") or [])
    counts: dict[str, list[int]] = {}
    for r in rows:
        if r.get("refusal_score") is not None:
            counts.setdefault(question_lang(r), [0, 0])[0 if r["answerable"] else 1] += 1
    own = record.get("chosen_by_lang") or {}
    if len(counts) < 2:
        return {}
    return {
        lang: (n[0], n[1])
        for lang, n in sorted(counts.items())
        if lang not in own and min(n) < MIN_PER_LANGUAGE
    }


def _range(interval: list[float] | None) -> str:
    return "" if interval is None else f" [{interval[0]:.0f}-{interval[1]:.0f}%]"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}%"
