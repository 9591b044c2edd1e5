"""GGUF export on the tiny model: writer, quantization, LoRA GGUF, Modelfile, verification,
and the llama.cpp generator, all loaded back with llama-cpp-python."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ragtune.config import ConfigError, load_config
from ragtune.export import ExportError
from ragtune.export.modelfile import PROBES, detect_family, modelfile_text
from ragtune.export.stage import ExportConfig, run
from ragtune.prompt.grounded import PromptConfig, render_prompt
from ragtune.runtime import RuntimeSection

llama_cpp = pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def exported(tiny_model_dir: Path, tiny_adapter_dir: Path, tmp_path_factory: Any) -> Path:
    out = tmp_path_factory.mktemp("export") / "tiny"
    run(
        ExportConfig(
            model=str(tiny_model_dir),
            adapter=str(tiny_adapter_dir),
            to=["gguf", "ollama", "lora"],
            quant=["f16", "q8_0"],
            out=str(out),
            runtime=RuntimeSection(threads=1),
            # Short answers: the random tiny model rambles, and after ~20 tokens f16 rounding
            # may pick another token, which would say nothing about the file.
            max_new_tokens=6,
        )
    )
    return out


def _fields(path: Path) -> dict[str, Any]:
    reader = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def test_export_writes_exactly_these_files(exported: Path) -> None:
    files = {str(p.relative_to(exported)) for p in exported.rglob("*") if p.is_file()}
    assert files == {
        "README.md",
        "export.json",
        "export_config.yaml",
        "gguf/README.md",
        "gguf/Modelfile",
        "gguf/model-f16.gguf",
        "gguf/model-q8_0.gguf",
        "gguf/base-f16.gguf",
        "gguf/adapter-lora.gguf",
    }


def test_gguf_metadata_matches_the_hf_model(exported: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    meta = _fields(exported / "gguf" / "model-f16.gguf")
    assert meta["general.architecture"] == "llama"
    assert meta["llama.block_count"] == 2 and meta["llama.embedding_length"] == 32
    assert meta["llama.attention.head_count_kv"] == 1
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "gpt-2"
    assert len(meta["tokenizer.ggml.tokens"]) == len(tok)
    assert meta["tokenizer.ggml.eos_token_id"] == tok.convert_tokens_to_ids("<|im_end|>")
    assert meta["tokenizer.ggml.add_bos_token"] is False
    assert meta["tokenizer.chat_template"] == tok.chat_template
    # special tokens are CONTROL (3), learned ones NORMAL (1)
    assert meta["tokenizer.ggml.token_type"][: len(tok.all_special_ids)] == [3, 3, 3]
    names = [t.name for t in gguf.GGUFReader(str(exported / "gguf" / "model-f16.gguf")).tensors]
    assert "output.weight" not in names  # tied embeddings: llama.cpp reuses token_embd
    assert "blk.1.attn_q.weight" in names and len(names) == 2 * 9 + 2


def test_gguf_round_trip_generates_like_transformers(
    exported: Path, tiny_model_dir: Path, tiny_adapter_dir: Path, cpu_fp32: Any
) -> None:
    from ragtune.generation.llamacpp import LlamaCppGenerator
    from ragtune.generation.load import GenerateConfig, load_generator

    messages = [
        [{"role": "system", "content": "Answer."}, {"role": "user", "content": q}]
        for q in ("Where is the Eiffel Tower?", "Who founded Marlowe Station?")
    ]
    hf = load_generator(
        GenerateConfig(model=str(tiny_model_dir), adapter=str(tiny_adapter_dir), max_new_tokens=3),
        cpu_fp32,
    ).generate(messages)
    with LlamaCppGenerator(exported / "gguf" / "model-f16.gguf", 3, threads=1) as gen:
        out = gen.generate(messages)
        assert gen.stats["prompt_tokens"] > 0 and gen.stats["decode_tokens"] > 0
    assert [g.text for g in out] == [g.text for g in hf]
    assert all(0 < g.new_tokens <= 3 for g in out)


def test_gguf_scores_and_suppresses_the_refusal_like_transformers(
    exported: Path, tiny_model_dir: Path, tiny_adapter_dir: Path, cpu_fp32: Any
) -> None:
    from ragtune.generation.llamacpp import LlamaCppGenerator
    from ragtune.generation.load import GenerateConfig, load_generator

    messages = [
        [{"role": "system", "content": "Answer."}, {"role": "user", "content": q}]
        for q in ("Where is the Eiffel Tower?", "Who founded Marlowe Station?")
    ]
    # the second sentence's start ends in two spellings in the tiny vocabulary (" answer",
    # " Answer"): both engines must find them, score them and block them alike
    refusals = ["The context does not contain the answer.", "The answer is not in the context."]
    engine = load_generator(
        GenerateConfig(model=str(tiny_model_dir), adapter=str(tiny_adapter_dir), max_new_tokens=3),
        cpu_fp32,
    )
    hf = engine.generate(messages, refusals)
    with LlamaCppGenerator(exported / "gguf" / "model-f16.gguf", 3, threads=1) as gen:
        out = gen.generate(messages, refusals)
        starts = [gen.refusal_start(s) for s in refusals]
        plain = gen.generate(messages)
    for g, ref in zip(out, hf, strict=True):
        assert g.refusal_score is not None and ref.refusal_score is not None
        assert g.refusal_score == pytest.approx(ref.refusal_score, rel=0.02)  # f16 vs fp32
    assert [g.text for g in out] == [g.text for g in hf]  # same suppressed answers
    assert all(g.refusal_score is None for g in plain)
    assert starts == [engine.refusal_start(s) for s in refusals]  # type: ignore[attr-defined]
    assert [len(s.ends) for s in starts] == [1, 2]


def test_verification_rows(exported: Path) -> None:
    rows = {
        r["file"]: r for r in json.loads((exported / "export.json").read_text())["verification"]
    }
    assert set(rows) == {"model-f16.gguf", "model-q8_0.gguf", "base-f16.gguf + adapter-lora.gguf"}
    assert rows["model-f16.gguf"]["logit_cosine"] > 0.9999
    assert rows["base-f16.gguf + adapter-lora.gguf"]["logit_cosine"] > 0.9999  # LoRA == merged
    assert rows["model-q8_0.gguf"]["logit_cosine"] > 0.99
    # f16 and the LoRA pair compute what transformers computes: every greedy answer agrees.
    assert rows["model-f16.gguf"]["agreement"] == 100.0
    assert rows["base-f16.gguf + adapter-lora.gguf"]["agreement"] == 100.0
    reference = json.loads((exported / "export.json").read_text())["reference"]["answers"]
    for r in rows.values():
        assert r["top1_match"] and r["n"] == 3
        same = [a == b for a, b in zip(r["answers"], reference, strict=True)]
        assert r["agreement"] == pytest.approx(100 * sum(same) / 3)
        if all(same):
            assert r["f1"] == pytest.approx(r["f1_transformers"])
        assert r["decode_tokens_per_s"] > 0


def test_lora_gguf_layout(exported: Path) -> None:
    meta = _fields(exported / "gguf" / "adapter-lora.gguf")
    assert meta["general.type"] == "adapter" and meta["adapter.type"] == "lora"
    assert meta["adapter.lora.alpha"] == 8.0
    shapes = {
        t.name: tuple(t.shape)
        for t in gguf.GGUFReader(str(exported / "gguf" / "adapter-lora.gguf")).tensors
    }
    # ggml order: lora_a ne = (in, r), lora_b ne = (r, out); k_proj's out is 1 kv head x 16
    assert shapes["blk.0.attn_k.weight.lora_a"] == (32, 4)
    assert shapes["blk.0.attn_k.weight.lora_b"] == (4, 16)
    assert len(shapes) == 2 * 2 * 7  # 2 layers x 7 linear layers x (a, b)


def _f16_only(model: Path, out: Path) -> ExportConfig:
    return ExportConfig(
        model=str(model),
        to=["gguf"],
        quant=["f16"],
        out=str(out),
        runtime=RuntimeSection(threads=1),
    )


def test_wrong_tensor_layout_fails_verification(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragtune.export import gguf_write

    # Without llama's q/k permutation the file loads and runs but attends wrongly.
    monkeypatch.setattr(gguf_write, "permute_qk", lambda w, n: w)
    with pytest.raises(ExportError, match="logits have cosine"):
        run(_f16_only(tiny_model_dir, tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x.")]  # no temp folder left


def test_wrong_chat_template_fails_verification(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragtune.export import gguf_write

    original = gguf_write.write_gguf

    def write_other_template(model: Any, tokenizer: Any, path: Path, **kw: Any) -> Path:
        tokenizer.chat_template = tokenizer.chat_template.replace("'\n'", "' \n'")
        return original(model, tokenizer, path, **kw)

    monkeypatch.setattr(gguf_write, "write_gguf", write_other_template)
    with pytest.raises(ExportError, match="chat template differs"):
        run(_f16_only(tiny_model_dir, tmp_path / "x"))


def test_file_that_does_not_load_fails(tmp_path: Path) -> None:
    from ragtune.export.verify import check_gguf

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ExportError, match="does not load in llama.cpp"):
        check_gguf(bad, None)  # type: ignore[arg-type]  # fails before the reference is read


def test_k_quant_falls_back_on_narrow_rows(tmp_path: Path, exported: Path) -> None:
    from ragtune.export.quantize import quantize

    # The tiny model's rows are 32 wide; q4_k_m needs 256, so llama.cpp uses 32-blocks.
    note = quantize(exported / "gguf" / "model-f16.gguf", tmp_path / "q.gguf", "q4_k_m", 1)
    assert note is not None and note.startswith("14 of 20 tensors")
    with pytest.raises(ExportError, match="unknown GGUF type"):
        quantize(exported / "gguf" / "model-f16.gguf", tmp_path / "q.gguf", "q9_9")


def _modelfile_value(text: str, key: str) -> str:
    """A triple-quoted Modelfile value, as Ollama's parser reads it (through the last \"\"\")."""
    m = re.search(rf'^{key} """(.*?)"""$', text, re.S | re.M)
    assert m, key
    return m.group(1)


def _render_go(template: str, messages: list[dict[str, str]]) -> str:
    """The Go-template subset ragtune's Modelfiles use: range over .Messages, .Role, .Content."""
    m = re.fullmatch(r"\{\{- range \.Messages \}\}(.*?)\{\{ end \}\}(.*)", template, re.S)
    assert m, template
    body, tail = m.groups()
    turns = (
        body.replace("{{ .Role }}", x["role"]).replace("{{ .Content }}", x["content"])
        for x in messages
    )
    return "".join(turns) + tail


def test_modelfile_holds_the_chat_template_and_stops(exported: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = (exported / "gguf" / "Modelfile").read_text()
    assert "FROM ./model-f16.gguf" in text.splitlines()
    template = _modelfile_value(text, "TEMPLATE")
    for messages in PROBES:
        assert _render_go(template, messages) == render_prompt(tok, messages)
    stops = re.findall(r'^PARAMETER stop "(.*)"$', text, re.M)
    assert stops == ["<|im_end|>", "<|im_start|>"]
    assert "PARAMETER temperature 0" in text and "PARAMETER repeat_penalty 1" in text
    assert "PARAMETER num_ctx 1024" in text  # the model's 1024 caps the default 4096
    cfg = PromptConfig()
    assert _modelfile_value(text, "SYSTEM") == cfg.system.replace("{refusal}", cfg.refusal_en)


def test_modelfile_rejects_unknown_templates(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert detect_family(tok).name == "chatml"
    tok.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}"
    with pytest.raises(ExportError, match="Go template"):
        modelfile_text("m.gguf", tok, PromptConfig(), 4096)


def test_modelfile_names_the_chinese_instruction(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = PromptConfig(system_zh="只根据上下文回答。没有答案时回复：“{refusal}”")
    text = modelfile_text("m.gguf", tok, cfg, 4096)
    assert "#   只根据上下文回答。没有答案时回复：“上下文中没有答案。”" in text.splitlines()
    assert _modelfile_value(text, "SYSTEM") == cfg.system.replace("{refusal}", cfg.refusal_en)


def test_llamacpp_backend(exported: Path, tiny_model_dir: Path, cpu_fp32: Any) -> None:
    from ragtune.generation.llamacpp import LlamaCppGenerator
    from ragtune.generation.load import GenerateConfig, load_generator

    gguf_file = str(exported / "gguf" / "base-f16.gguf")
    cfg = GenerateConfig(
        model=gguf_file,
        backend="llamacpp",
        adapter=str(exported / "gguf" / "adapter-lora.gguf"),
    )
    gen = load_generator(cfg, cpu_fp32)
    assert isinstance(gen, LlamaCppGenerator) and gen.name == "base-f16.gguf+adapter-lora.gguf"
    with pytest.raises(ValueError, match="needs a .gguf model"):
        load_generator(GenerateConfig(model=str(tiny_model_dir), backend="llamacpp"))
    with pytest.raises(ValueError, match="LoRA .gguf adapter"):
        load_generator(
            GenerateConfig(model=gguf_file, backend="llamacpp", adapter=str(tiny_model_dir))
        )
    with pytest.raises(ConfigError, match="backend: must be one of"):
        load_config(GenerateConfig, overrides=[f"model={gguf_file}", "backend=vllm"])


@pytest.fixture(scope="module")
def tiny_qwen_dir(tiny_model_dir: Path, tmp_path_factory: Any) -> Path:
    """A 2-layer Qwen2 (q/k/v biases, untied output, NEOX RoPE) on the tiny tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    path = tmp_path_factory.mktemp("tiny-qwen")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        initializer_range=0.2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)  # zero biases would hide a bias mapped to the wrong tensor
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_qwen2_gguf_and_lora(tiny_qwen_dir: Path, make_tiny_adapter: Any, tmp_path: Path) -> None:
    adapter = make_tiny_adapter(tiny_qwen_dir, tmp_path / "adapter")
    out = tmp_path / "export"
    result = run(
        ExportConfig(
            model=str(tiny_qwen_dir),
            adapter=str(adapter),
            to=["gguf", "lora"],
            quant=["f16"],
            out=str(out),
            runtime=RuntimeSection(threads=1),
        )
    )
    meta = _fields(out / "gguf" / "model-f16.gguf")
    assert meta["general.architecture"] == "qwen2" and meta["tokenizer.ggml.pre"] == "qwen2"
    names = {t.name for t in gguf.GGUFReader(str(out / "gguf" / "model-f16.gguf")).tensors}
    assert {"output.weight", "blk.0.attn_q.bias", "blk.1.attn_k.bias"} <= names
    assert [r["file"] for r in result.verification] == [
        "model-f16.gguf",
        "base-f16.gguf + adapter-lora.gguf",
    ]
    assert all(r["logit_cosine"] > 0.9999 and r["top1_match"] for r in result.verification)


def test_gguf_extractive_answers_are_whole_words_of_the_passage(exported: Path) -> None:
    from ragtune.generation.llamacpp import LlamaCppGenerator

    passage = "Founded by Quillzorbax Tessafen in Marlowe."  # unknown words: split into pieces
    refusal = PromptConfig().refusal_en
    messages = [[{"role": "user", "content": f"{passage}\nWho founded it?"}]]
    with LlamaCppGenerator(exported / "gguf" / "model-f16.gguf", 12, threads=1) as gen:
        (g,) = gen.generate(messages, spans=[[passage, refusal]])
    assert g.new_tokens > 0
    if not refusal.startswith(g.text):
        # the first letter may be capitalized ("The" for " the")
        start = rf"(?<![A-Za-z0-9])(?i:{re.escape(g.text[:1])}){re.escape(g.text[1:])}"
        assert re.search(start, passage), g.text
        if g.new_tokens < 12:  # ended by the model, not cut by the cap: a whole last word
            assert re.search(start + r"(?![A-Za-z0-9])", passage), g.text
