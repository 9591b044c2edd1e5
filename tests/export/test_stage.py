"""`ragtune export` without llama.cpp: the merge, the merged folder, the model card, the hub
push (its arguments, the upload monkeypatched), the CLI and the output folder's atomicity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from ragtune.cli import main
from ragtune.export import ExportError
from ragtune.export.merge import merge_adapter
from ragtune.export.stage import ExportConfig, run
from ragtune.models import load_model

MESSAGES = [
    [
        {"role": "system", "content": "Answer."},
        {"role": "user", "content": "Where is the Eiffel Tower?"},
    ],
    [{"role": "system", "content": "Answer."}, {"role": "user", "content": "Who founded it? " * 5}],
]


def _export(
    tmp_path: Path, base: Path, run_dir: Path | None, verify: bool = False, **kw: Any
) -> Path:
    out = tmp_path / "export"
    cfg = ExportConfig(
        model=str(base),
        adapter=str(run_dir) if run_dir else None,
        out=str(out),
        verify=verify,
        **kw,
    )
    run(cfg)
    return out


def test_merged_weights_equal_base_plus_scaled_delta(
    tiny_model_dir: Path, tiny_adapter_dir: Path
) -> None:
    from safetensors.torch import load_file

    base, _ = load_model(str(tiny_model_dir))
    before = {k: v.clone() for k, v in base.state_dict().items()}
    merged = merge_adapter(base, str(tiny_adapter_dir / "adapter")).state_dict()
    lora = load_file(str(tiny_adapter_dir / "adapter" / "adapter_model.safetensors"))
    scale = 8 / 4  # lora_alpha / r
    checked = 0
    for key, a in lora.items():
        if ".lora_A." not in key:
            continue
        b = lora[key.replace(".lora_A.", ".lora_B.")]
        name = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        torch.testing.assert_close(merged[name], before[name] + scale * b @ a, rtol=0, atol=1e-6)
        assert not torch.allclose(merged[name], before[name])  # the adapter does change it
        checked += 1
    assert checked == 2 * 7  # every linear layer of both blocks
    torch.testing.assert_close(merged["model.norm.weight"], before["model.norm.weight"])


def test_merged_folder_reloads_and_generates_like_base_plus_adapter(
    tmp_path: Path, tiny_model_dir: Path, tiny_adapter_dir: Path, cpu_fp32: Any
) -> None:
    from transformers import AutoModelForCausalLM

    from ragtune.generation.load import GenerateConfig, load_generator
    from ragtune.generation.local import LocalGenerator

    adapter_file = tiny_adapter_dir / "adapter" / "adapter_model.safetensors"
    adapter_bytes = adapter_file.read_bytes()
    out = _export(tmp_path, tiny_model_dir, tiny_adapter_dir, to=["merged"], dtype="fp32")
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == {
        "README.md",
        "export.json",
        "export_config.yaml",
        "merged/README.md",
        "merged/config.json",
        "merged/generation_config.json",
        "merged/model.safetensors",
        "merged/tokenizer.json",
        "merged/tokenizer_config.json",
        "merged/chat_template.jinja",
    }
    assert adapter_file.read_bytes() == adapter_bytes  # inputs are only read
    # Plain transformers, no peft: greedy generate stops at <|im_end|> by itself.
    model = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert model.generation_config.eos_token_id == [2] and not model.generation_config.do_sample
    reloaded = LocalGenerator(
        *load_model(str(out / "merged")), max_new_tokens=8, batch_size=2, name="m"
    )
    reference = load_generator(
        GenerateConfig(model=str(tiny_model_dir), adapter=str(tiny_adapter_dir), max_new_tokens=8),
        cpu_fp32,
    )
    assert [g.text for g in reloaded.generate(MESSAGES)] == [
        g.text for g in reference.generate(MESSAGES)
    ]


def test_merged_bf16_is_stored_in_bf16_and_verified(
    tmp_path: Path, tiny_model_dir: Path, tiny_adapter_dir: Path
) -> None:
    from safetensors import safe_open

    out = _export(tmp_path, tiny_model_dir, tiny_adapter_dir, verify=True, to=["merged"])
    with safe_open(str(out / "merged" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}  # noqa: SIM118
    (row,) = json.loads((out / "export.json").read_text())["verification"]
    assert row["file"] == "merged/" and row["engine"] == "transformers"
    assert row["logit_cosine"] > 0.999 and row["top1_match"]  # bf16 rounding only


def test_card_reads_run_folder_and_found_evals(
    tmp_path: Path, tiny_model_dir: Path, tiny_adapter_dir: Path
) -> None:
    import shutil

    run_dir = tmp_path / "runs" / "lora"
    shutil.copytree(tiny_adapter_dir, run_dir)
    (run_dir / "train_config.yaml").write_text(
        yaml.safe_dump({"data": "data/train.jsonl", "lora": {"r": 4, "alpha": 8}, "lr": 0.0003})
    )
    (run_dir / "train_metrics.json").write_text(json.dumps({"steps": 12, "train_loss": 0.5}))
    for label, adapter in (("tuned", str(run_dir)), ("other", "elsewhere")):
        (tmp_path / "runs" / label).mkdir()
        m = {"label": label, "adapter": adapter, "data": "eval.jsonl", "n": 9, "f1": 61.25}
        (tmp_path / "runs" / label / "metrics.json").write_text(json.dumps(m))
    out = _export(tmp_path, tiny_model_dir, run_dir, to=["adapter"])
    card = (out / "README.md").read_text()
    assert card == (out / "adapter" / "README.md").read_text()  # the same card in every folder
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "| training data | data/train.jsonl |" in card and "| learning rate | 0.0003 |" in card
    assert "| optimizer steps | 12 |" in card
    assert "| metric | tuned |" in card and "| Token F1 (%) | 61.2 |" in card  # only this adapter's
    assert "adapter/adapter_model.safetensors" in card


def test_push_to_hub_uploads_the_adapter_folder(
    tmp_path: Path, tiny_model_dir: Path, tiny_adapter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    calls: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self: Any, repo_id: str, **kw: Any) -> str:
        calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self: Any, **kw: Any) -> None:
        assert (Path(kw["folder_path"]) / "README.md").is_file()
        calls.append(("upload_folder", kw))

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    out = tmp_path / "export"
    result = run(
        ExportConfig(
            model=str(tiny_model_dir),
            adapter=str(tiny_adapter_dir),
            to=[],
            out=str(out),
            verify=False,
            push_to_hub="me/tiny-rag",
        )
    )
    assert result.pushed == "https://huggingface.co/me/tiny-rag"
    assert calls[0] == (
        "create_repo",
        {"repo_id": "me/tiny-rag", "repo_type": "model", "private": True, "exist_ok": True},
    )
    assert calls[1][1]["repo_id"] == "me/tiny-rag" and calls[1][1]["folder_path"] == str(
        out / "adapter"
    )
    assert json.loads((out / "export.json").read_text())["pushed"] == result.pushed
    with pytest.raises(ExportError, match="OWNER/NAME"):
        from ragtune.export.hub import push

        push(out / "adapter", "no-owner")


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="to: unknown export type 'onnx'"):
        ExportConfig(to=["onnx"])
    with pytest.raises(ValueError, match="quant: unknown GGUF type 'q9'"):
        ExportConfig(quant=["q9"])
    with pytest.raises(ValueError, match="need an adapter"):
        ExportConfig(to=["lora"])
    assert ExportConfig(to=["ollama"]).to == ["ollama", "gguf"]


def test_out_folder_that_is_not_an_export_is_left_alone(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "mine.txt").write_text("keep")
    with pytest.raises(ExportError, match="not a ragtune export folder"):
        _export(tmp_path, tiny_model_dir, None, to=["merged"])
    assert (tmp_path / "export" / "mine.txt").read_text() == "keep"


def test_cli_export(
    tmp_path: Path, tiny_model_dir: Path, tiny_adapter_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    argv = [
        "export",
        "--model",
        str(tiny_model_dir),
        "--adapter",
        str(tiny_adapter_dir),
        "--to",
        "merged,adapter",
        "--out",
        str(out),
        "verify=false",
    ]
    assert main(argv) == 0
    assert "merged/model.safetensors" in capsys.readouterr().out
    assert yaml.safe_load((out / "export_config.yaml").read_text())["to"] == ["merged", "adapter"]
    # An export over an earlier export replaces it whole.
    assert main([*argv[:5], "--to", "adapter", "--out", str(out), "verify=false"]) == 0
    assert not (out / "merged").exists() and (out / "adapter" / "adapter_config.json").is_file()
    assert main(["export", "--to", "onnx", "--out", str(out)]) == 2
    assert "unknown export type 'onnx'" in capsys.readouterr().err


def test_agreement_uses_the_configured_refusal_sentence() -> None:
    """A custom prompt.refusal_en is what the tuned model says on unanswerable questions;
    verification must score it as a refusal, as eval does."""
    import numpy as np

    from ragtune.export.verify import SAMPLES, Reference, agreement
    from ragtune.prompt.grounded import PromptConfig

    custom = PromptConfig(refusal_en="Sorry, no idea from these documents.")
    answers = ["Ada Quill", custom.refusal_en, "北京"]
    ref = Reference(SAMPLES, [], [], [], np.zeros(1), "", answers, custom)
    row = agreement(ref, [answers[0], "Sorry, no idea from these documents!", "北京"])
    assert row["agreement"] == 100.0  # both refused, in slightly different words
    assert row["f1"] == row["f1_transformers"] == 100.0
    default = Reference(SAMPLES, [], [], [], np.zeros(1), "", answers, PromptConfig())
    assert agreement(default, answers)["f1"] == pytest.approx(200 / 3)  # refusal not seen


def test_card_shows_each_language_instruction() -> None:
    from ragtune.export.card import CardInfo, card_text
    from ragtune.prompt.grounded import PromptConfig

    def card(prompt: PromptConfig) -> str:
        return card_text(CardInfo("m", "base", "llama", 1_000_000, prompt=prompt))

    plain = PromptConfig()
    lines = card(plain).splitlines()
    assert "> " + plain.system.replace("{refusal}", plain.refusal_en) in lines
    assert "> " + plain.system.replace("{refusal}", plain.refusal_zh) in lines
    zh = PromptConfig(system_zh="只根据上下文回答。没有答案时回复：“{refusal}”")
    lines = card(zh).splitlines()
    assert "> 只根据上下文回答。没有答案时回复：“上下文中没有答案。”" in lines
    assert "> " + zh.system.replace("{refusal}", zh.refusal_zh) not in lines
