"""`ragtune train`: LoRA (or QLoRA / full) fine-tuning with loss on the answer tokens only.

Built on the transformers Trainer, so `accelerate launch -m ragtune.cli train ...` gives
multi-GPU, DeepSpeed and FSDP with no extra code. On CPU it picks bf16 autocast where the
processor supports it, packed batches (no padding) and the free-core thread count. Writes into
`out`: `adapter/` (or `model/` for full fine-tuning), checkpoints (resumable with
resume=true), `train_config.yaml` (resolved), `train_metrics.json`, `loss_curve.png`.

    result = run(TrainConfig(data="train.jsonl", eval_data="eval.jsonl", out="runs/x"))
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ragtune import atomic, attention, runtime
from ragtune.config import save_config
from ragtune.data.example import Example
from ragtune.loss import answer_loss, answer_mask, supports_logits_to_keep
from ragtune.prompt import IGNORE_INDEX, PromptConfig, encode_example
from ragtune.train_callbacks import ProgressBar, peak_rss_mb, plot_loss_curve

PRESETS: dict[str, dict[str, Any]] = {
    # examples_seen: epochs are chosen so the model sees about this many examples in total
    "quick": {
        "r": 8,
        "alpha": 16,
        "lr": 3e-4,
        "examples_seen": 600,
        "batch_size": 4,
        "grad_accum": 1,
    },
    "balanced": {
        "r": 16,
        "alpha": 32,
        "lr": 2e-4,
        "examples_seen": 1500,
        "batch_size": 4,
        "grad_accum": 2,
    },
    "thorough": {
        "r": 32,
        "alpha": 64,
        "lr": 1e-4,
        "examples_seen": 4000,
        "batch_size": 4,
        "grad_accum": 4,
    },
}
MAX_AUTO_EPOCHS = 10.0


@dataclass
class LoraSection:
    r: int | None = None
    """LoRA rank (default from the preset: quick 8, balanced 16, thorough 32)."""
    alpha: int | None = None
    """LoRA scaling numerator; the update is scaled by alpha/r (default 2*r)."""
    dropout: float = 0.0
    """Dropout on the LoRA input. Off by default: on CPU it cost 30% of training speed (demo
    set, 10 steps: 311 tokens/s at 0.05 vs 438 at 0), and short runs on small data rarely
    overfit enough to need it."""
    target_modules: str = "all-linear"
    """Which layers get adapters: all-linear, or a comma list such as q_proj,v_proj."""


@dataclass
class TrainConfig:
    data: str = ""
    """Training data: a file in any supported format (see `ragtune data --help`)."""
    eval_data: str | None = None
    """Held-out data for eval loss and early stopping; if unset, eval_fraction of data is held out by group."""
    format: str = "auto"
    """Format of data/eval_data; auto detects it."""
    model: str = "smollm2-135m"
    """Base model spec: alias, local folder, .gguf file or hub id."""
    out: str = "runs/train"
    """Output folder (adapter, checkpoints, config, metrics, loss curve)."""
    preset: Literal["quick", "balanced", "thorough"] = "balanced"
    """Defaults for rank, learning rate, batch and epochs: quick, balanced or thorough."""
    method: Literal["lora", "qlora", "full"] = "lora"
    """lora; qlora (4-bit base, needs CUDA and bitsandbytes); full (all weights)."""
    lora: LoraSection = field(default_factory=LoraSection)
    """LoRA settings."""
    lr: float | None = None
    """Peak learning rate (default from the preset)."""
    epochs: float | None = None
    """Passes over the data; default: chosen from the data size and preset (1 to 10)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run the epochs)."""
    batch_size: int | None = None
    """Examples per forward pass (default from the preset)."""
    grad_accum: int | None = None
    """Forward passes per optimizer step (default from the preset)."""
    max_length: int = 1024
    """Tokens per example; longer prompts have their contexts shortened, never the answer."""
    warmup: float = 0.05
    """Linear warmup: a fraction of the total steps (<1) or a number of steps (>=1)."""
    scheduler: str = "cosine"
    """Learning-rate schedule after warmup (cosine, linear, constant...)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    eval_fraction: float = 0.1
    """Share of data held out (by group) for eval loss when eval_data is unset; 0 disables eval."""
    eval_steps: int | None = None
    """Evaluate (and checkpoint) every N optimizer steps; default: about 5 times per run."""
    early_stopping_patience: int = 3
    """Stop after this many evaluations without a lower eval loss (0 disables)."""
    save_total_limit: int = 2
    """Checkpoints kept on disk (the best one is always kept)."""
    resume: bool = False
    """Continue from the newest checkpoint in out after an interruption."""
    attention: str = "auto"
    """Attention kernel: auto (on CPU, ragtune.attention: packed batches, matmul-softmax up to
    400 tokens and sdpa beyond; sdpa on GPU), or any transformers attn_implementation (eager,
    sdpa...), which trains on padded, length-grouped batches."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: ~30% slower, a fraction of the memory.
    Activations dominate memory: a 0.5B LoRA run (batch 4, packed, max_length 1,024) peaked
    at 5.1 GB RSS without it; turn it on for longer contexts or larger batches."""
    logging_steps: int = 5
    """Log loss and tokens/s every N optimizer steps."""
    max_examples: int | None = None
    """Use at most this many training examples (after shuffling with seed)."""
    seed: int = 0
    """Random seed for shuffling, splits and LoRA init."""
    dtype: str = "auto"
    """auto (bf16 autocast where supported), bf16, fp16 or fp32."""
    device: str = "auto"
    """auto, cpu or cuda."""
    threads: str = "auto"
    """CPU threads: a number, or auto for the cores free right now."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """Grounded prompt settings (must match what eval and serving use)."""

    def __post_init__(self) -> None:
        if self.eval_fraction < 0 or self.eval_fraction >= 1:
            raise ValueError("eval_fraction must be in [0, 1)")
        if self.warmup < 0:
            raise ValueError("warmup must be >= 0")
        if self.lr is not None and self.lr <= 0:
            raise ValueError("lr must be > 0")


@dataclass
class TrainResult:
    out: Path
    adapter: Path
    metrics: dict[str, Any]


class EncodedDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def collate(pad_id: int, answer_logits_only: bool = False):
    """Right-pad a batch; padding gets label -100 and attention 0. With `answer_logits_only`,
    also mark the answer positions so the model projects only those (`ragtune.loss`)."""

    def fn(rows: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        batch: dict[str, Any] = {"input_ids": ids, "labels": labels, "attention_mask": mask}
        batch["use_cache"] = False  # training never reads a KV cache, so do not build one
        if answer_logits_only:
            batch["logits_to_keep"] = answer_mask(labels)
        return batch

    return fn


def collate_packed(answer_logits_only: bool = False):
    """One row of all the batch's examples back to back, no padding: `position_ids` restart at
    each example and `cu_seq_lens_q/k` mark the boundaries, which `ragtune.attention` uses to
    keep every example's attention to itself. Each example's first label is dropped: inside a
    packed row it would be "predicted" from the previous example's last token."""

    def fn(rows: list[dict[str, Any]]) -> dict[str, Any]:
        lengths = [len(r["input_ids"]) for r in rows]
        ids = torch.tensor([t for r in rows for t in r["input_ids"]])[None]
        labels = torch.tensor([t for r in rows for t in r["labels"]])[None]
        bounds = torch.tensor([0, *lengths]).cumsum(0)
        labels[0, bounds[:-1]] = IGNORE_INDEX
        position_ids = torch.cat([torch.arange(n) for n in lengths])[None]
        cu = bounds.to(torch.int32)
        batch = {
            "input_ids": ids,
            "labels": labels,
            "position_ids": position_ids,
            "cu_seq_lens_q": cu,
            "cu_seq_lens_k": cu,
            "use_cache": False,
        }
        if answer_logits_only:
            batch["logits_to_keep"] = answer_mask(labels)
        return batch

    return fn


def resolve_defaults(cfg: TrainConfig, n_train: int) -> TrainConfig:
    """A copy of `cfg` with preset-dependent fields filled in; the copy is what gets saved."""
    cfg = dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora))
    p = PRESETS[cfg.preset]
    cfg.lora.r = cfg.lora.r or p["r"]
    cfg.lora.alpha = cfg.lora.alpha or 2 * cfg.lora.r
    cfg.lr = cfg.lr or p["lr"]
    cfg.batch_size = cfg.batch_size or p["batch_size"]
    cfg.grad_accum = cfg.grad_accum or p["grad_accum"]
    if cfg.epochs is None:
        cfg.epochs = round(min(MAX_AUTO_EPOCHS, max(1.0, p["examples_seen"] / max(1, n_train))), 2)
    return cfg


def _load_split(cfg: TrainConfig) -> tuple[list[Example], list[Example]]:
    import random

    from ragtune.data.importers import load_examples
    from ragtune.data.split import split_indices

    train = load_examples(cfg.data, cfg.format)
    if cfg.eval_data:
        evals = load_examples(cfg.eval_data, cfg.format)
    elif cfg.eval_fraction > 0 and len({e.group for e in train}) > 1:
        # held out by group and shared passage, exactly as `ragtune data prepare` splits
        train_idx, eval_idx, _ = split_indices(train, cfg.eval_fraction, cfg.seed)
        train, evals = [train[i] for i in train_idx], [train[i] for i in eval_idx]
    else:
        evals = []
    if cfg.max_examples is not None and len(train) > cfg.max_examples:
        train = random.Random(cfg.seed).sample(train, cfg.max_examples)
    if not train:
        raise ValueError(f"{cfg.data}: no training examples")
    return train, evals


def attention_kernel(cfg: TrainConfig, device: str) -> str:
    if cfg.attention != "auto":
        return cfg.attention
    if device == "cpu":
        return attention.register()
    return "sdpa"


def build_model(cfg: TrainConfig, device: str, dtype: torch.dtype) -> tuple[Any, Any]:
    """Base model + tokenizer with LoRA adapters attached (or all weights trainable for full)."""
    from peft import LoraConfig, get_peft_model

    from ragtune.models import load_model, resolve

    if cfg.method == "qlora":
        if not device.startswith("cuda"):
            raise ValueError(
                "method=qlora needs a CUDA GPU (4-bit bitsandbytes); use method=lora on CPU"
            )
        from peft import prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        from ragtune.models import load_tokenizer

        tokenizer = load_tokenizer(cfg.model)
        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
        model = AutoModelForCausalLM.from_pretrained(
            resolve(cfg.model), quantization_config=quant, dtype=dtype
        )
        model = prepare_model_for_kbit_training(model)
    else:
        # Full fine-tuning keeps fp32 master weights (autocast supplies bf16 compute), so small
        # updates are not rounded away. A LoRA base is frozen and needs no master copy: loading
        # it in the compute dtype halves its memory and spares autocast from casting every
        # weight on every forward. peft keeps the adapter weights themselves in fp32.
        base_dtype = torch.float32 if cfg.method == "full" else dtype
        model, tokenizer = load_model(cfg.model, base_dtype, device, attention_kernel(cfg, device))
    if cfg.method == "full":
        model.train()
        return model, tokenizer
    spec = cfg.lora.target_modules
    targets = spec if spec == "all-linear" else [t.strip() for t in spec.split(",") if t.strip()]
    assert cfg.lora.r and cfg.lora.alpha  # filled by resolve_defaults
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(cfg.seed)  # the adapter's init depends on the seed alone, not on loading
    peft_model = get_peft_model(model, lora)
    if dtype != torch.float32:
        # peft casts each LoRA input up to the adapter's fp32, and autocast casts it straight
        # back to bf16 for the matmul: two full-activation copies per layer, forward and
        # backward (10% of a CPU step). Under autocast the input can go in as it is.
        for module in peft_model.modules():
            if hasattr(module, "cast_input_dtype_enabled"):
                setattr(module, "cast_input_dtype_enabled", False)  # noqa: B010  (typed as Module attr)
    return peft_model, tokenizer


def encode_all(tokenizer: Any, examples: list[Example], cfg: TrainConfig) -> list[dict[str, Any]]:
    rows = []
    for ex in examples:
        enc = encode_example(tokenizer, ex, cfg.prompt, cfg.max_length)
        rows.append({"input_ids": enc["input_ids"], "labels": enc["labels"]})
    return rows


def run(cfg: TrainConfig) -> TrainResult:
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    if not cfg.data:
        raise ValueError("data: a training data file is required (data=path)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = runtime.pick_device(cfg.device)
    threads = runtime.set_threads(cfg.threads) if device == "cpu" else None
    dtype = runtime.pick_dtype(cfg.dtype, device)
    torch.manual_seed(cfg.seed)

    train_ex, eval_ex = _load_split(cfg)
    cfg = resolve_defaults(cfg, len(train_ex))
    save_config(cfg, out / "train_config.yaml")
    model, tokenizer = build_model(cfg, device, dtype)
    # Packed rows need ragtune's CPU attention to keep examples apart; other kernels (sdpa or
    # flash on GPU, or one the user named) get right-padded, length-grouped batches.
    packed = model.config._attn_implementation == attention.NAME
    train_rows = encode_all(tokenizer, train_ex, cfg)
    eval_rows = encode_all(tokenizer, eval_ex, cfg)

    assert cfg.batch_size and cfg.grad_accum and cfg.epochs and cfg.lr  # filled by resolve_defaults
    steps_per_epoch = math.ceil(len(train_rows) / (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    eval_steps = cfg.eval_steps or max(1, total_steps // 5)
    do_eval = bool(eval_rows)
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup if cfg.warmup < 1 else int(cfg.warmup),
        lr_scheduler_type=cfg.scheduler,
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if do_eval else "no",
        eval_steps=eval_steps if do_eval else None,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=do_eval,
        metric_for_best_model="eval_loss" if do_eval else None,
        greater_is_better=False,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=device == "cpu",
        seed=cfg.seed,
        # padded batches: similar lengths together; packed ones have no padding to save
        train_sampling_strategy="random" if packed else "group_by_length",
        include_num_input_tokens_seen="all" if packed else "non_padding",
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=True,  # ProgressBar below shows loss, tokens/s and ETA instead
        dataloader_num_workers=0,
        prediction_loss_only=True,  # eval needs the loss only; never gather logits
        # The fused AdamW kernel took 0.55 s a step on CPU for 5M LoRA weights (15% of the
        # step); the foreach one takes 0.03 s. On CUDA fused is the faster one.
        optim="adamw_torch" if device == "cpu" else "adamw_torch_fused",
        activation_checkpointing=cfg.gradient_checkpointing or None,
        activation_checkpointing_kwargs={"use_reentrant": False}
        if cfg.gradient_checkpointing
        else None,
    )
    answer_only = supports_logits_to_keep(model)
    callbacks: list[Any] = [ProgressBar()]
    if do_eval and cfg.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=collate_packed(answer_only)
        if packed
        else collate(tokenizer.pad_token_id, answer_only),
        compute_loss_func=answer_loss if answer_only else None,
        train_dataset=EncodedDataset(train_rows),
        eval_dataset=EncodedDataset(eval_rows) if do_eval else None,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # raw log dicts on stdout; ProgressBar shows them
    last = get_last_checkpoint(str(out)) if cfg.resume else None
    if cfg.resume and last is None:
        print(f"resume: no checkpoint in {out}, starting from scratch")
    t0 = time.perf_counter()
    train_out = trainer.train(resume_from_checkpoint=last)
    wall = time.perf_counter() - t0

    final_dir = out / ("model" if cfg.method == "full" else "adapter")
    model.save_pretrained(final_dir)  # the best checkpoint's weights when eval ran
    tokenizer.save_pretrained(final_dir)
    history = trainer.state.log_history
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    metrics = {
        "model": cfg.model,
        "method": cfg.method,
        "train_examples": len(train_rows),
        "eval_examples": len(eval_rows),
        "steps": trainer.state.global_step,
        "epochs": round(float(trainer.state.epoch or 0), 3),
        "train_loss": round(float(train_out.training_loss), 4),
        "first_loss": next((h["loss"] for h in history if "loss" in h), None),
        "eval_loss_first": eval_losses[0] if eval_losses else None,
        "eval_loss_best": min(eval_losses) if eval_losses else None,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "resumed_from": last,
        "wall_s": round(wall, 1),
        "tokens_seen": tokens,
        "tokens_per_s": round(tokens / wall, 1) if wall > 0 else None,
        "answer_logits_only": answer_only,
        "batches": "packed" if packed else "padded",
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "threads": threads,
        "peak_rss_mb": peak_rss_mb(),
    }
    atomic.write_json(out / "train_metrics.json", metrics)
    plot_loss_curve(history, out / "loss_curve.png")
    return TrainResult(out=out, adapter=final_dir, metrics=metrics)
