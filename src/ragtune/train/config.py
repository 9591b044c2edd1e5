"""`ragtune train`'s configuration: TrainConfig, its LoRA section, and the presets.

Each field is documented once, right under it; `ragtune train --help` prints these texts.
`resolve_defaults` fills what the preset decides (rank, learning rate, batch, epochs), and the
filled copy is what the run saves as `train_config.yaml`.

    cfg = resolve_defaults(TrainConfig(data="train.jsonl", preset="quick"), n_train=400)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ragtune.config import require
from ragtune.data.augment import AugmentSection
from ragtune.eval.calibrate import CalibrateSection
from ragtune.prompt.grounded import PromptConfig
from ragtune.runtime import RuntimeSection

PRESETS: dict[str, dict[str, Any]] = {
    # examples_seen: epochs are chosen so the model sees about this many examples in total
    "quick": {
        "r": 8,
        "alpha": 16,
        "lr": 3e-4,
        "examples_seen": 600,
        "batch_size": 4,
        "grad_accum": 1,
        "refusal_loss_weight": 1.0,
    },
    "balanced": {
        "r": 16,
        "alpha": 32,
        # One pass at lr 3e-4 (the real-data benchmark's ~540 training examples: 1 epoch).
        # Measured on SQuAD 2.0 + CMRC (benchmarks/RESULTS.md, issue 12): it beat lr 1e-4 on
        # Qwen2.5-0.5B (answerable F1 67 vs 53), and on SmolLM2 it beat the former 2e-4 x
        # 1,500 examples seen (F1 28.8 vs 28.3, false refusals 30% vs 40%). More examples
        # seen (1,207 examples, one pass) made Qwen refuse more answerable questions.
        "lr": 3e-4,
        "examples_seen": 500,
        "batch_size": 4,
        "grad_accum": 2,
        # Measured on SQuAD 2.0 + CMRC with Qwen2.5-0.5B (benchmarks/RESULTS.md, ablation):
        # 0.5 lifted answerable F1 from 40 to 69 and cut false refusals from 54% to 18%.
        "refusal_loss_weight": 0.5,
    },
    "thorough": {
        "r": 32,
        "alpha": 64,
        "lr": 1e-4,
        "examples_seen": 4000,
        "batch_size": 4,
        "grad_accum": 4,
        "refusal_loss_weight": 1.0,
    },
}
MAX_AUTO_EPOCHS = 10.0
FULL_LR_SCALE = 1 / 30
"""A preset's lr is a LoRA learning rate. Full fine-tuning moves every weight, not a small
update beside frozen ones, and needs a far lower one: on the real-data benchmark
(Qwen2.5-0.5B, 2,000 examples, batch 8) the held-out loss after 48 steps was 0.70 at 3e-5 (a
tenth of balanced's 3e-4) and 0.47 at 1e-5 (a thirtieth); LoRA at 3e-4 was at 0.40-0.42 by
steps 50-97 (benchmarks/RESULTS.md). An explicit `lr` is used as given."""


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

    def __post_init__(self) -> None:
        require(self, "r", min=1)
        require(self, "alpha", min=1)
        require(self, "dropout", min=0, below=1)


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
    """Peak learning rate (default from the preset; a thirtieth of it for method=full)."""
    epochs: float | None = None
    """Passes over the data; default: chosen from the data size and preset (1 to 10)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run the epochs)."""
    refusal_loss_weight: float | None = None
    """Weight of the refusal sentence's tokens in the loss, against 1 for answers: below 1,
    the model is pushed less towards refusing (a lever against refusing answerable
    questions). Default from the preset: balanced 0.5 (measured on real data), quick and
    thorough 1."""
    time_budget_min: float = 0.0
    """Minutes the training loop may take (0: no limit). The first steps are timed and, if
    the run would take longer, it is shortened to fit, its learning-rate schedule compressed
    with it (`ragtune.train.budget`); a resumed run keeps the length chosen first."""
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
    """Continue the run in out from its newest complete checkpoint after an interruption
    (only the same run: same config, data and model)."""
    overwrite: bool = False
    """Replace another run's state in out (its checkpoints, adapter and metrics) instead of
    stopping."""
    attention: str = "auto"
    """Attention kernel: auto (on CPU, ragtune.train.attention: packed batches, matmul-softmax up to
    400 tokens and sdpa beyond; sdpa on GPU), or any transformers attn_implementation (eager,
    sdpa...), which trains on padded, length-grouped batches."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: ~30% slower, a fraction of the memory.
    Activations dominate memory: a 0.5B LoRA run (batch 4, packed, max_length 1,024) peaked
    at 5.1 GB RSS without it; turn it on for longer contexts or larger batches."""
    logging_steps: int = 5
    """Log loss and tokens/s every N optimizer steps."""
    max_examples: int | None = None
    """Train on at most N examples: whole articles drawn at random with seed (file order
    kept), as in eval and prepare."""
    seed: int = 0
    """Random seed for shuffling, splits and LoRA init."""
    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    """Device, compute dtype (bf16 autocast where the hardware has it) and CPU threads."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """Grounded prompt settings (must match what eval and serving use)."""
    augment: AugmentSection = field(default_factory=AugmentSection)
    """Synthetic unanswerable and counterfactual examples added to the training data and,
    from its own documents, to the held-out split (`ragtune.data.augment`)."""
    calibrate: CalibrateSection = field(default_factory=CalibrateSection)
    """Refusal threshold chosen after training on the held-out split
    (`ragtune.eval.calibrate`), saved with the adapter (or a full fine-tune's model)."""

    def __post_init__(self) -> None:
        require(self, "lr", above=0)
        require(self, "epochs", above=0)
        require(self, "max_steps", min=1, allow=(-1,))
        require(self, "time_budget_min", min=0)
        require(self, "refusal_loss_weight", min=0)
        for key in ("batch_size", "grad_accum", "eval_steps", "logging_steps", "max_examples"):
            require(self, key, min=1)
        require(self, "save_total_limit", min=1)
        require(self, "max_length", min=32)
        require(self, "warmup", min=0)
        require(self, "weight_decay", min=0)
        require(self, "eval_fraction", min=0, below=1)
        require(self, "early_stopping_patience", min=0)


def method_lr(lora_lr: float, method: str) -> float:
    """The learning rate for `method` given a LoRA one: scaled by `FULL_LR_SCALE` for a full
    fine-tune, and rounded (3e-4 / 30 is 9.999999999999999e-06, which train_config.yaml
    would show)."""
    return round(lora_lr * (FULL_LR_SCALE if method == "full" else 1.0), 12)


def resolve_defaults(cfg: TrainConfig, n_train: int) -> TrainConfig:
    """A copy of `cfg` with preset-dependent fields filled in; the copy is what gets saved."""
    cfg = dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora))
    p = PRESETS[cfg.preset]
    # `is None`, never `or`: a 0 that slipped past the range checks must not become a default.
    cfg.lora.r = p["r"] if cfg.lora.r is None else cfg.lora.r
    cfg.lora.alpha = 2 * cfg.lora.r if cfg.lora.alpha is None else cfg.lora.alpha
    if cfg.lr is None:
        cfg.lr = method_lr(p["lr"], cfg.method)
    cfg.batch_size = p["batch_size"] if cfg.batch_size is None else cfg.batch_size
    cfg.grad_accum = p["grad_accum"] if cfg.grad_accum is None else cfg.grad_accum
    if cfg.refusal_loss_weight is None:
        cfg.refusal_loss_weight = p["refusal_loss_weight"]
    if cfg.epochs is None:
        cfg.epochs = round(min(MAX_AUTO_EPOCHS, max(1.0, p["examples_seen"] / max(1, n_train))), 2)
    return cfg
