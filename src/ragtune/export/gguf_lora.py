"""A PEFT LoRA adapter as a llama.cpp LoRA GGUF, applied at load time with `--lora`.

llama.cpp's adapter format (as convert_lora_to_gguf.py writes it): general.type "adapter",
adapter.type "lora", adapter.lora.alpha, and per adapted weight W two tensors named after W's
GGUF name, `blk.N.attn_q.weight.lora_a` (r, in) and `.lora_b` (out, r); llama.cpp adds
alpha / r * B @ A to W. For the llama architecture W's q/k rows are permuted (gguf_write),
so B's rows are permuted the same way; A multiplies the input side, which is unchanged.

    write_lora_gguf(Path("runs/x/adapter"), model.config, Path("out/adapter-lora.gguf"))
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.export import ExportError
from ragtune.export.gguf_write import ARCHITECTURES, arch_of, permute_qk


def lora_alpha(adapter_cfg: dict[str, Any], where: str) -> float:
    """The alpha llama.cpp needs so that its alpha / r equals peft's scaling."""
    for key in ("use_dora", "use_qalora", "use_bdlora"):
        if adapter_cfg.get(key):
            raise ExportError(f"{where}: {key}=true has no llama.cpp LoRA equivalent")
    for key in ("rank_pattern", "alpha_pattern", "modules_to_save"):
        if adapter_cfg.get(key):
            raise ExportError(f"{where}: {key} is set; llama.cpp takes one rank and alpha")
    if adapter_cfg.get("bias", "none") != "none" or adapter_cfg.get("lora_bias"):
        raise ExportError(f"{where}: trained biases have no llama.cpp LoRA equivalent")
    r, alpha = int(adapter_cfg["r"]), float(adapter_cfg["lora_alpha"])
    # rsLoRA scales by alpha / sqrt(r); llama.cpp always divides by r.
    return alpha * math.sqrt(r) if adapter_cfg.get("use_rslora") else alpha


def lora_tensors(adapter: Path, config: Any) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, fp32 array) for every lora_a / lora_b pair of the adapter."""
    import gguf
    from safetensors.torch import load_file

    file = adapter / "adapter_model.safetensors"
    if not file.is_file():
        raise ExportError(f"{adapter}: no adapter_model.safetensors")
    hf_arch = arch_of(config)
    names = gguf.get_tensor_name_map(
        getattr(gguf.MODEL_ARCH, ARCHITECTURES[hf_arch]), config.num_hidden_layers
    )
    pairs: dict[str, dict[str, Any]] = {}
    for key, t in load_file(str(file)).items():
        base = key.removeprefix("base_model.model.")
        for part in ("lora_A", "lora_B"):
            if base.endswith(f".{part}.weight"):
                pairs.setdefault(base.replace(f".{part}.weight", ".weight"), {})[part] = t
                break
        else:
            raise ExportError(f"{file}: tensor {key!r} is not a lora_A / lora_B weight")
    out = []
    for hf_name, ab in sorted(pairs.items()):
        if set(ab) != {"lora_A", "lora_B"}:
            raise ExportError(f"{file}: {hf_name} lacks lora_A or lora_B")
        name = names.get_name(hf_name, try_suffixes=(".weight",))
        if name is None or (hf_name == "lm_head.weight" and config.tie_word_embeddings):
            raise ExportError(f"{file}: adapted weight {hf_name!r} has no GGUF counterpart")
        a, b = ab["lora_A"].float(), ab["lora_B"].float()  # (r, in), (out, r)
        if hf_arch == "LlamaForCausalLM" and hf_name.endswith("q_proj.weight"):
            b = permute_qk(b, config.num_attention_heads)
        elif hf_arch == "LlamaForCausalLM" and hf_name.endswith("k_proj.weight"):
            b = permute_qk(b, config.num_key_value_heads)
        out.append((name + ".lora_a", a.numpy()))
        out.append((name + ".lora_b", b.contiguous().numpy()))
    return out


def write_lora_gguf(adapter: Path, config: Any, path: Path, name: str = "adapter") -> Path:
    import gguf

    cfg_file = adapter / "adapter_config.json"
    adapter_cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    if adapter_cfg.get("peft_type", "LORA") != "LORA":
        raise ExportError(f"{cfg_file}: peft_type {adapter_cfg.get('peft_type')!r} is not LORA")
    alpha = lora_alpha(adapter_cfg, str(cfg_file))
    arch = getattr(gguf.MODEL_ARCH, ARCHITECTURES[arch_of(config)])
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    w.add_name(name)
    for tname, arr in lora_tensors(adapter, config):
        w.add_tensor(tname, arr.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
