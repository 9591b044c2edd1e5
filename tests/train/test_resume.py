"""A training folder belongs to one run: another run stops unless --overwrite, --resume
continues only the same run, from its newest complete checkpoint, and tokens/s after a resume
counts the resumed part only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ragtune.errors import RagtuneError
from ragtune.example import Example, write_jsonl
from ragtune.runtime import RuntimeSection
from ragtune.train import stage as train
from ragtune.train.callbacks import ProgressBar
from ragtune.train.checkpoints import is_complete, latest_complete
from ragtune.train.config import LoraSection, TrainConfig

EXAMPLES = [
    Example(f"q{i}", f"Where is tower {i}?", [f"Tower {i} is in Paris."], ["Paris"], group=f"g{i}")
    for i in range(4)
]


def _cfg(tmp_path: Path, model: Path, **kw: object) -> TrainConfig:
    data = tmp_path / "train.jsonl"
    if not data.exists():
        write_jsonl(data, EXAMPLES)
    base = dict(
        data=str(data),
        model=str(model),
        out=str(tmp_path / "run"),
        lora=LoraSection(r=4, alpha=8),
        lr=1e-2,
        batch_size=2,
        grad_accum=1,
        max_steps=6,
        eval_steps=2,
        warmup=0.0,
        eval_fraction=0.0,
        logging_steps=1,
        runtime=RuntimeSection(threads=1, dtype="fp32"),
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _kill_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    def crash(self: object, args: object, state: object, control: object, **kw: object) -> None:
        if state.global_step == step:  # type: ignore[attr-defined]
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(ProgressBar, "on_step_end", crash)


def test_another_run_in_the_folder_stops_with_what_differs(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kill_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        train.run(_cfg(tmp_path, tiny_model_dir))
    monkeypatch.undo()
    old = sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*"))
    assert old == ["checkpoint-2", "checkpoint-4"]
    for resume in (False, True):  # a new run, or one that tries to resume the old one
        with pytest.raises(RagtuneError, match=r"holds another train run, which differs in lr"):
            train.run(_cfg(tmp_path, tiny_model_dir, lr=2e-2, resume=resume))
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == old  # untouched
    m = train.run(_cfg(tmp_path, tiny_model_dir, lr=2e-2, overwrite=True)).metrics
    assert m["resumed_from"] is None and m["steps"] == 6


def test_same_run_without_resume_asks_for_resume_or_overwrite(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kill_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train.run(_cfg(tmp_path, tiny_model_dir))
    monkeypatch.undo()
    with pytest.raises(RagtuneError, match="already holds this train run.*--resume"):
        train.run(_cfg(tmp_path, tiny_model_dir))


def test_new_data_content_is_another_run(tmp_path: Path, tiny_model_dir: Path) -> None:
    train.run(_cfg(tmp_path, tiny_model_dir, max_steps=2))
    write_jsonl(tmp_path / "train.jsonl", EXAMPLES[:3])  # same path, other content
    with pytest.raises(RagtuneError, match="differs in the content of data"):
        train.run(_cfg(tmp_path, tiny_model_dir, max_steps=2, resume=True))


def test_torn_checkpoint_is_skipped_and_resume_finishes(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kill_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        train.run(_cfg(tmp_path, tiny_model_dir))
    monkeypatch.undo()
    run = tmp_path / "run"
    # What a kill in the middle of writing checkpoint-6 leaves: weights and half an
    # optimizer, no trainer_state.json.
    torn = run / "checkpoint-6"
    shutil.copytree(run / "checkpoint-4", torn)
    (torn / "trainer_state.json").unlink()
    (torn / "optimizer.pt").write_bytes((torn / "optimizer.pt").read_bytes()[:100])
    assert not is_complete(torn) and latest_complete(run) == (run / "checkpoint-4", [torn])
    result = train.run(_cfg(tmp_path, tiny_model_dir, resume=True))
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
