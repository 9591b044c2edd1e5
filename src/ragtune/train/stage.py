"""`ragtune train`: LoRA (or QLoRA / full) fine-tuning with loss on the answer tokens only.

Built on the transformers Trainer, so `accelerate launch -m ragtune.cli train ...` gives
multi-GPU, DeepSpeed and FSDP with no extra code. On CPU it picks bf16 autocast where the
probe measured it faster (`ragtune.probe`), packed batches (no padding) and the free-core
thread count. Writes into `out`: `adapter/` (or `model/` for full fine-tuning), checkpoints
(resumable with resume=true), `train_config.yaml` (resolved), `train_metrics.json`,
`loss_curve.png`, and `train_run.json` (the run's identity).

    result = run(TrainConfig(data="train.jsonl", eval_data="eval.jsonl", out="runs/x"))
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune import allocator, atomic, runs, runtime
from ragtune.config import ConfigError, save_config
from ragtune.data.augment import training_split
from ragtune.data.importers import load_examples
from ragtune.data.split import sample
from ragtune.example import Example, write_jsonl
from ragtune.train.config import PRESETS, TrainConfig, resolve_defaults

Config = TrainConfig


@dataclass
class TrainResult:
    out: Path
    adapter: Path
    """The trained weights: adapter/, or model/ after a full fine-tune."""
    metrics: dict[str, Any]


def _load_split(cfg: TrainConfig) -> tuple[list[Example], list[Example]]:
    train = load_examples(cfg.data, cfg.format)
    evals = load_examples(cfg.eval_data, cfg.format) if cfg.eval_data else None
    train, held_out = training_split(
        train, evals, cfg.eval_fraction, cfg.seed, cfg.max_examples, cfg.augment
    )
    if not train:
        raise ConfigError(f"{cfg.data}: no training examples")
    return train, held_out


def training_args(
    cfg: TrainConfig, out: Path, rt: runtime.Runtime, packed: bool, n_train: int, do_eval: bool
) -> Any:
    """The transformers TrainingArguments of a resolved config (`resolve_defaults` ran)."""
    import torch
    from transformers import TrainingArguments

    if not (cfg.batch_size and cfg.grad_accum and cfg.epochs and cfg.lr):
        raise ValueError("training_args: run resolve_defaults on the config first")
    steps_per_epoch = math.ceil(n_train / (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    eval_steps = cfg.eval_steps or max(1, total_steps // 5)
    return TrainingArguments(
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
        bf16=rt.dtype == torch.bfloat16,
        fp16=rt.dtype == torch.float16,
        use_cpu=rt.device == "cpu",
        seed=cfg.seed,
        # padded batches: similar lengths together; packed ones have no padding to save
        train_sampling_strategy="random" if packed else "group_by_length",
        include_num_input_tokens_seen="all" if packed else "non_padding",
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=True,  # ProgressBar shows loss, tokens/s and ETA instead
        dataloader_num_workers=0,
        prediction_loss_only=True,  # eval needs the loss only; never gather logits
        # The fused AdamW kernel took 0.55 s a step on CPU for 5M LoRA weights (15% of the
        # step); the foreach one takes 0.03 s. On CUDA fused is the faster one.
        optim="adamw_torch" if rt.device == "cpu" else "adamw_torch_fused",
        activation_checkpointing=cfg.gradient_checkpointing or None,
        activation_checkpointing_kwargs={"use_reentrant": False}
        if cfg.gradient_checkpointing
        else None,
    )


def run(cfg: TrainConfig) -> TrainResult:
    """Train in `cfg.out`, which this run holds (locked, identified) until it ends."""
    if not cfg.data:
        raise ConfigError("data: a training data file is required (data=path)")
    out = Path(cfg.out)
    inputs = {"data": cfg.data, "eval_data": cfg.eval_data}
    atomic.refuse_overwriting_inputs([out / name for name in runs.OUTPUTS["train"]], inputs)
    train_ex, eval_ex = _load_split(cfg)
    if cfg.calibrate.enabled and cfg.calibrate.probe:  # fail now, not after training
        from ragtune.eval import refusal_probe

        refusal_probe.check_can_fit(train_ex, f"training examples in {cfg.data}")
    # The identity of the resolved config: the same whether the user passes the preset's
    # values or the saved train_config.yaml.
    cfg = resolve_defaults(cfg, len(train_ex))
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        # Under `accelerate launch` every process runs this; the first one on each machine
        # holds the folder and checks its identity, the others train beside it.
        return _train(cfg, out, train_ex, eval_ex, resume=cfg.resume)
    ident = runs.identity("train", cfg, inputs, ignore=IDENTITY_IGNORES)
    had_files = out.is_dir() and any(out.iterdir())
    with runs.claim(out, ident, "train", resume=cfg.resume, overwrite=cfg.overwrite) as same:
        if same and runs.train_finished(out):
            print(f"train: {out} holds this run, finished; reusing it (--overwrite to redo)")
            metrics = json.loads((out / runs.TRAIN_METRICS).read_text(encoding="utf-8"))
            final = out / (runs.FULL_MODEL if cfg.method == "full" else runs.ADAPTER)
            return TrainResult(out=out, adapter=final, metrics=metrics)
        if cfg.resume and not same and had_files:
            print(f"resume: no earlier state of this run in {out}; starting from scratch")
        return _train(cfg, out, train_ex, eval_ex, resume=same)


# Keys that change how a run runs, not what it trains: a resume may change them.
IDENTITY_IGNORES = (
    "resume",
    "overwrite",
    "out",
    "data",  # paths: their content is hashed instead
    "eval_data",
    "runtime",
    "logging_steps",
    "save_total_limit",
    "gradient_checkpointing",
    "calibrate",  # chosen after training, from the same weights; `ragtune calibrate` redoes it
)


def _train(
    cfg: TrainConfig, out: Path, train_ex: list[Example], eval_ex: list[Example], resume: bool
) -> TrainResult:
    # Heavy imports here, not at the top: the CLI imports this module to print --help.
    import torch
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer

    from ragtune.models import model_config
    from ragtune.train import attention, checkpoints
    from ragtune.train.batches import EncodedDataset, collate, collate_packed, encode_all
    from ragtune.train.budget import TimeBudget, saved_length
    from ragtune.train.callbacks import PagePurge, ProgressBar, plot_loss_curve
    from ragtune.train.loss import answer_loss, supports_logits_to_keep, weighted_answer_loss
    from ragtune.train.model import build_model

    layer = model_config(cfg.model)
    rt = runtime.resolve(cfg.runtime, layer)
    if rt.device == "cpu":
        runtime.set_torch_threads(rt.threads)
    eager_max_len, attention_probe = None, None
    if cfg.attention == "auto" and rt.device == "cpu" and layer:
        eager_max_len, attention_probe = attention.measured_crossover(layer, rt.dtype, rt.threads)
        how = "cached" if attention_probe["cached"] else "measured now"
        print(
            f"runtime: attention auto -> matmul-softmax up to {eager_max_len} tokens, "
            f"sdpa above ({how})",
            flush=True,
        )
    torch.manual_seed(cfg.seed)

    save_config(cfg, out / runs.TRAIN_CONFIG)
    first_process = int(os.environ.get("RANK", "0")) == 0  # under accelerate: one writer
    if eval_ex and first_process:  # kept for `ragtune calibrate`; what eval loss was on
        write_jsonl(out / runs.HELDOUT, eval_ex)
    model, tokenizer = build_model(
        cfg.model,
        cfg.method,
        cfg.lora,
        attention_impl=cfg.attention,
        device=rt.device,
        dtype=rt.dtype,
        seed=cfg.seed,
        eager_max_len=eager_max_len,
    )
    # Packed rows need ragtune's CPU attention to keep examples apart; other kernels (sdpa or
    # flash on GPU, or one the user named) get right-padded, length-grouped batches.
    packed = model.config._attn_implementation == attention.NAME
    train_rows = encode_all(tokenizer, train_ex, cfg.prompt, cfg.max_length)
    eval_rows = encode_all(tokenizer, eval_ex, cfg.prompt, cfg.max_length)
    do_eval = bool(eval_rows)
    answer_only = supports_logits_to_keep(model)
    loss_fn = answer_loss if answer_only else None
    weight = float(cfg.refusal_loss_weight if cfg.refusal_loss_weight is not None else 1.0)
    preset_weight = PRESETS[cfg.preset]["refusal_loss_weight"]
    if weight != 1.0 and not answer_only and weight == preset_weight:
        # The preset's choice, not the user's: train as before rather than stop.
        print(f"train: this model takes no logits_to_keep; refusal_loss_weight 1 instead of "
              f"the {cfg.preset} preset's {weight}", flush=True)  # fmt: skip
        weight = cfg.refusal_loss_weight = 1.0
    if weight != 1.0:
        if not answer_only:
            raise ConfigError(
                "refusal_loss_weight: this model's forward takes no logits_to_keep, so the "
                "answer-only loss that weights refusals is not available; leave it at 1"
            )
        refusals = [
            tokenizer(r, add_special_tokens=False)["input_ids"]
            for r in (cfg.prompt.refusal_en, cfg.prompt.refusal_zh)
        ]
        loss_fn = weighted_answer_loss(refusals, weight)
    progress = ProgressBar()
    callbacks: list[Any] = [progress]
    if do_eval and cfg.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    budget, decided = None, saved_length(out) if resume else None
    args = training_args(cfg, out, rt, packed, len(train_rows), do_eval)
    if decided is not None:
        # A resumed run keeps the length its budget chose: set up front, so a run killed
        # after its last step (during calibration, say) does not take one step more.
        args.max_steps = int(decided["max_steps"])
        print(f"train: time budget: keeping the {args.max_steps} steps chosen before")
    elif cfg.time_budget_min > 0:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError(
                "time_budget_min: each process would time its own steps and stop at its own "
                "length; under accelerate launch set max_steps instead"
            )
        per_step = int(cfg.batch_size or 1) * int(cfg.grad_accum or 1)
        budget = TimeBudget(
            cfg.time_budget_min * 60, out, eval_examples=len(eval_rows), examples_per_step=per_step
        )
        callbacks.append(budget)
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=collate_packed(answer_only)
        if packed
        else collate(tokenizer.pad_token_id, answer_only),
        compute_loss_func=loss_fn,
        train_dataset=EncodedDataset(train_rows),
        eval_dataset=EncodedDataset(eval_rows) if do_eval else None,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # raw log dicts on stdout; ProgressBar shows them
    last = checkpoints.resume_point(out) if resume else None
    t0 = time.perf_counter()
    # Measured on CPU training only; a GPU run's host allocations are not its bottleneck.
    keep = allocator.pages_kept() if rt.device == "cpu" else nullcontext("not on CPU")
    with keep as freed_pages:
        if freed_pages == "kept":
            trainer.add_callback(PagePurge(allocator.purge, allocator.PURGE_EVERY))
        train_out = trainer.train(resume_from_checkpoint=str(last) if last else None)
    wall = time.perf_counter() - t0

    final_dir = out / (runs.FULL_MODEL if cfg.method == "full" else runs.ADAPTER)
    tmp = atomic.temp_dir_beside(final_dir)  # a kill mid-save leaves no half adapter
    model.save_pretrained(tmp)  # the best checkpoint's weights when eval ran
    tokenizer.save_pretrained(tmp)
    atomic.publish_dir(tmp, final_dir)
    state, loss = trainer.state, float(train_out.training_loss)
    del trainer, model  # calibration loads the weights as eval will: free these first
    calibration = _calibrate(cfg, final_dir, train_ex, eval_ex, rt) if first_process else None
    metrics = {
        "model": cfg.model,
        "method": cfg.method,
        "train_examples": len(train_rows),
        "eval_examples": len(eval_rows),
        **_state_metrics(state, loss, wall, progress.tokens0),
        "resumed_from": str(last) if last else None,
        "answer_logits_only": answer_only,
        "batches": "packed" if packed else "padded",
        "device": rt.device,
        "dtype": str(rt.dtype).replace("torch.", ""),
        "threads": rt.threads if rt.device == "cpu" else None,
        "dtype_probe": rt.dtype_probe,
        "threads_probe": rt.threads_probe,
        "allocator": rt.allocator,
        "freed_pages": freed_pages,
        "attention_probe": attention_probe,
        "time_budget": budget.decision if budget else decided,
        "refusal_calibration": calibration,
    }
    plot_loss_curve(state.log_history, out / runs.LOSS_CURVE)
    atomic.write_json(out / runs.TRAIN_METRICS, metrics)  # last: it marks the run finished
    return TrainResult(out=out, adapter=final_dir, metrics=metrics)


def _calibrate(
    cfg: TrainConfig,
    final: Path,
    train: list[Example],
    held_out: list[Example],
    rt: runtime.Runtime,
) -> dict[str, Any] | None:
    """Choose the refusal threshold on the held-out split and save it with the weights
    (`final`: the adapter, or a full fine-tune's model), with the refusal probe fitted on the
    training examples first when `calibrate.probe` asks; a summary for the metrics, or None
    when there is nothing to calibrate on."""
    from ragtune.eval import calibrate
    from ragtune.generation.load import GenerateConfig, load_generator

    if not cfg.calibrate.enabled:
        return None
    if not calibrate.has_both_kinds(held_out):
        print("calibrate: skipped, the held-out split lacks answerable or unanswerable questions")
        return None
    examples = sample(held_out, cfg.calibrate.max_examples, cfg.seed)
    full = cfg.method == "full"
    gen = GenerateConfig(
        model=str(final) if full else cfg.model,
        adapter=None if full else str(final),
        refusal_score="start",
    )
    engine = load_generator(gen, rt)
    calibrate.prepare_probe(
        engine, final, train, cfg.prompt, cfg.calibrate, cfg.max_length, cfg.seed
    )
    record = calibrate.calibrate(
        engine, examples, cfg.prompt, cfg.calibrate, cfg.max_length, gen.model, str(rt.dtype)
    )
    record["path"] = str(calibrate.save(final, record))
    calibrate.show(record)
    return {
        k: record[k]
        for k in (
            "threshold",
            "thresholds_by_lang",
            "target",
            "chosen",
            "chosen_interval",
            "held_out",
            "score_auc",
            "score_auc_by_lang",
            "score",
            "probe",
        )
    }


def _state_metrics(state: Any, train_loss: float, wall: float, tokens0: int) -> dict[str, Any]:
    """Steps, losses, tokens/s and memory from the Trainer's state after training; `tokens0`
    is the count a resumed run started from, so tokens/s covers this session's work only."""
    from ragtune.train.callbacks import peak_rss_mb

    history = state.log_history
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    tokens_total = int(state.num_input_tokens_seen or 0)
    tokens = tokens_total - tokens0
    return {
        "steps": state.global_step,
        "epochs": round(float(state.epoch or 0), 3),
        "train_loss": round(train_loss, 4),
        "first_loss": next((h["loss"] for h in history if "loss" in h), None),
        "eval_loss_first": eval_losses[0] if eval_losses else None,
        "eval_loss_best": min(eval_losses) if eval_losses else None,
        "eval_losses": eval_losses,
        "best_checkpoint": state.best_model_checkpoint,
        "wall_s": round(wall, 1),
        "tokens_seen": tokens_total,
        "tokens_this_session": tokens,
        "tokens_per_s": round(tokens / wall, 1) if wall > 0 else None,
        "peak_rss_mb": peak_rss_mb(),
    }


def show(result: TrainResult) -> None:
    print(json.dumps(result.metrics, ensure_ascii=False, indent=2, default=str))
    print(f"adapter: {result.adapter}")
