"""LoRA training on a tiny model: loss falls, base frozen, adapter changes, resume works."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from ragtune import allocator
from ragtune.example import Example, write_jsonl
from ragtune.runtime import RuntimeSection
from ragtune.train import stage as train
from ragtune.train.callbacks import ProgressBar
from ragtune.train.config import LoraSection, TrainConfig

EXAMPLES = [
    Example(
        id="a",
        question="Where is the Eiffel Tower?",
        contexts=["The Eiffel Tower is in Paris."],
        answers=["Paris"],
        group="g1",
    ),
    Example(
        id="b",
        question="Who founded Marlowe Station?",
        contexts=["Marlowe Station was founded by Ada Quill."],
        answers=["Ada Quill"],
        group="g2",
    ),
    Example(
        id="c",
        question="When was it built?",
        contexts=["It was built in 1889."],
        answers=["1889"],
        group="g3",
    ),
    Example(
        id="d",
        question="Who is the mayor?",
        contexts=["Marlowe is on the river Tessa."],
        answers=[],
        answerable=False,
        group="g4",
    ),
]


def _cfg(tmp_path: Path, model: Path, **kw: object) -> TrainConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "train.jsonl"
    write_jsonl(data, EXAMPLES)
    base = dict(
        data=str(data),
        model=str(model),
        out=str(tmp_path / "run"),
        lora=LoraSection(r=4, alpha=8, dropout=0.0),
        lr=3e-2,
        batch_size=4,
        grad_accum=1,
        max_steps=30,
        warmup=0.0,
        eval_fraction=0.0,
        logging_steps=1,
        runtime=RuntimeSection(threads=1, dtype="fp32"),
        scheduler="constant",
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_lora_lowers_loss_base_frozen_adapter_changed(tmp_path: Path, tiny_model_dir: Path) -> None:
    base_before = load_file(str(tiny_model_dir / "model.safetensors"))
    result = train.run(_cfg(tmp_path, tiny_model_dir))
    m = result.metrics
    assert m["steps"] == 30
    assert m["batches"] == "packed"  # CPU: examples back to back, no padding
    # attention=auto on CPU: the crossover was measured at the model's heads and recorded
    probe = m["attention_probe"]
    assert set(probe["seconds"]) == {"eager", "sdpa"} and probe["eager_max_len"] >= 0
    history = json.loads((tmp_path / "run" / "checkpoint-30" / "trainer_state.json").read_text())[
        "log_history"
    ]
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < losses[0] - 1.0, losses  # ln(vocab) ~ 6.4 at the start

    adapter = load_file(str(result.adapter / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: nonzero = trained
    assert not any("lora" not in k for k in adapter)  # only adapter weights are saved

    from transformers import AutoModelForCausalLM

    from ragtune.models import load_adapter

    model = load_adapter(AutoModelForCausalLM.from_pretrained(tiny_model_dir), result.adapter)
    for name, p in model.get_base_model().named_parameters():
        if "lora" in name:
            continue
        key = name.replace("base_layer.", "")
        assert torch.equal(p, base_before[key].to(p.dtype)), f"base weight {key} changed"
    for f in ("train_config.yaml", "train_metrics.json", "loss_curve.png"):
        assert (tmp_path / "run" / f).is_file()
    # The allocator's page switch ran around the loop and says what it did.
    expected = "kept" if allocator.loaded() == "jemalloc" else "system malloc"
    assert result.metrics["freed_pages"] == expected


def test_interrupted_run_resumes_and_finishes(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(tmp_path, tiny_model_dir, max_steps=6, eval_steps=2)

    def crash(self: object, args: object, state: object, control: object, **kw: object) -> None:
        if state.global_step == 5:  # type: ignore[attr-defined]
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(ProgressBar, "on_step_end", crash)
    with pytest.raises(KeyboardInterrupt):
        train.run(cfg)
    assert (tmp_path / "run" / "checkpoint-4").is_dir()
    assert not (tmp_path / "run" / "adapter").exists()
    monkeypatch.undo()

    result = train.run(_cfg(tmp_path, tiny_model_dir, max_steps=6, eval_steps=2, resume=True))
    assert result.metrics["resumed_from"].endswith("checkpoint-4")
    assert result.metrics["steps"] == 6
    assert (result.adapter / "adapter_model.safetensors").is_file()


def test_eval_loss_and_epochs_from_data_size(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = train.run(
        _cfg(
            tmp_path,
            tiny_model_dir,
            max_steps=-1,
            epochs=None,
            preset="quick",
            eval_fraction=0.25,
            eval_steps=2,
            early_stopping_patience=2,
        )
    )
    m = result.metrics
    assert m["train_examples"] == 3 and m["eval_examples"] == 1  # held out by group
    assert m["eval_loss_best"] is not None
    cfg_saved = (tmp_path / "run" / "train_config.yaml").read_text()
    assert "epochs: 10.0" in cfg_saved  # quick preset: 600 examples seen / 3, capped at 10


def test_qlora_refuses_without_cuda(tmp_path: Path, tiny_model_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="qlora needs a CUDA GPU"):
        train.run(
            _cfg(tmp_path, tiny_model_dir, method="qlora", runtime=RuntimeSection(device="cpu"))
        )


def test_full_finetuning_saves_a_whole_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    before = load_file(str(tiny_model_dir / "model.safetensors"))
    result = train.run(_cfg(tmp_path, tiny_model_dir, method="full", max_steps=5, lr=1e-3))
    assert result.adapter.name == "model"
    after = load_file(str(result.adapter / "model.safetensors"))
    assert set(after) == set(before)
    assert any(
        not torch.equal(after[k], before[k]) for k in before
    )  # weights were updated in place


@pytest.mark.gpu
def test_qlora_trains_on_cuda(tmp_path: Path, tiny_model_dir: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("bitsandbytes")
    result = train.run(
        _cfg(
            tmp_path,
            tiny_model_dir,
            method="qlora",
            runtime=RuntimeSection(device="cuda", dtype="bf16"),
            max_steps=10,
        )
    )
    assert result.metrics["steps"] == 10 and result.metrics["device"] == "cuda"
    assert (result.adapter / "adapter_model.safetensors").is_file()


def test_gradient_checkpointing_recomputes_and_trains_the_same(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With checkpointing every layer's MLP runs twice per step (forward, then again in the
    backward pass instead of keeping its activations), and the loss is the same. (The MLP is
    counted, not the decoder layer: transformers checkpoints the layer's own `forward`.)"""
    from transformers.models.llama import modeling_llama

    calls = [0]
    plain_forward = modeling_llama.LlamaMLP.forward

    def counted(self: Any, *a: Any, **kw: Any) -> Any:
        calls[0] += 1
        return plain_forward(self, *a, **kw)

    monkeypatch.setattr(modeling_llama.LlamaMLP, "forward", counted)
    plain = train.run(_cfg(tmp_path / "a", tiny_model_dir, max_steps=5)).metrics
    plain_calls, calls[0] = calls[0], 0
    ckpt = train.run(
        _cfg(tmp_path / "b", tiny_model_dir, max_steps=5, gradient_checkpointing=True)
    ).metrics
    assert plain_calls == 5 * 2  # 5 steps x 2 layers, no eval (eval_fraction=0)
    assert calls[0] == 2 * plain_calls
    assert ckpt["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-4)


def test_early_stopping_stops_when_eval_loss_rises(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Eval holds the training questions with other answers: the better the model learns
    the training answers, the worse its eval loss. With patience 2 the run stops after two
    evaluations that did not improve, long before max_steps, and keeps the best checkpoint."""
    contradicting = [
        Example(e.id + "-x", e.question, e.contexts, ["Berlin"], group="x")
        for e in EXAMPLES
        if e.answerable
    ]
    eval_file = tmp_path / "eval.jsonl"
    write_jsonl(eval_file, contradicting)
    m = train.run(
        _cfg(
            tmp_path,
            tiny_model_dir,
            max_steps=40,
            eval_steps=2,
            eval_data=str(eval_file),
            early_stopping_patience=2,
        )
    ).metrics
    losses = m["eval_losses"]
    assert m["steps"] < 40 and m["steps"] == 2 * len(losses)
    best = losses.index(min(losses))
    assert len(losses) == best + 3  # the best, then exactly `patience` worse ones
    assert m["best_checkpoint"].endswith(f"checkpoint-{2 * (best + 1)}")
