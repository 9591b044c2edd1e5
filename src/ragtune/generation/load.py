"""A model spec -> a ready `Generator`: the one factory eval, RAG and serving load engines with.

- `openai:MODEL`: an OpenAI-compatible endpoint (`generation.openai`).
- a `.gguf` file with `backend=llamacpp`: llama.cpp itself (`generation.llamacpp`).
- anything else `models.resolve` accepts: transformers (`generation.local`), with a LoRA
  adapter merged into the weights.

Device, dtype and threads come in resolved (`runtime.Runtime`); this module changes no
process-wide state (the stage sets torch's thread count itself).

    gen = load_generator(GenerateConfig(model="smollm2-135m", adapter="runs/x"), rt)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ragtune import runtime
from ragtune.config import require
from ragtune.errors import RagtuneError
from ragtune.generation import abstain
from ragtune.generation.base import Generator
from ragtune.generation.probe import PROBE_FILE, RefusalProbe
from ragtune.runs import adapter_dir, full_model_dir


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
    api_base: str | None = None
    """Base URL for openai:MODEL (default $OPENAI_BASE_URL or https://api.openai.com/v1)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key for openai:MODEL (may be unset for local servers)."""
    timeout_s: float = 120.0
    """Per-request timeout for API models, seconds."""
    retries: int = 4
    """Retries of an API request after a 429, a 5xx, a timeout or a dropped connection, with
    exponential backoff (Retry-After honoured)."""
    backend: Literal["auto", "transformers", "llamacpp"] = "auto"
    """auto | transformers | llamacpp. auto runs local models with transformers (a .gguf is
    dequantized first); llamacpp runs a .gguf model directly in llama.cpp, as llama-cli and
    Ollama do (adapter must then be a LoRA .gguf from `ragtune export --to lora`)."""

    refusal_threshold: float | Literal["auto", "none"] = "auto"
    """Refuse when the refusal score (the model's probability of starting the refusal
    sentence, or the run's refusal probe: `refusal_score`) is above this
    (0-1), else answer with that start suppressed (`generation.abstain`); auto: the threshold
    calibrated for the adapter (written by training; with no adapter, the model's own when it
    is a full fine-tune's model/ folder), or none without one; none: greedy decoding decides.
    With a refusal probe (`refusal_score`) the threshold applies to the probe's score. For a
    GGUF run by llama.cpp, give the number from the run's ragtune_calibration.json when its
    `score` is start (its `threshold`, or a language's `thresholds_by_lang` entry)."""

    refusal_score: Literal["auto", "start"] = "auto"
    """auto: when the adapter (or a full fine-tune's model folder) holds a refusal probe
    (`generation.probe`, fitted by calibration with `calibrate.probe=true`), the refusal
    score is its reading of the model's hidden state at the answer start, and the calibrated
    threshold applies to that; start: always P(refusal start). Local engines only: llama.cpp
    and API models score the refusal start."""

    extractive: bool = False
    """Constrain answers to whole words copied from one passage, or the refusal sentence
    when no threshold decides (`generation.extractive`; local engines only, an API model
    answers freely). Read by eval and the RAG pipeline (`ragtune ask`); the server has its
    own `extractive` setting."""

    @property
    def is_local(self) -> bool:
        """Run in this process by transformers (what the runtime probes measure)."""
        return self.backend != "llamacpp" and not self.model.startswith("openai:")

    def __post_init__(self) -> None:
        require(self, "refusal_threshold", min=0, max=1, allow=("auto", "none"))
        require(self, "max_new_tokens", min=1)
        require(self, "batch_size", min=1)
        require(self, "timeout_s", above=0)
        require(self, "retries", min=0)


def load_generator(cfg: GenerateConfig, rt: runtime.Runtime | None = None) -> Generator:
    """The engine `cfg` names, on the device/dtype/threads of `rt` (default: resolved now)."""
    if cfg.model.startswith("openai:"):
        from ragtune.generation.openai import OpenAIGenerator

        base = cfg.api_base or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return OpenAIGenerator(
            cfg.model.split(":", 1)[1],
            base,
            os.environ.get(cfg.api_key_env),
            cfg.max_new_tokens,
            cfg.timeout_s,
            cfg.retries,
        )
    rt = rt or runtime.resolve(runtime.RuntimeSection())
    if cfg.backend == "llamacpp":
        from ragtune.generation.llamacpp import LlamaCppGenerator

        if not cfg.model.endswith(".gguf"):
            raise RagtuneError(f"gen.backend=llamacpp needs a .gguf model file, got {cfg.model!r}")
        if cfg.adapter and not cfg.adapter.endswith(".gguf"):
            raise RagtuneError(
                "gen.backend=llamacpp needs a LoRA .gguf adapter (ragtune export --to lora), "
                f"got {cfg.adapter!r}"
            )
        return LlamaCppGenerator(
            cfg.model, cfg.max_new_tokens, lora_path=cfg.adapter, threads=rt.threads
        )
    from ragtune.generation.local import LocalGenerator
    from ragtune.models import load_model

    model, tokenizer = load_model(cfg.model, rt.dtype, rt.device)
    name = cfg.model
    if cfg.adapter:
        from ragtune.models import load_adapter

        # Merging the LoRA delta into the weights makes decoding as fast as the base model.
        model = load_adapter(model, adapter_dir(cfg.adapter)).merge_and_unload().eval()
        name = f"{cfg.model}+{cfg.adapter}"
    probe = RefusalProbe.load(p.parent) if (p := probe_path(cfg)) else None
    gen = LocalGenerator(model, tokenizer, cfg.max_new_tokens, cfg.batch_size, name, probe)
    if probe is not None and not 0 <= probe.layer < gen.layer_count:
        raise RagtuneError(
            f"{p}: a probe of layer {probe.layer}, and the model has {gen.layer_count} hidden "
            "states; recalibrate the run (ragtune calibrate RUN)"
        )
    return gen


def refusal_threshold(cfg: GenerateConfig) -> abstain.Threshold | None:
    """The threshold `cfg.refusal_threshold` asks for (`abstain.resolve_threshold`), checked
    against the score the engine of `cfg` computes: a threshold calibrated on the refusal
    probe's scores means nothing against P(refusal start), and the other way round."""
    if cfg.refusal_threshold != "auto":
        return abstain.resolve_threshold(cfg.refusal_threshold, cfg.adapter, cfg.model)
    tuned = cfg.adapter or cfg.model
    record = abstain.read_calibration(tuned)  # read once: the threshold and its score kind
    threshold = abstain.saved_threshold(record)
    if record is None or threshold is None:
        return None
    calibrated_on_probe = record.get("score") == "probe"
    answered = record.get("answered")
    if (
        not calibrated_on_probe
        and isinstance(answered, dict)
        and answered.get("refusal_block") != abstain.BLOCK
    ):
        # The score now counts every spelling of the start: it is higher than the one this
        # threshold was chosen on, and would refuse more than the calibration meant.
        raise RagtuneError(
            f"{abstain.calibration_path(tuned)}: the threshold was chosen on an earlier "
            "P(refusal start), before it counted the start's other spellings; recalibrate "
            "(ragtune calibrate RUN) or give gen.refusal_threshold a number"
        )
    if calibrated_on_probe and probe_path(cfg) is None:
        why = (
            "gen.refusal_score=start asks for P(refusal start)"
            if cfg.refusal_score == "start"
            else "this engine cannot read it (local transformers engines only)"
            if not cfg.is_local or str(cfg.adapter or "").endswith(".gguf")
            else f"its {PROBE_FILE} is missing"
        )
        raise RagtuneError(
            f"{abstain.calibration_path(tuned)}: the threshold was calibrated on the refusal "
            f"probe's scores, and {why}; recalibrate without it (ragtune calibrate RUN "
            "calibrate.probe=false) or give gen.refusal_threshold a number"
        )
    path = probe_path(cfg)
    digest = (record.get("probe") or {}).get("digest")
    if calibrated_on_probe and path is not None and digest:
        probe = RefusalProbe.load(path.parent)
        if probe is not None and probe.digest() != digest:
            raise RagtuneError(
                f"{path}: refitted after {abstain.calibration_path(tuned)} chose its threshold "
                "(an interrupted calibration?); recalibrate on it (ragtune calibrate RUN)"
            )
    if not calibrated_on_probe and path is not None:
        raise RagtuneError(
            f"{path}: a refusal probe beside a threshold calibrated on P(refusal "
            "start); recalibrate (ragtune calibrate RUN keeps the probe and calibrates on it; "
            "calibrate.probe=false removes it)"
        )
    return threshold


def probe_path(cfg: GenerateConfig) -> Path | None:
    """The refusal probe file the local engine of `cfg` scores refusals with, or None: the
    adapter's, or a full fine-tune's (given as the model), when it has one and
    `refusal_score` is auto."""
    if cfg.refusal_score != "auto" or not cfg.is_local:
        return None
    if cfg.adapter:
        if cfg.adapter.endswith(".gguf"):
            return None
        folder: str | None = adapter_dir(cfg.adapter)
    else:
        folder = full_model_dir(cfg.model)
    path = Path(folder) / PROBE_FILE if folder else None
    return path if path is not None and path.is_file() else None
