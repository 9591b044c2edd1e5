"""The model card (README.md) written into every export folder, Hugging Face Hub ready.

It states what the model is and how it was made, from files ragtune already wrote: the base
model, the training data and configuration (the run folder's train_config.yaml and
train_metrics.json), the evaluation table (eval metrics.json files given, or found next to the
run folder when their `adapter` is this adapter), this export's verification results, the
prompt format, and how to run each exported file.

    text = card_text(CardInfo(name="x", base="smollm2-135m", ...))
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ragtune.eval.metrics import HEADLINE, METRIC_INFO
from ragtune.export import ExportError
from ragtune.prompt.grounded import PromptConfig, instruction

# Hub ids of ragtune's aliases, for the card's `base_model` (the Hub links the two).
HUB_IDS = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct"}


@dataclass
class CardInfo:
    name: str
    base: str
    """The base model spec as given (alias, folder, .gguf or hub id)."""
    architecture: str
    n_params: int
    adapter: str | None = None
    train_config: dict[str, Any] | None = None
    train_metrics: dict[str, Any] | None = None
    evals: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    verification: list[dict[str, Any]] = field(default_factory=list)
    files: list[tuple[str, int]] = field(default_factory=list)
    """(path relative to the export folder, bytes)."""
    prompt: PromptConfig = field(default_factory=PromptConfig)


def run_folder(adapter: Path) -> Path:
    """The `ragtune train` output folder an adapter came from (the adapter's parent for
    run/adapter/, else the folder itself)."""
    return adapter.parent if (adapter.parent / "train_config.yaml").is_file() else adapter


def read_run(adapter: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    run = run_folder(adapter)
    cfg_file, metrics_file = run / "train_config.yaml", run / "train_metrics.json"
    cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else None
    met = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
    return cfg, met


def find_evals(adapter: Path | None, given: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Eval metrics for the card: the files (or eval folders) given, else every metrics.json
    one level inside the run folder or its parent whose `adapter` is this adapter's run."""
    paths = [Path(g) / "metrics.json" if Path(g).is_dir() else Path(g) for g in given]
    for p in paths:
        if not p.is_file():
            raise ExportError(f"{p}: eval metrics file not found (eval_metrics)")
    if not paths and adapter is not None:
        run = run_folder(adapter).resolve()
        mine = {run, adapter.resolve()}
        for p in sorted({*run.glob("*/metrics.json"), *run.parent.glob("*/metrics.json")}):
            try:
                m = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(m, dict) and m.get("adapter") and Path(m["adapter"]).resolve() in mine:
                paths.append(p)
    return [(str(p), json.loads(p.read_text(encoding="utf-8"))) for p in paths]


def _fmt(v: Any, spec: str = ".1f") -> str:
    if isinstance(v, float):
        return format(v, spec)
    return "" if v is None else str(v)


def _front_matter(info: CardInfo) -> str:
    meta: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["ragtune", "rag", "grounded-qa", "lora", "gguf"],
    }
    hub_id = HUB_IDS.get(info.base) or (
        info.base if info.base.count("/") == 1 and not Path(info.base).exists() else None
    )
    if hub_id:
        meta["base_model"] = hub_id
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _training(info: CardInfo) -> list[str]:
    tc, tm = info.train_config or {}, info.train_metrics or {}
    if not tc and not tm:
        return ["No train_config.yaml / train_metrics.json next to the adapter."]
    lora = tc.get("lora") or {}
    rows = [
        ("training data", tc.get("data")),
        ("held-out data", tc.get("eval_data") or f"{tc.get('eval_fraction')} of data, by group"),
        ("method", tc.get("method")),
        (
            "LoRA rank / alpha / modules",
            f"{lora.get('r')} / {lora.get('alpha')} / {lora.get('target_modules')}",
        ),
        ("learning rate", tc.get("lr")),
        ("epochs", tc.get("epochs")),
        ("batch x accumulation", f"{tc.get('batch_size')} x {tc.get('grad_accum')}"),
        ("max length (tokens)", tc.get("max_length")),
        ("examples (train / held out)", f"{tm.get('train_examples')} / {tm.get('eval_examples')}"),
        ("optimizer steps", tm.get("steps")),
        (
            "train loss (first -> mean)",
            f"{_fmt(tm.get('first_loss'), '.3f')} -> {_fmt(tm.get('train_loss'), '.3f')}",
        ),
        (
            "held-out loss (first -> best)",
            f"{_fmt(tm.get('eval_loss_first'), '.3f')} -> {_fmt(tm.get('eval_loss_best'), '.3f')}",
        ),
        (
            "wall time, tokens/s",
            f"{tm.get('wall_s')} s, {tm.get('tokens_per_s')} on {tm.get('device')}",
        ),
    ]
    return ["| | |", "|---|---|", *(f"| {k} | {_fmt(v, '.4g')} |" for k, v in rows)]


def _evals(info: CardInfo) -> list[str]:
    if not info.evals:
        return ["No eval metrics.json was given or found (run `ragtune eval` with this adapter)."]
    labels = [m.get("label") or Path(src).parent.name for src, m in info.evals]
    out = ["| metric | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for key in ["n", *HEADLINE]:
        label, unit = METRIC_INFO[key]
        name = f"{label} ({unit})" if unit else label
        out.append(f"| {name} | " + " | ".join(_fmt(m.get(key)) for _, m in info.evals) + " |")
    out.append("")
    out.append("Data: " + ", ".join(f"`{m.get('data')}`" for _, m in info.evals))
    return out


def _verification(info: CardInfo) -> list[str]:
    if not info.verification:
        return ["Not verified (verify=false)."]
    out = [
        "| file | engine | logit cosine | answers agree | F1 (this file) | F1 (transformers) | decode tok/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in info.verification:
        cells = [r.get("logit_cosine"), r.get("agreement"), r.get("f1"), r.get("f1_transformers")]
        tps = r.get("decode_tokens_per_s")
        out.append(
            f"| {r['file']} | {r['engine']} | "
            + " | ".join(_fmt(c) if i else str(c) for i, c in enumerate(cells))
            + f" | {_fmt(tps)} |"
        )
    n = next((r.get("n") for r in info.verification if r.get("n")), None)
    if n:
        out += ["", f"Agreement and F1 over {n} questions, greedy decoding in both engines."]
    return out


def _how_to_run(info: CardInfo) -> list[str]:
    names = {p for p, _ in info.files}
    gguf = sorted(p for p in names if p.endswith(".gguf") and "base-" not in p and "lora" not in p)
    out = []
    if any(p.startswith("merged/") for p in names):
        out += [
            "transformers / vLLM (`merged/`, plain safetensors):",
            "```bash",
            "vllm serve merged --served-model-name ragtune",
            "```",
        ]
    if gguf:
        out += [
            "llama.cpp / Ollama:",
            "```bash",
            f"llama-server -m {gguf[0]} --jinja --temp 0   # OpenAI-compatible API on :8080",
            f"llama-cli -m {gguf[0]} --temp 0 -sys 'SYSTEM MESSAGE (see Prompt format)'",
            "cd gguf && ollama create ragtune-model -f Modelfile && ollama run ragtune-model",
            "```",
        ]
    if any("lora" in p for p in names):
        out += [
            "llama.cpp with the LoRA applied at load time:",
            "```bash",
            "llama-cli -m gguf/base-f16.gguf --lora gguf/adapter-lora.gguf --temp 0",
            "```",
        ]
    if any(p.startswith("adapter/") for p in names):
        out += [
            "PEFT adapter (`adapter/`), on the base model:",
            "```python",
            "model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), 'adapter')",
            "```",
        ]
    return out or ["(no files)"]


def card_text(info: CardInfo) -> str:
    lines = [
        _front_matter(info),
        f"# {info.name}",
        "",
        "A grounded answer generator for retrieval-augmented generation: it answers from the "
        "context passages in the prompt, replies with a fixed refusal sentence when they lack "
        f"the answer, and keeps answers short. Made with ragtune from `{info.base}`"
        + (f" and the LoRA adapter `{info.adapter}`." if info.adapter else " (no adapter)."),
        "",
        "## Base model",
        "",
        f"`{info.base}`: {info.architecture}, {info.n_params / 1e6:.1f}M parameters.",
        "",
        "## Training",
        "",
        *_training(info),
        "",
        "## Evaluation",
        "",
        *_evals(info),
        "",
        "## Verification of this export",
        "",
        *_verification(info),
        "",
        "## Prompt format",
        "",
        "System message for English (and any non-Chinese) questions:",
        "",
        f"> {instruction('en', info.prompt)}",
        "",
        "System message for Chinese questions:",
        "",
        f"> {instruction('zh', info.prompt)}",
        "",
        "User message: `Context:\\n[1] passage\\n\\n[2] passage\\n\\nQuestion: ...`, rendered "
        "with the model's chat template (embedded in the GGUF, `chat_template.jinja` in merged/).",
        "",
        "## Files and how to run",
        "",
        "Paths are relative to the export folder that `ragtune export` wrote.",
        "",
        "| file | size |",
        "|---|---|",
        *(f"| {p} | {size / 1e6:.1f} MB |" for p, size in info.files),
        "",
        *_how_to_run(info),
    ]
    return "\n".join(lines) + "\n"
