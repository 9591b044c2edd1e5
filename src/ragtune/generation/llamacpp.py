"""Generation with llama.cpp (llama-cpp-python) on a GGUF file, the `Generator` seam's second
local engine: what llama-cli, llama-server and Ollama run, scored on ragtune's prompt.

The prompt is rendered with the chat template embedded in the GGUF (the one llama.cpp
serves), tokenized by llama.cpp with special tokens parsed, and decoded greedily (temperature
0, no repetition penalty) until an end-of-generation token or `max_new_tokens`. One prompt at
a time: llama-cpp-python has no batched decoding. Timings are split into prompt processing
and decoding (`stats`), since decode tokens/s is the number a deployment cares about.

    gen = LlamaCppGenerator("out/gguf/model-q8_0.gguf", max_new_tokens=48, threads=2)
    outputs = gen.generate([build_messages(ex, prompt_cfg)])
    gen.stats["decode_tokens"] / gen.stats["decode_s"]
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.generation import abstain
from ragtune.generation.base import Generation, GenerationError, Messages
from ragtune.generation.extractive import SpanConstraint, copy_constraint


class LlamaCppGenerator:
    """Greedy decoding of a GGUF model (optionally with a LoRA GGUF) through llama.cpp."""

    def __init__(
        self,
        model_path: str | Path,
        max_new_tokens: int = 48,
        *,
        lora_path: str | Path | None = None,
        threads: int | None = None,
        n_ctx: int = 4096,
        name: str | None = None,
    ):
        try:
            import llama_cpp
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise ImportError(
                "backend=llamacpp needs llama-cpp-python: pip install llama-cpp-python"
            ) from None
        self._llama_cpp = llama_cpp
        path = Path(model_path)
        if not path.is_file():
            raise GenerationError(f"{path}: GGUF file not found")
        if lora_path is not None and not Path(lora_path).is_file():
            raise GenerationError(f"{lora_path}: LoRA GGUF file not found")
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        try:
            self.llm = llama_cpp.Llama(
                str(path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                lora_path=str(lora_path) if lora_path else None,
                verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise GenerationError(f"{path}: llama.cpp could not load it: {e}") from None
        self.name = name or path.name + (f"+{Path(lora_path).name}" if lora_path else "")
        self.max_new_tokens, self.n_ctx = max_new_tokens, n_ctx
        meta = self.llm.metadata
        self.chat_template: str | None = meta.get("tokenizer.chat_template")
        self.add_bos = meta.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self._starts: dict[tuple[str, int], abstain.Start] = {}
        self._formatter = (
            Jinja2ChatFormatter(
                self.chat_template, self.token_text(self.llm.token_eos()), self.bos_text()
            )
            if self.chat_template
            else None
        )
        self.stats = {"prompt_tokens": 0, "prompt_s": 0.0, "decode_tokens": 0, "decode_s": 0.0}
        self._eog: list[int] | None = None

    def token_text(self, tid: int) -> str:
        return self.llm.detokenize([tid], special=True).decode("utf-8", errors="replace")

    def bos_text(self) -> str:
        bos = self.llm.token_bos()
        return self.token_text(bos) if bos >= 0 else ""

    def render(self, messages: Messages) -> str:
        """The prompt as llama.cpp's server renders it: the GGUF's own chat template."""
        if self._formatter is None:
            raise GenerationError(f"{self.name}: the GGUF has no tokenizer.chat_template")
        return str(self._formatter(messages=messages).prompt)  # type: ignore[arg-type]

    def tokenize(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=self.add_bos, special=True))

    def count_prompt_tokens(self, messages: Messages) -> int:
        return len(self.tokenize(self.render(messages)))

    def eog_ids(self) -> list[int]:
        """The vocabulary's end-of-generation ids (looked up once: one call per token)."""
        if self._eog is None:
            self._eog = [t for t in range(self.llm.n_vocab()) if self.is_eog(t)]
        return self._eog

    def is_eog(self, tid: int) -> bool:
        return bool(self._llama_cpp.llama_vocab_is_eog(self._vocab, tid))

    def next_token_logits(self, ids: list[int]) -> np.ndarray:
        """(n_vocab,) logits after `ids`: the raw numbers behind the first generated token."""
        self._check_length(ids)
        self.llm.reset()
        self.llm.eval(ids)
        return self._last_logits()

    def _last_logits(self) -> np.ndarray:
        ptr = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),)).copy()

    def _check_length(self, ids: list[int]) -> None:
        if len(ids) + self.max_new_tokens > self.n_ctx:
            raise GenerationError(
                f"{self.name}: prompt of {len(ids)} tokens + {self.max_new_tokens} new tokens "
                f"exceeds the context of {self.n_ctx}"
            )

    def refusal_start(self, sentence: str) -> abstain.Start:
        key = (sentence, abstain.START_TOKENS)
        if key not in self._starts:  # a few sentences, asked for on every row
            self._starts[key] = abstain.refusal_start(
                self._encode([sentence])[0], self._pieces, self._encode
            )
        return self._starts[key]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return [
            list(self.llm.tokenize(t.encode("utf-8"), add_bos=False, special=False)) for t in texts
        ]

    def _pieces(self, ids: list[int]) -> list[str]:
        # llama.cpp keeps a token's leading space when it is turned into text on its own.
        return [self.llm.detokenize([t]).decode("utf-8", errors="replace") for t in ids]

    def refusal_score(self, ids: list[int], start: abstain.Start) -> float:
        """P(the reply after `ids` begins with `start`), from llama.cpp's logits."""
        logits = self.next_token_logits(ids)
        logprobs = []  # per position of the start: log-softmax over the vocabulary
        for j in range(len(start.ids)):
            if j:
                self.llm.eval([start.ids[j - 1]])
                logits = self._last_logits()
            z = logits.astype(np.float64)
            logprobs.append(z - z.max() - np.log(np.exp(z - z.max()).sum()))
        return abstain.start_score(start, lambda j, t: float(logprobs[j][t]))

    def _one(
        self,
        ids: list[int],
        start: abstain.Start | None = None,
        copy: SpanConstraint | None = None,
    ) -> tuple[list[int], float, float]:
        self._check_length(ids)
        out: list[int] = []
        sampled = 0
        t0 = time.perf_counter()
        t_first = t_last = t0
        prompt_len = len(ids)
        stops = self.eog_ids() if copy is not None or start is not None else []

        def constrain(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
            if start is not None:
                tokens = abstain.blocked_next(list(input_ids[prompt_len:]), start)
                if tokens:
                    scores[list(tokens)] = -np.inf
            if copy is not None:
                if len(input_ids) - prompt_len > copy.length:
                    copy.advance(int(input_ids[-1]))
                allowed = list(copy.next_tokens())
                if copy.may_stop or not allowed:
                    allowed += stops
                keep = np.full_like(scores, -np.inf)
                keep[allowed] = 0.0
                scores = scores + keep
            if np.isinf(scores).all():  # blocking left nothing: end the answer
                scores[stops] = 0.0
            return scores

        processors = None
        if start is not None or copy is not None:
            processors = self._llama_cpp.LogitsProcessorList([constrain])
        for tid in self.llm.generate(
            ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True, logits_processor=processors
        ):
            t_last = time.perf_counter()
            sampled += 1
            if sampled == 1:
                t_first = t_last
            if self.is_eog(tid):
                break
            out.append(tid)
            if len(out) >= self.max_new_tokens:
                break
        # The first token costs the prompt pass; every later one costs one decode step.
        self.stats["prompt_tokens"] += len(ids)
        self.stats["prompt_s"] += t_first - t0
        self.stats["decode_tokens"] += max(0, sampled - 1)
        self.stats["decode_s"] += t_last - t_first
        return out, t_last - t0, t_first - t0

    def _span_constraint(self, texts: list[str]) -> SpanConstraint:
        """Answers copied from whole words of `texts`; the last (the refusal) from its start."""

        sources = self._encode(texts)
        return copy_constraint(sources, [self._pieces(s) for s in sources], self._encode)

    def generate(
        self,
        batch: list[Messages],
        refusals: list[str] | None = None,
        spans: list[list[str]] | None = None,
    ) -> list[Generation]:
        gens = []
        for i, messages in enumerate(batch):
            copy = None
            if spans is not None:
                copy = self._span_constraint(spans[i])
            prompt = self.tokenize(self.render(messages))
            start, score, score_s = None, None, 0.0
            if refusals is not None:
                t0 = time.perf_counter()
                start = self.refusal_start(refusals[i])
                score = self.refusal_score(prompt, start)
                score_s = time.perf_counter() - t0
            ids, latency, prompt_s = self._one(prompt, start, copy)
            text = self.llm.detokenize(ids).decode("utf-8", errors="replace").strip()
            gens.append(
                Generation(
                    text,
                    len(ids),
                    latency + score_s,
                    1,
                    len(prompt),
                    prompt_s + score_s,
                    refusal_score=score,
                )
            )
        return gens

    def close(self) -> None:
        self.llm.close()

    def __enter__(self) -> LlamaCppGenerator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
