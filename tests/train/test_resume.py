"""A training folder belongs to one run: another run stops unless --overwrite, --resume
continues only the same run, from its newest complete checkpoint, and tokens/s after a resume
counts the resumed part only."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from ragtune.errors import RagtuneError
from ragtune.train import stage as train
from ragtune.train.callbacks import ProgressBar
from ragtune.train.checkpoints import is_complete, latest_complete
from ragtune.train.config import LoraSection, TrainConfig


def _interrupt(monkeypatch: pytest.MonkeyPatch, cfg: TrainConfig, step: int) -> None:
    """Run `cfg` until it is "killed" (KeyboardInterrupt) after optimizer step `step`."""
    _kill_at(monkeypatch, step)
    with pytest.raises(KeyboardInterrupt):
        train.run(cfg)
    monkeypatch.undo()


def _kill_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    def crash(self: object, args: object, state: object, control: object, **kw: object) -> None:
        if state.global_step == step:  # type: ignore[attr-defined]
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(ProgressBar, "on_step_end", crash)


def test_another_run_in_the_folder_stops_with_what_differs(
    tmp_path: Path, tiny_train_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt(monkeypatch, tiny_train_cfg(tmp_path), 5)
    old = sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*"))
    assert old == ["checkpoint-2", "checkpoint-4"]
    for resume in (False, True):  # a new run, or one that tries to resume the old one
        with pytest.raises(RagtuneError, match=r"holds another train run, which differs in lr"):
            train.run(tiny_train_cfg(tmp_path, lr=2e-2, resume=resume))
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == old  # untouched
    m = train.run(tiny_train_cfg(tmp_path, lr=2e-2, overwrite=True)).metrics
    assert m["resumed_from"] is None and m["steps"] == 6


def test_same_run_without_resume_asks_for_resume_or_overwrite(
    tmp_path: Path, tiny_train_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt(monkeypatch, tiny_train_cfg(tmp_path), 3)
    with pytest.raises(RagtuneError, match="already holds this train run.*--resume"):
        train.run(tiny_train_cfg(tmp_path))


def test_new_data_content_is_another_run(tmp_path: Path, tiny_train_cfg: Any) -> None:
    train.run(tiny_train_cfg(tmp_path, max_steps=2))
    data = tmp_path / "train.jsonl"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:3]))  # other content
    with pytest.raises(RagtuneError, match="differs in the content of data"):
        train.run(tiny_train_cfg(tmp_path, max_steps=2, resume=True))


def test_torn_checkpoint_is_skipped_and_resume_finishes(
    tmp_path: Path, tiny_train_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt(monkeypatch, tiny_train_cfg(tmp_path), 5)
    run = tmp_path / "run"
    # What a kill in the middle of writing checkpoint-6 leaves: weights and half an
    # optimizer, no trainer_state.json.
    torn = run / "checkpoint-6"
    shutil.copytree(run / "checkpoint-4", torn)
    (torn / "trainer_state.json").unlink()
    (torn / "optimizer.pt").write_bytes((torn / "optimizer.pt").read_bytes()[:100])
    assert not is_complete(torn) and latest_complete(run) == (run / "checkpoint-4", [torn])
    result = train.run(tiny_train_cfg(tmp_path, resume=True))
    assert result.metrics["resumed_from"].endswith("checkpoint-4")
    assert result.metrics["steps"] == 6 and is_complete(run / "checkpoint-6")
    # tokens/s counts what this session trained (steps 5-6), not the tokens restored
    m = result.metrics
    assert 0 < m["tokens_this_session"] < m["tokens_seen"]
    assert m["tokens_per_s"] == pytest.approx(m["tokens_this_session"] / m["wall_s"], rel=0.25)
    assert m["tokens_per_s"] < 0.6 * m["tokens_seen"] / m["wall_s"]  # the old, inflated figure


def test_out_of_range_values_are_errors_naming_the_key() -> None:
    from ragtune.config import ConfigError, load_config

    for override, key in [
        ("lora.r=0", "lora.r"),
        ("batch_size=0", "batch_size"),
        ("epochs=-1", "epochs"),
        ("epochs=0", "epochs"),
        ("max_steps=0", "max_steps"),
        ("lora.dropout=1", "lora.dropout"),
        ("runtime.threads=0", "runtime.threads"),
    ]:
        with pytest.raises(ConfigError, match=rf"^{key}: must be in "):
            load_config(TrainConfig, None, [override])


def test_checkpoint_with_state_but_torn_weights_is_incomplete(
    tmp_path: Path, tiny_train_cfg: Any
) -> None:
    train.run(tiny_train_cfg(tmp_path, max_steps=2))
    ckpt = tmp_path / "run" / "checkpoint-2"
    assert is_complete(ckpt)
    weights = ckpt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    assert not is_complete(ckpt)
    state = ckpt / "trainer_state.json"
    weights.unlink()
    state.write_text(state.read_text().replace('"global_step": 2', '"global_step": 7'))
    assert not is_complete(ckpt)  # the state names another step: not this folder's


def test_resume_with_the_saved_resolved_config(
    tmp_path: Path, tiny_train_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved train_config.yaml (presets filled in) is the same run as the config given."""
    from ragtune.config import load_config

    _interrupt(monkeypatch, tiny_train_cfg(tmp_path, lr=None, lora=LoraSection()), 3)
    saved = load_config(TrainConfig, tmp_path / "run" / "train_config.yaml", ["resume=true"])
    assert saved.lr is not None and saved.lora.r is not None
    assert train.run(saved).metrics["resumed_from"].endswith("checkpoint-2")
