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
    with pytest.raises(ConfigError, match="eval_fraction must be in"):
        load_config(TrainConfig, None, ["eval_fraction=1.5"])


def test_every_field_is_documented_and_saved(tmp_path: Path) -> None:
    docs = field_docs(TrainConfig)
    assert all(doc for _, _, doc in describe(TrainConfig)), "each config field needs a docstring"
    assert "LoRA rank" in field_docs(type(TrainConfig().lora))["r"]
    assert "passes over the data" in docs["epochs"].lower()
    cfg = load_config(TrainConfig, None, ["data=x.jsonl"])
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(TrainConfig, tmp_path / "out.yaml") == cfg
