"""The one generation path: chat messages in, short answers out, in batches.

`LocalGenerator` runs a transformers model (optionally with a LoRA adapter merged in) with
greedy decoding, KV cache, batches sorted by length and prefilled row by row (no compute on
padding), stopping at the chat template's end-of-turn token. `OpenAIGenerator` sends the same
messages to any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp's server, Ollama) so an
API model is scored on the same prompt. Eval uses this now; RAG and serving will use it later.

    gen = load_generator(GenerateConfig(model="smollm2-135m", adapter="runs/x/adapter"))
    outputs = gen.generate([build_messages(ex, prompt_cfg) for ex in examples])
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ragtune import runtime
from ragtune.prompt import render_prompt

Messages = list[dict[str, str]]


@dataclass
class Generation:
    text: str
    """The answer, special tokens removed and whitespace stripped."""
    new_tokens: int
    """Tokens generated, not counting the end-of-turn token."""
    latency_s: float
    """Wall time of the call that produced this answer (its whole batch)."""
    batch_size: int
    """How many answers that call produced together."""


class Generator(Protocol):
    name: str

    def generate(self, batch: list[Messages]) -> list[Generation]: ...


@dataclass
class GenerateConfig:
    model: str = "smollm2-135m"
    """Model spec: alias, local folder, .gguf file, hub id, or openai:MODEL for an API model."""
    adapter: str | None = None
    """LoRA adapter folder written by `ragtune train` (its `adapter/` subfolder or the run folder)."""
    max_new_tokens: int = 48
    """Most tokens per answer; grounded answers are short, rambling is cut here."""
    batch_size: int = 16
    """Prompts decoded together; larger batches give more tokens/s, each answer waits longer
    (SmolLM2 on 2 CPU cores, RAG prompts: 31 tokens/s at 8, 42 at 16, 30 at 32)."""
    dtype: str = "auto"
    """auto (bf16 where the hardware has it, else fp32), bf16, fp16 or fp32."""
    device: str = "auto"
    """auto, cpu or cuda[:N]."""
    threads: str = "auto"
    """CPU threads: a number, or auto for the cores free right now."""
    api_base: str | None = None
    """Base URL for openai:MODEL (default $OPENAI_BASE_URL or https://api.openai.com/v1)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key for openai:MODEL (may be unset for local servers)."""
    timeout_s: float = 120.0
    """Per-request timeout for API models."""
    backend: str = "auto"
    """auto | transformers | llamacpp. auto runs local models with transformers (a .gguf is
    dequantized first); llamacpp runs a .gguf model directly in llama.cpp, as llama-cli and
    Ollama do (adapter must then be a LoRA .gguf from `ragtune export --to lora`)."""


def stop_token_ids(tokenizer: Any, model_config: Any) -> list[int]:
    """End-of-turn ids: the tokenizer's eos, the model's eos (may be a list), and ChatML's."""
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    for tok in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(ids)


class LocalGenerator:
    """Greedy batched decoding with a transformers causal LM."""

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int, batch_size: int, name: str):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.stop_ids = stop_token_ids(tokenizer, model.config)
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def generate(self, batch: list[Messages]) -> list[Generation]:
        prompts = [render_prompt(self.tokenizer, m) for m in batch]
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        # Sorting by length keeps each batch's padding (wasted compute) small.
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        out: list[Generation | None] = [None] * len(prompts)
        pad_id = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            rows = [encoded[i] for i in idx]
            t0 = time.perf_counter()
            ids, mask, cache = self._prefill(rows)
            seqs = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                past_key_values=cache,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=self.stop_ids,
                pad_token_id=pad_id,
                use_cache=True,
            )
            latency = time.perf_counter() - t0
            new = seqs[:, ids.shape[1] :].tolist()  # (B, new_tokens)
            for row, i in zip(new, idx):
                n = next((k for k, t in enumerate(row) if t in self.stop_ids), len(row))
                text = self.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
                out[i] = Generation(text, n, latency, len(idx))
        return [g for g in out if g is not None]

    def _prefill(self, rows: list[list[int]]) -> tuple[Any, Any, Any]:
        """Left-padded ids and attention mask for a batch, and a KV cache that already holds
        every row's prompt but its last token (generate runs that one and decodes on).

        Each row is prefilled on its own, unpadded: in a batch of RAG prompts sorted by length,
        padding was still ~25% of the prompt tokens, and prompt processing is most of the work
        when answers are short. The rows' keys and values are then left-padded into one cache;
        the mask hides the padding. Models whose cache is not a plain per-layer list (sliding
        window, hybrid) take the usual padded prefill (cache None)."""
        from transformers import DynamicCache

        width = max(len(r) for r in rows)
        padded = self.tokenizer.pad({"input_ids": rows}, padding_side="left", return_tensors="pt")
        ids = padded["input_ids"].to(self.device)
        mask = padded["attention_mask"].to(self.device)
        if min(len(r) for r in rows) < 2:
            return ids, mask, None
        per_row = []
        for r in rows:
            cache = self.model(
                input_ids=torch.tensor([r[:-1]], device=self.device),
                use_cache=True,
                logits_to_keep=1,
            ).past_key_values
            layers = getattr(cache, "layers", None)
            if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
                return ids, mask, None
            per_row.append([(layer.keys, layer.values) for layer in layers])
        merged = DynamicCache()
        for layer_idx in range(len(per_row[0])):
            keys, values = [], []
            for r, kv in zip(rows, per_row):
                pad = width - len(r)  # left padding in the sequence dim (B, heads, T, D)
                keys.append(torch.nn.functional.pad(kv[layer_idx][0], (0, 0, pad, 0)))
                values.append(torch.nn.functional.pad(kv[layer_idx][1], (0, 0, pad, 0)))
            merged.update(torch.cat(keys), torch.cat(values), layer_idx)
        return ids, mask, merged


class OpenAIGenerator:
    """Chat completions from an OpenAI-compatible HTTP endpoint, temperature 0."""

    def __init__(
        self, model: str, api_base: str, api_key: str | None, max_new_tokens: int, timeout_s: float
    ):
        self.model, self.api_base, self.api_key = model, api_base.rstrip("/"), api_key
        self.max_new_tokens, self.timeout_s = max_new_tokens, timeout_s
        self.name = f"openai:{model}"

    def _post(self, messages: Messages) -> dict[str, Any]:
        body = json.dumps(
            {
                "model": self.model,
                "messages": messages,
                "temperature": 0,
                "max_tokens": self.max_new_tokens,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(f"{self.api_base}/chat/completions", body, headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            raise RuntimeError(
                f"{self.api_base}/chat/completions: HTTP {e.code}: {detail}"
            ) from None
        except urllib.error.URLError as e:
            raise RuntimeError(f"{self.api_base}/chat/completions: {e.reason}") from None

    def generate(self, batch: list[Messages]) -> list[Generation]:
        out = []
        for messages in batch:
            t0 = time.perf_counter()
            data = self._post(messages)
            latency = time.perf_counter() - t0
            try:
                text = data["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError):
                raise RuntimeError(
                    f"{self.api_base}: unexpected response {str(data)[:300]}"
                ) from None
            usage = data.get("usage") or {}
            out.append(Generation(text.strip(), int(usage.get("completion_tokens", 0)), latency, 1))
        return out


def adapter_dir(path: str) -> str:
    """Accept a run folder (holding adapter/) or the adapter folder itself."""
    if os.path.isfile(os.path.join(path, "adapter", "adapter_config.json")):
        return os.path.join(path, "adapter")
    if os.path.isfile(os.path.join(path, "adapter_config.json")):
        return path
    raise FileNotFoundError(f"{path}: no adapter_config.json here or in {path}/adapter")


def load_generator(cfg: GenerateConfig) -> Generator:
    if cfg.model.startswith("openai:"):
        base = cfg.api_base or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return OpenAIGenerator(
            cfg.model.split(":", 1)[1],
            base,
            os.environ.get(cfg.api_key_env),
            cfg.max_new_tokens,
            cfg.timeout_s,
        )
    if cfg.backend not in ("auto", "transformers", "llamacpp"):
        raise ValueError(f"gen.backend must be auto, transformers or llamacpp, got {cfg.backend!r}")
    if cfg.backend == "llamacpp":
        from ragtune.generate_llamacpp import LlamaCppGenerator

        if not cfg.model.endswith(".gguf"):
            raise ValueError(f"gen.backend=llamacpp needs a .gguf model file, got {cfg.model!r}")
        if cfg.adapter and not cfg.adapter.endswith(".gguf"):
            raise ValueError(
                "gen.backend=llamacpp needs a LoRA .gguf adapter (ragtune export --to lora), "
                f"got {cfg.adapter!r}"
            )
        threads = runtime.free_cores() if cfg.threads == "auto" else int(cfg.threads)
        return LlamaCppGenerator(
            cfg.model, cfg.max_new_tokens, lora_path=cfg.adapter, threads=threads
        )
    from ragtune.models import load_model

    device = runtime.pick_device(cfg.device)
    runtime.set_threads(cfg.threads)
    model, tokenizer = load_model(cfg.model, runtime.pick_dtype(cfg.dtype, device), device)
    name = cfg.model
    if cfg.adapter:
        from peft import PeftModel

        # Merging the LoRA delta into the weights makes decoding as fast as the base model.
        model = PeftModel.from_pretrained(model, adapter_dir(cfg.adapter)).merge_and_unload().eval()
        name = f"{cfg.model}+{cfg.adapter}"
    return LocalGenerator(model, tokenizer, cfg.max_new_tokens, cfg.batch_size, name)
