"""Config loading: YAML + dotted overrides, unknown keys and bad types name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.config import ConfigError, describe, field_docs, load_config, save_config
from ragtune.train.config import TrainConfig


def test_yaml_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("data: a.jsonl\nlora:\n  r: 4\nepochs: 1\n")
    cfg = load_config(TrainConfig, f, ["lora.r=8", "lr=0.001", "prompt.refusal_en=Nope."])
    assert cfg.data == "a.jsonl"
    assert cfg.lora.r == 8 and cfg.lora.dropout == 0.0  # untouched nested default kept
    assert cfg.epochs == 1.0 and isinstance(cfg.epochs, float)
    assert cfg.lr == 0.001
    assert cfg.prompt.refusal_en == "Nope."


def test_unknown_key_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown config key lora.rank"):
        load_config(TrainConfig, None, ["lora.rank=8"])
    f = tmp_path / "c.yaml"
    f.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown config key epoch"):
        load_config(TrainConfig, f)


def test_bad_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match="lora.r: expected an integer"):
        load_config(TrainConfig, None, ["lora.r=abc"])
    with pytest.raises(ConfigError, match="preset: must be one of"):
        load_config(TrainConfig, None, ["preset=huge"])
    with pytest.raises(ConfigError, match=r"eval_fraction: must be in \[0, 1\), got 1.5"):
        load_config(TrainConfig, None, ["eval_fraction=1.5"])


def test_every_field_is_documented_and_saved(tmp_path: Path) -> None:
    docs = field_docs(TrainConfig)
    assert all(doc for _, _, doc in describe(TrainConfig)), "each config field needs a docstring"
    assert "LoRA rank" in field_docs(type(TrainConfig().lora))["r"]
    assert "passes over the data" in docs["epochs"].lower()
    cfg = load_config(TrainConfig, None, ["data=x.jsonl"])
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(TrainConfig, tmp_path / "out.yaml") == cfg


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("lr=3e-4", "lr", 3e-4),
        ("lr=0.0003", "lr", 3e-4),
        ("lr=3E-4", "lr", 3e-4),
        ("lr=.0003", "lr", 3e-4),
        ("max_steps=1e3", "max_steps", 1000),
        ("max_steps=+20", "max_steps", 20),
        ("epochs=2", "epochs", 2.0),
    ],
)
def test_numbers_in_the_forms_people_write(override: str, key: str, value: float) -> None:
    cfg = load_config(TrainConfig, None, [override])
    assert getattr(cfg, key) == pytest.approx(value)
    assert type(getattr(cfg, key)) is type(value)


def test_numbers_in_yaml_files_too(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("lr: 3e-4\nmax_steps: 1e5\nweight_decay: 1e-2\n")  # PyYAML reads these as str
    cfg = load_config(TrainConfig, f)
    assert (cfg.lr, cfg.max_steps, cfg.weight_decay) == (3e-4, 100000, 0.01)


def test_non_numbers_are_still_errors() -> None:
    with pytest.raises(ConfigError, match="max_steps: expected an integer, got 1.5"):
        load_config(TrainConfig, None, ["max_steps=1.5"])
    with pytest.raises(ConfigError, match="lr: expected a number, got '3e-4x'"):
        load_config(TrainConfig, None, ["lr=3e-4x"])
    with pytest.raises(ConfigError, match="lr: expected a number"):
        load_config(TrainConfig, None, ["lr=true"])


def test_balanced_makes_one_pass_at_the_benchmark_size_and_more_on_small_data() -> None:
    """The real-data recipe (RESULTS.md, issue 12): lr 3e-4, one epoch on ~540 examples; a
    small set is seen several times, never past the cap; a given epochs value wins."""
    from ragtune.train.config import MAX_AUTO_EPOCHS, resolve_defaults

    at_size = resolve_defaults(TrainConfig(data="x"), n_train=540)
    assert (at_size.lr, at_size.epochs, at_size.lora.r) == (3e-4, 1.0, 16)
    assert resolve_defaults(TrainConfig(data="x"), n_train=100).epochs == 5.0
    assert resolve_defaults(TrainConfig(data="x"), n_train=10).epochs == MAX_AUTO_EPOCHS
    assert resolve_defaults(TrainConfig(data="x", epochs=2.0), n_train=540).epochs == 2.0


def test_full_finetuning_defaults_to_a_thirtieth_of_the_lora_rate() -> None:
    """A preset's lr is LoRA's: a full fine-tune at it would move every weight far too far
    (balanced's 3e-4 becomes 1e-5); a given lr is kept for either method."""
    from ragtune.train.config import PRESETS, resolve_defaults

    lora_lr = PRESETS["balanced"]["lr"]
    full = resolve_defaults(TrainConfig(data="x", method="full"), n_train=540)
    assert full.lr == round(lora_lr / 30, 12) == 1e-5
    assert resolve_defaults(TrainConfig(data="x", method="full", lr=5e-5), n_train=540).lr == 5e-5
    assert resolve_defaults(TrainConfig(data="x"), n_train=540).lr == lora_lr
