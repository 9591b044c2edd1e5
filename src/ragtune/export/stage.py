"""`ragtune export`: base model + LoRA adapter -> files that transformers, vLLM, llama.cpp and
Ollama load, each checked against the transformers model before the export is kept.

Layout of `out` (only the parts asked for in `to`):

    merged/   model.safetensors (bf16/fp16), config.json, tokenizer, chat template, README.md
    gguf/     model-<quant>.gguf, Modelfile (ollama), base-f16.gguf + adapter-lora.gguf (lora)
    adapter/  the PEFT adapter, README.md
    README.md  export.json (files, sizes, verification)  export_config.yaml

Order: load base (fp32) -> [lora: base GGUF + LoRA GGUF] -> merge -> transformers reference
answers -> GGUF f16 -> quantize -> merged safetensors -> verify every file -> cards. All of it
goes into a temporary folder beside `out`, renamed into place only when every check passed;
inputs are only read.

    result = run(ExportConfig(model="smollm2-135m", adapter="runs/lora", to=["gguf", "ollama"]))
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragtune import atomic, runtime
from ragtune.config import require, save_config
from ragtune.export import ExportError
from ragtune.export.quantize import GGUF_TYPES
from ragtune.prompt.grounded import PromptConfig
from ragtune.runs import adapter_dir
from ragtune.runtime import RuntimeSection

EXPORT_TYPES = ("merged", "gguf", "lora", "ollama", "adapter")


@dataclass
class ExportConfig:
    model: str = "smollm2-135m"
    """Base model spec the adapter was trained on: alias, local folder, .gguf file or hub id."""
    adapter: str | None = None
    """LoRA adapter: a `ragtune train` run folder or its adapter/ folder (unset: the base model)."""
    to: list[str] = field(default_factory=lambda: ["merged", "gguf", "ollama"])
    """What to write, a comma list: merged (safetensors for transformers / vLLM), gguf
    (llama.cpp), ollama (a Modelfile next to the GGUF; implies gguf), lora (a LoRA GGUF for
    llama.cpp's --lora, with the base as f16 GGUF), adapter (the PEFT adapter and a card)."""
    out: str = "runs/export"
    """Output folder; built in a temporary folder and renamed into place when verified."""
    quant: list[str] = field(default_factory=lambda: ["q8_0"])
    """GGUF types, a comma list of f32, f16, bf16, q8_0, q6_k, q5_k_m, q5_k_s, q5_0, q5_1,
    q4_k_m, q4_k_s, q4_0, q4_1, q3_k_l, q3_k_m, q3_k_s, q2_k; the Modelfile uses the first."""
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    """Weight dtype of the merged safetensors (the merge itself runs in fp32)."""
    name: str | None = None
    """Model name in GGUF metadata and the model card (default: the out folder's name)."""
    data: str | None = None
    """QA file (any supported format) whose first verify_n examples transformers and
    llama.cpp both answer; default: 3 built-in questions (English, unanswerable, Chinese)."""
    format: str = "auto"
    """Format of data; auto detects it."""
    verify: bool = True
    """Load every written file back and check its chat template, tokens, logits and answers
    against transformers; a mismatch fails the export."""
    verify_n: int = 16
    """Questions answered by both engines for the agreement and F1 figures."""
    min_logit_cosine: float = 0.9
    """Fail when a file's next-token logits have a lower cosine with transformers' (tuned
    SmolLM2: f16 1.0000, q8_0 0.9999, q4_k_m 0.9988; the test model with its q/k rows in the
    wrong layout: 0.36)."""
    max_new_tokens: int = 48
    """Most tokens per verification answer."""
    num_ctx: int = 4096
    """Context window for the Modelfile and llama.cpp verification (capped at the model's)."""
    pre_tokenizer: str = "auto"
    """llama.cpp pre-tokenizer name for the GGUF (auto: detected; e.g. smollm, qwen2, gpt-2)."""
    eval_metrics: list[str] = field(default_factory=list)
    """Eval metrics.json files (or eval folders) for the card's table; default: those found
    next to the adapter's run folder."""
    push_to_hub: str | None = None
    """Hugging Face repo id (OWNER/NAME) to push to: merged/ when exported, else adapter/
    (added to `to`). Needs network and a token."""
    hub_private: bool = True
    """Create the hub repository as private."""
    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    """CPU threads for merging, quantizing and verifying (runtime.threads). The export always
    runs on the CPU in fp32, so runtime.device and runtime.dtype stay auto."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """Grounded prompt (must match training): the Modelfile's SYSTEM and verification use it."""

    def __post_init__(self) -> None:
        for t in self.to:
            if t not in EXPORT_TYPES:
                raise ValueError(
                    f"to: unknown export type {t!r}; choose from {', '.join(EXPORT_TYPES)}"
                )
        for q in self.quant:
            if q not in GGUF_TYPES:
                raise ValueError(
                    f"quant: unknown GGUF type {q!r}; choose from {', '.join(GGUF_TYPES)}"
                )
        if not self.quant:
            raise ValueError("quant: give at least one GGUF type")
        for key in ("verify_n", "max_new_tokens"):
            require(self, key, min=1)
        require(self, "num_ctx", min=64)
        require(self, "min_logit_cosine", min=-1, max=1)
        if self.runtime.device not in ("auto", "cpu") or self.runtime.dtype not in ("auto", "fp32"):
            raise ValueError(
                "runtime.device and runtime.dtype: the export runs on the CPU in fp32; "
                "leave them auto (runtime.threads applies)"
            )
        if "ollama" in self.to and "gguf" not in self.to:
            self.to = [*self.to, "gguf"]
        if self.push_to_hub and "merged" not in self.to and "adapter" not in self.to:
            self.to = [*self.to, "adapter"]
        if not self.adapter and ({"lora", "adapter"} & set(self.to)):
            raise ValueError("adapter: to=lora and to=adapter need an adapter (adapter=DIR)")


@dataclass
class ExportResult:
    out: Path
    files: dict[str, int]
    """Path relative to out -> bytes."""
    verification: list[dict[str, Any]]
    pushed: str | None = None


def _check_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / "export.json").is_file():
        raise ExportError(
            f"{out}: exists and is not a ragtune export folder; choose another out or empty it"
        )


def _examples(cfg: ExportConfig) -> list[Any]:
    from ragtune.export.verify import SAMPLES

    if not cfg.data:
        return SAMPLES
    from ragtune.data.importers import load_examples

    examples = load_examples(cfg.data, cfg.format)[: cfg.verify_n]
    if not examples:
        raise ExportError(f"{cfg.data}: no examples to verify with")
    return examples


def _copy_adapter(adapter: Path, dest: Path, base: str) -> None:
    from ragtune.export.card import HUB_IDS

    shutil.copytree(adapter, dest)
    cfg_file = dest / "adapter_config.json"
    acfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    # The training run points at a local cache folder; the hub id lets peft find the base.
    acfg["base_model_name_or_path"] = HUB_IDS.get(base, acfg.get("base_model_name_or_path"))
    atomic.write_json(cfg_file, acfg)


def _write_ggufs(
    cfg: ExportConfig, model: Any, tokenizer: Any, gdir: Path, name: str, threads: int
) -> tuple[list[Path], dict[str, str]]:
    """model-f16.gguf, then each requested type from it; (files, quantization notes)."""
    from ragtune.export import gguf_write, quantize

    f16 = gguf_write.write_gguf(
        model, tokenizer, gdir / "model-f16.gguf", name=name, pre_tokenizer=cfg.pre_tokenizer
    )
    ggufs, notes = [], {}
    for q in cfg.quant:
        path = gdir / f"model-{q}.gguf"
        if q == "f32":
            gguf_write.write_gguf(
                model, tokenizer, path, ftype="f32", name=name, pre_tokenizer=cfg.pre_tokenizer
            )
        elif q != "f16" and (note := quantize.quantize(f16, path, q, threads)):
            notes[f"gguf/{path.name}"] = note
        ggufs.append(path)
    return ggufs, notes


def _verify(
    cfg: ExportConfig, ref: Any, ggufs: list[Path], tmp: Path, threads: int, n_ctx: int
) -> list[dict[str, Any]]:
    """One verification row per written file, each checked against the reference."""
    from ragtune.export import verify

    def check(path: Path, lora: Path | None = None) -> dict[str, Any]:
        return verify.check_gguf(
            path,
            ref,
            lora=lora,
            threads=threads,
            n_ctx=n_ctx,
            max_new_tokens=cfg.max_new_tokens,
            min_logit_cosine=cfg.min_logit_cosine,
        )

    rows = [check(p) for p in ggufs]
    if "lora" in cfg.to:
        rows.append(check(tmp / "gguf" / "base-f16.gguf", tmp / "gguf" / "adapter-lora.gguf"))
    if "merged" in cfg.to:
        rows.append(verify.check_merged(tmp / "merged", ref, cfg.min_logit_cosine))
    return rows


def _write(cfg: ExportConfig, tmp: Path, adapter: Path | None, threads: int) -> dict[str, Any]:
    """Write every requested file into `tmp`; returns what the cards and export.json need."""
    from ragtune.export import gguf_lora, gguf_write, merge, modelfile, verify
    from ragtune.models import check_adapter_fits, load_model

    name = cfg.name or Path(cfg.out).resolve().name
    model, tokenizer = load_model(cfg.model, runtime.torch_dtype("fp32"), "cpu")
    if adapter is not None:
        check_adapter_fits(model, adapter)  # before the LoRA GGUF reads it
    config = model.config
    n_ctx = min(cfg.num_ctx, int(config.max_position_embeddings))
    gdir = tmp / "gguf"
    if {"gguf", "lora"} & set(cfg.to):
        gdir.mkdir()
    modelfile_text = None
    if "ollama" in cfg.to:  # before the slow steps: an untranslatable template fails fast
        modelfile_text = modelfile.modelfile_text(
            f"model-{cfg.quant[0]}.gguf", tokenizer, cfg.prompt, n_ctx
        )
    if "lora" in cfg.to:
        assert adapter is not None  # checked by ExportConfig
        gguf_write.write_gguf(
            model,
            tokenizer,
            gdir / "base-f16.gguf",
            name=f"{name}-base",
            pre_tokenizer=cfg.pre_tokenizer,
        )
        gguf_lora.write_lora_gguf(adapter, config, gdir / "adapter-lora.gguf", name=name)
    if adapter is not None:
        model = merge.merge_adapter(model, str(adapter)).eval()
    n_params = sum(p.numel() for p in model.parameters())
    examples = _examples(cfg)
    answer = bool({"gguf", "lora"} & set(cfg.to))  # answers are compared for GGUFs only
    ref = (
        verify.reference(model, tokenizer, examples, cfg.prompt, cfg.max_new_tokens, answer)
        if cfg.verify and (answer or "merged" in cfg.to)
        else None
    )
    ggufs: list[Path] = []
    notes: dict[str, str] = {}
    if "gguf" in cfg.to:
        ggufs, notes = _write_ggufs(cfg, model, tokenizer, gdir, name, threads)
        if modelfile_text is not None:
            atomic.write_text(gdir / "Modelfile", modelfile_text)
    if "adapter" in cfg.to and adapter is not None:
        _copy_adapter(adapter, tmp / "adapter", cfg.model)
    if "merged" in cfg.to:
        merge.save_merged(model, tokenizer, tmp / "merged", cfg.dtype)
    del model  # the fp32 weights are no longer needed; llama.cpp loads next

    rows = _verify(cfg, ref, ggufs, tmp, threads, n_ctx) if ref is not None else []
    if "gguf" in cfg.to and "f16" not in cfg.quant:
        (gdir / "model-f16.gguf").unlink()  # only the quantization source
    reference = {"engine": "transformers fp32", "answers": ref.answers} if ref else None
    return {
        "name": name,
        "config": config,
        "n_params": n_params,
        "verification": rows,
        "reference": reference,
        "quantization_notes": notes,
    }


def _files(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ("README.md", "export.json", "export_config.yaml")
    }


def run(cfg: ExportConfig) -> ExportResult:
    from ragtune.export import card, hub

    out = Path(cfg.out)
    _check_out(out)
    atomic.refuse_overwriting_inputs(
        [out], {"model": cfg.model, "adapter": cfg.adapter, "data": cfg.data}
    )
    adapter = Path(adapter_dir(cfg.adapter)) if cfg.adapter else None
    evals = card.find_evals(adapter, cfg.eval_metrics)  # a missing file fails before the work
    threads = runtime.thread_count(cfg.runtime.threads)
    runtime.set_torch_threads(threads)
    atomic.remove_stale(out.parent)  # what a killed export left beside out
    tmp = atomic.temp_dir_beside(out)
    try:
        info = _write(cfg, tmp, adapter, threads)
        files = _files(tmp)
        train_cfg, train_metrics = card.read_run(adapter) if adapter else (None, None)
        text = card.card_text(
            card.CardInfo(
                name=info["name"],
                base=cfg.model,
                architecture=(info["config"].architectures or ["?"])[0],
                n_params=info["n_params"],
                adapter=cfg.adapter,
                train_config=train_cfg,
                train_metrics=train_metrics,
                evals=evals,
                verification=info["verification"],
                files=list(files.items()),
                prompt=cfg.prompt,
            )
        )
        for folder in (tmp, tmp / "merged", tmp / "gguf", tmp / "adapter"):
            if folder.is_dir():
                atomic.write_text(folder / "README.md", text)
        save_config(cfg, tmp / "export_config.yaml")
        summary = {
            "files": files,
            "verification": info["verification"],
            "reference": info["reference"],
            "quantization_notes": info["quantization_notes"],
            "pushed": None,
        }
        atomic.write_json(tmp / "export.json", summary)
        atomic.publish_dir(tmp, out)  # an earlier export there is replaced whole
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pushed = None
    if cfg.push_to_hub:
        folder = out / ("merged" if "merged" in cfg.to else "adapter")
        pushed = hub.push(folder, cfg.push_to_hub, private=cfg.hub_private)
        atomic.write_json(out / "export.json", {**summary, "pushed": pushed})
    return ExportResult(out, files, info["verification"], pushed)


Config = ExportConfig


def show(result: ExportResult) -> None:
    for path, size in result.files.items():
        print(f"{size / 1e6:>10.1f} MB  {result.out / path}")
    for r in result.verification:
        agree = r.get("agreement")
        print(
            f"verified {r['file']} ({r['engine']}): logit cosine {r['logit_cosine']:.4f}"
            + (f", answers agree {agree:.0f}% of {r['n']}" if agree is not None else "")
            + (f", F1 {r['f1']:.1f} vs {r['f1_transformers']:.1f}" if "f1" in r else "")
        )
    if result.pushed:
        print(f"pushed to {result.pushed}")
