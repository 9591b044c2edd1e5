"""One base model and its LoRA adapters, loaded once, answering per request's model name.

The adapters are loaded side by side into one peft model (`load_adapter`, one name each) and
switched per batch (`set_adapter`; the base runs with adapters disabled), so adding an
adapter costs its few MB, not another copy of the base. A batch always holds requests for a
single name: the batcher groups them, and a lock keeps one batch on the model at a time.
(llama.cpp's server scales one global LoRA for all requests, which mixes adapters across
concurrent requests: llama.cpp #10374.)

    pool = ModelPool.load("smollm2-135m", {"support": "runs/lora"}, rt, max_new_tokens=48)
    pool.generate("support", [messages], max_new_tokens=32)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ragtune import runtime
from ragtune.errors import RagtuneError
from ragtune.generation import abstain
from ragtune.generation.base import Generation, Messages
from ragtune.generation.load import GenerateConfig, refusal_threshold
from ragtune.generation.local import LocalGenerator, StreamHooks
from ragtune.generation.probe import RefusalProbe
from ragtune.runs import adapter_dir, full_model_dir


@dataclass(frozen=True)
class ModelEntry:
    name: str
    """What clients put in the `model` field."""
    adapter: str | None
    """The adapter's folder (None: the base model)."""
    threshold: abstain.Threshold | None
    """The calibrated refusal threshold (RAG mode applies it) of the adapter, or of the base
    when it is a full fine-tune's folder, if it has one."""
    probe: RefusalProbe | None = None
    """The refusal probe the threshold was calibrated on, if any: the engine scores this
    entry's refusals with it (`generation.probe`)."""


class ModelPool:
    def __init__(self, generator: Any, base_name: str, adapters: dict[str, str],
                 thresholds: dict[str, abstain.Threshold | None],
                 probes: dict[str, RefusalProbe | None] | None = None):  # fmt: skip
        self.generator = generator
        self.base_name = base_name
        probes = probes or {}
        self.entries = {
            base_name: ModelEntry(base_name, None, thresholds.get(base_name), probes.get(base_name))
        } | {n: ModelEntry(n, d, thresholds.get(n), probes.get(n)) for n, d in adapters.items()}
        self.lock = threading.Lock()

    @classmethod
    def load(cls, model: str, adapters: dict[str, str], rt: runtime.Runtime,
             max_new_tokens: int = 48, batch_size: int = 8) -> ModelPool:  # fmt: skip
        from ragtune.models import check_adapter_fits, load_adapter, load_model, peft_quietly

        if model.startswith("openai:"):
            raise RagtuneError(
                "--model: serve runs a local model (alias, folder or .gguf); for an API model "
                "point clients at it directly"
            )
        base, tokenizer = load_model(model, rt.dtype, rt.device)
        net: Any = base
        # A full fine-tune's folder carries its own calibration; a base model has none.
        thresholds = {model: refusal_threshold(GenerateConfig(model=model))}
        probes = {model: RefusalProbe.load(full_model_dir(model))}
        for i, (name, folder) in enumerate(adapters.items()):
            if name == model or name.startswith("rag:"):
                raise RagtuneError(f"--adapter {name}={folder}: the name is taken (base or rag:)")
            path = adapter_dir(folder)
            if i == 0:
                net = load_adapter(base, path, adapter_name=name)
            else:
                check_adapter_fits(base, path)
                with peft_quietly():
                    net.load_adapter(path, adapter_name=name)
            thresholds[name] = refusal_threshold(GenerateConfig(model=model, adapter=folder))
            probes[name] = RefusalProbe.load(path)
        net.eval()
        gen = LocalGenerator(net, tokenizer, max_new_tokens, batch_size, model)
        return cls(gen, model, adapters, thresholds, probes)

    @contextlib.contextmanager
    def _selected(self, name: str) -> Iterator[None]:
        net: Any = getattr(self.generator, "model", None)
        if len(self.entries) == 1:  # no adapters loaded: a plain model, only the base exists
            yield
        elif name == self.base_name:
            with net.disable_adapter():
                yield
        else:
            net.set_adapter(name)
            yield

    def generate(self, name: str, batch: list[Messages], max_new_tokens: int,
                 refusals: list[str] | None = None, stream: StreamHooks | None = None,
                 spans: list[list[str]] | None = None) -> list[Generation]:  # fmt: skip
        if name not in self.entries:
            raise KeyError(name)
        with self.lock, self._selected(name):
            self.generator.max_new_tokens = max_new_tokens
            self.generator.probe = self.entries[name].probe
            return self.generator.generate(batch, refusals, spans, stream=stream)

    def count_prompt_tokens(self, messages: Messages) -> int:
        return self.generator.count_prompt_tokens(messages)
