"""Hugging Face weights + tokenizer -> a GGUF file that llama.cpp and Ollama load.

ragtune's own writer (llama.cpp's convert_hf_to_gguf.py is a repository script, not a
package), built on the `gguf` package for the two architectures ragtune tunes:

- LlamaForCausalLM (SmolLM2, the test model): llama.cpp's `llama` graph applies RoPE to
  interleaved pairs, HF to the two halves of each head, so q_proj / k_proj rows are permuted
  (`permute_qk`), exactly as convert_hf_to_gguf.py does.
- Qwen2ForCausalLM (Qwen2.5): NEOX-style RoPE, the HF layout as is; q/k/v carry biases.

Tied embeddings write no output.weight (llama.cpp reuses token_embd). 2-D weights are stored
as f16 (or f32); 1-D tensors and norms always as f32, which llama.cpp's kernels expect. The
tokenizer goes in as a byte-level BPE ("gpt2") vocabulary with merges, special-token ids,
token types (added special tokens are CONTROL) and the chat template.

    write_gguf(model, tokenizer, Path("out/model-f16.gguf"), ftype="f16", name="my-model")
"""

from __future__ import annotations

import json
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ragtune.export import ExportError

ARCHITECTURES = {"LlamaForCausalLM": "LLAMA", "Qwen2ForCausalLM": "QWEN2"}

# llama.cpp identifies a BPE pre-tokenizer (the regex split before merges) by the token ids
# of this text; the table below is the subset of convert_hf_to_gguf.py's for ragtune's models.
CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? "
    "'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
KNOWN_PRE = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
}


def _config_file(config: Any) -> str:
    """The config.json an error is about, with its model folder when known."""
    folder = getattr(config, "_name_or_path", "") or ""
    return str(Path(folder) / "config.json") if folder else "config.json"


def _tokenizer_name(tokenizer: Any) -> str:
    """The tokenizer an error is about: its folder or hub id when known."""
    return str(getattr(tokenizer, "name_or_path", "") or "tokenizer")


def tokenizer_json(tokenizer: Any) -> dict[str, Any]:
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(
            f"{_tokenizer_name(tokenizer)}: GGUF export needs a fast tokenizer (tokenizer.json)"
        )
    return dict(json.loads(tokenizer.backend_tokenizer.to_str()))


# Split regexes (HF tokenizer.json) of llama.cpp's pre-tokenizers, for vocabularies not in
# KNOWN_PRE (a retrained or resized tokenizer keeps the regex but changes the hash).
SPLIT_REGEX_PRE = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
}


def _pre_by_structure(pre: dict[str, Any]) -> str | None:
    """The llama.cpp name for a byte-level pre-tokenizer recognised by its parts."""
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"  # ByteLevel's built-in regex is GPT-2's
    parts = pre.get("pretokenizers") or []
    if pre.get("type") != "Sequence" or len(parts) != 2 or parts[1].get("type") != "ByteLevel":
        return None
    first, byte_level = parts
    if first.get("type") == "Split" and not byte_level.get("use_regex", True):
        return SPLIT_REGEX_PRE.get((first.get("pattern") or {}).get("Regex", ""))
    if (
        first.get("type") == "Digits"
        and first.get("individual_digits")
        and byte_level.get("use_regex", True)
    ):
        return "smollm"
    return None


def detect_pre_tokenizer(tokenizer: Any) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer: by llama.cpp's hash of known
    vocabularies first, else by its structure. Verification checks the choice token by token."""
    chkhsh = sha256(str(tokenizer.encode(CHECK_TEXT)).encode()).hexdigest()
    if chkhsh in KNOWN_PRE:
        return KNOWN_PRE[chkhsh]
    tj = tokenizer_json(tokenizer)
    pre = tj.get("pre_tokenizer") or {}
    norm = tj.get("normalizer") or {}
    # NFC (Qwen2's) only changes text that is not NFC already; llama.cpp skips it, as its
    # own converter does for Qwen2. Any other normalizer would change ordinary text.
    name = _pre_by_structure(pre) if norm.get("type", "NFC") == "NFC" else None
    if name is None:
        raise ExportError(
            f"{_tokenizer_name(tokenizer)}: unknown BPE pre-tokenizer (llama.cpp hash {chkhsh}, {json.dumps(pre)[:200]}); "
            "set pre_tokenizer=NAME to the llama.cpp name (e.g. gpt-2, llama-bpe, qwen2, smollm)"
        )
    return name


def vocab(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges) as llama.cpp's "gpt2" tokenizer model reads them.
    Ids beyond the tokenizer (padded embedding rows) become UNUSED placeholders."""
    import gguf

    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    if max(reverse) >= vocab_size:
        raise ExportError(
            f"{_tokenizer_name(tokenizer)}: tokenizer has id "
            f"{max(reverse)} but the model's vocab_size (config.json) is {vocab_size}"
        )
    added = tokenizer.added_tokens_decoder  # id -> AddedToken
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(reverse[i])
            types.append(
                gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED
            )
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
    merges = tokenizer_json(tokenizer)["model"].get("merges") or []
    if merges and not isinstance(merges[0], str):
        # transformers >= 4.45 stores pairs; llama.cpp reads "a b" with spaces as U+0120+256
        merges = [
            " ".join("".join(chr(ord(c) + 256) if c == " " else c for c in part) for part in pair)
            for pair in merges
        ]
    return tokens, [int(t) for t in types], list(merges)


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer prepends BOS on its own (llama.cpp must then do the same)."""
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


def permute_qk(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """HF rotate-half rows -> llama.cpp interleaved rows, per head: (n_head*d, ...) same shape."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    rope_type = params.get("rope_type", "default")
    if rope_type != "default":
        raise ExportError(
            f"{_config_file(config)}: rope_parameters.rope_type={rope_type!r} is not supported"
        )
    theta = params.get("rope_theta", getattr(config, "rope_theta", None))
    if theta is None:
        raise ExportError(f"{_config_file(config)}: no rope_theta")
    return float(theta)


def arch_of(config: Any) -> str:
    archs = getattr(config, "architectures", None) or []
    if not archs or archs[0] not in ARCHITECTURES:
        raise ExportError(
            f"{_config_file(config)}: architecture {archs[0] if archs else None!r} has no GGUF writer; "
            f"supported: {', '.join(ARCHITECTURES)}"
        )
    return str(archs[0])


def gguf_tensors(
    state: dict[str, torch.Tensor], config: Any, ftype: str
) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, array) for every weight, q/k permuted for llama; (out, in) stays (out, in)
    here and becomes ggml's ne=[in, out] in the file."""
    import gguf

    hf_arch = arch_of(config)
    arch = getattr(gguf.MODEL_ARCH, ARCHITECTURES[hf_arch])
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    out = []
    for hf_name, t in state.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # tied: llama.cpp falls back to token_embd
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ExportError(f"weight {hf_name!r} has no GGUF name for {hf_arch}")
        t = t.detach().float()
        if hf_arch == "LlamaForCausalLM":
            if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
                t = permute_qk(t, n_head)
            elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
                t = permute_qk(t, n_kv)
        keep_f32 = t.dim() <= 1 or name.endswith("_norm.weight") or ftype == "f32"
        out.append((name, t.numpy().astype(np.float32 if keep_f32 else np.float16)))
    return out


def write_gguf(
    model: Any,
    tokenizer: Any,
    path: Path,
    *,
    ftype: str = "f16",
    name: str = "model",
    pre_tokenizer: str = "auto",
) -> Path:
    """Write `model` (a transformers causal LM, fp32 weights) as GGUF at `path`."""
    import gguf

    if ftype not in ("f16", "f32"):
        raise ExportError(f"write_gguf writes f16 or f32, not {ftype!r} (quantize afterwards)")
    config = model.config
    hf_arch = arch_of(config)
    arch = getattr(gguf.MODEL_ARCH, ARCHITECTURES[hf_arch])
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_block_count(config.num_hidden_layers)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(config.num_attention_heads)
    w.add_head_count_kv(config.num_key_value_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(rope_theta(config))
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    w.add_vocab_size(config.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if ftype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tokens, types, merges = vocab(tokenizer, config.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(
        detect_pre_tokenizer(tokenizer) if pre_tokenizer == "auto" else pre_tokenizer
    )
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for kind in ("bos", "eos", "unk", "pad"):
        tid = getattr(tokenizer, f"{kind}_token_id", None)
        if isinstance(tid, int):
            getattr(w, f"add_{kind}_token_id")(tid)
    w.add_add_bos_token(adds_bos(tokenizer))
    w.add_add_eos_token(False)
    if tokenizer.chat_template:
        w.add_chat_template(tokenizer.chat_template)

    for tname, arr in gguf_tensors(model.state_dict(), config, ftype):
        w.add_tensor(tname, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
