"""Batched greedy decoding with a transformers causal LM: the local engine of the one generation
path (eval, RAG and serving all call it through the `Generator` protocol).

Batches are sorted by length and prefilled row by row (no compute on padding) into one
left-padded KV cache, then decoded with the KV cache until the chat template's end-of-turn
token. A LoRA adapter is merged into the weights by `load.load_generator`, so decoding runs at
the base model's speed.

    gen = LocalGenerator(model, tokenizer, max_new_tokens=48, batch_size=16, name="smollm2")
    gen.generate([build_messages(question, passages, PromptConfig())])[0].text
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import torch

from ragtune.generation import abstain
from ragtune.generation.base import Generation, Messages
from ragtune.generation.extractive import (
    SpanConstraint,
    copy_constraint,
    token_pieces,
)
from ragtune.generation.probe import RefusalProbe
from ragtune.prompt.grounded import render_prompt


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


def fresh_strides_into_head(model: Any) -> None:
    """Hand the LM head its input with fresh (contiguous) strides.

    transformers projects only the last position at prefill (`logits_to_keep=1`), a slice
    `hidden[:, -1:, :]` whose batch stride is still the whole sequence's. When the head's weight
    does not require grad (a merged LoRA adapter: peft freezes every weight), torch 2.13's
    matmul then takes a batched path that copies the whole vocabulary x hidden weight for each
    row: 0.55 s a call for Qwen2.5-0.5B's 151,936 x 896 head on a 2-core Xeon, which made a
    tuned model's prompts ~3x slower than its base's. A fresh base model's weights require grad
    and never hit it (matmul folds to `mm` when either side does; pytorch/pytorch#186148 is the
    missed fold). The copy here is of a few hidden vectors. Idempotent per model."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or getattr(head, "_ragtune_fresh_strides", False):
        return

    def hook(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            return None
        # Strides compared whole: `is_contiguous()` ignores size-1 dims, the matmul does not.
        if x.stride() != (x.shape[1] * x.shape[2], x.shape[2], 1):
            return (x.clone(memory_format=torch.contiguous_format), *args[1:])
        return None

    head.register_forward_pre_hook(hook)
    head._ragtune_fresh_strides = True


class LocalGenerator:
    """Greedy batched decoding with a transformers causal LM."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_new_tokens: int,
        batch_size: int,
        name: str,
        probe: RefusalProbe | None = None,
    ):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.probe = probe
        """When set, the refusal score is this probe's reading of the answer-start hidden
        state (`generation.probe`), not P(refusal start)."""
        self.stop_ids = stop_token_ids(tokenizer, model.config)
        self._starts: dict[tuple[str, int], abstain.Start] = {}
        self.device = next(model.parameters()).device
        fresh_strides_into_head(model)

    def count_prompt_tokens(self, messages: Messages) -> int:
        prompt = render_prompt(self.tokenizer, messages)
        return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def refusal_start(self, sentence: str) -> abstain.Start:
        """The refusal's scored start, tokenized as it begins a reply (training encodes the
        reply right after the prompt's generation marker, so the same ids), its last token
        in every spelling."""
        key = (sentence, abstain.START_TOKENS)
        if key not in self._starts:  # a few sentences, asked for on every row
            self._starts[key] = abstain.refusal_start(
                self.tokenizer(sentence, add_special_tokens=False)["input_ids"],
                lambda ids: token_pieces(self.tokenizer, ids),
                self._encode,
            )
        return self._starts[key]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return [list(i) for i in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    @torch.inference_mode()
    def generate(
        self,
        batch: list[Messages],
        refusals: list[str] | None = None,
        spans: list[list[str]] | None = None,
        stream: StreamHooks | None = None,
    ) -> list[Generation]:
        """`stream` (the server's) hears each row's refusal score before its decoding starts
        and its text as it grows, so a client can watch an answer arrive."""
        prompts = [render_prompt(self.tokenizer, m) for m in batch]
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        starts = [self.refusal_start(s) for s in refusals] if refusals is not None else None
        # Sorting by length keeps each batch's padding (wasted compute) small.
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        out: list[Generation | None] = [None] * len(prompts)
        pad_id = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            rows = [encoded[i] for i in idx]
            t0 = time.perf_counter()
            ids, mask, cache = self._prefill(rows)
            prompt_s = time.perf_counter() - t0 if cache is not None else 0.0
            scores: list[float | None] = [None] * len(idx)
            processors: list[Any] = []
            if spans is not None:
                processors.append(self._extractive([spans[i] for i in idx], ids.shape[1]))
            if starts is not None:
                row_starts = [starts[i] for i in idx]
                scores = self._refusal_scores(rows, ids, mask, cache, row_starts)
                processors.append(_suppress(row_starts, ids.shape[1], self.stop_ids))
            extra: dict[str, Any] = {}
            if stream is not None:
                for i, score in zip(idx, scores, strict=True):
                    if score is not None:
                        stream.score(i, score)
                extra["streamer"] = _Streamer(self.tokenizer, idx, self.stop_ids, stream)
            if processors:
                from transformers import LogitsProcessorList

                extra["logits_processor"] = LogitsProcessorList(processors)
            seqs = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                cache=cache,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=self.stop_ids,
                pad_token_id=pad_id,
                use_cache=True,
                **extra,
            )
            latency = time.perf_counter() - t0
            new = seqs[:, ids.shape[1] :].tolist()  # (B, new_tokens)
            for row, i, score in zip(new, idx, scores, strict=True):
                n = next((k for k, t in enumerate(row) if t in self.stop_ids), len(row))
                text = self.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
                out[i] = Generation(
                    text, n, latency, len(idx), len(encoded[i]), prompt_s, refusal_score=score
                )
        return [g for g in out if g is not None]

    @torch.inference_mode()
    def answer_states(self, batch: list[Messages], layers: list[int]) -> Any:
        """The hidden states at each prompt's last token, where the answer starts: a float32
        tensor (prompts, len(layers), hidden size), for fitting a refusal probe. Each prompt
        runs on its own, unpadded, as `_prefill` runs them."""
        states = []
        for m in batch:
            ids = self.tokenizer(render_prompt(self.tokenizer, m), add_special_tokens=False)
            out = self.model(
                input_ids=torch.tensor([ids["input_ids"]], device=self.device),
                output_hidden_states=list(layers),  # kept: only these (transformers >= 5.25)
                logits_to_keep=1,
            )
            states.append(torch.stack([out.hidden_states[i][0, -1] for i in layers]).float())
        return torch.stack(states).cpu()

    @property
    def layer_count(self) -> int:
        """Entries of the model's `hidden_states`: the embeddings and one per block."""
        return int(self.model.config.num_hidden_layers) + 1

    def _extractive(self, row_spans: list[list[str]], prompt_len: int) -> Any:
        """A logits processor keeping each row's answer a span of whole words of its texts:
        the last text is the refusal sentence, copied from its start only."""

        constraints = []
        for texts in row_spans:
            ids = self._encode(texts)
            pieces = [token_pieces(self.tokenizer, i) for i in ids]
            constraints.append(copy_constraint(ids, pieces, self._encode))
        return _constrain(constraints, prompt_len, self.stop_ids)

    def _refusal_scores(
        self, rows: list[list[int]], ids: Any, mask: Any, cache: Any, starts: list[abstain.Start]
    ) -> list[float | None]:
        """P(reply starts with each row's refusal start), from one forward pass over each
        prompt's last token and the start's tokens but its last. With a prefilled cache that
        pass is a few tokens per row, and the cache is cropped back afterwards. With a probe,
        the same pass gives the hidden state at the prompt's last token, which it reads."""
        # Only the probe's layer is kept (transformers >= 5.25 selects by index; older ones
        # take the list as True and keep every layer): the padded path would otherwise hold
        # every layer's states over the whole batch.
        probe = {"output_hidden_states": [self.probe.layer]} if self.probe is not None else {}
        k = max(len(s.ids) for s in starts)
        # Rows whose start is shorter than k are padded with their own first token; only the
        # positions each start needs are read.
        tail = torch.tensor(
            [(list(s.ids) + [s.ids[0]] * k)[: k - 1] for s in starts], dtype=ids.dtype
        )
        tail = tail.to(self.device).reshape(len(rows), k - 1)
        if cache is not None:
            step_ids = torch.cat([ids[:, -1:], tail], dim=1)
            step_mask = torch.cat([mask, torch.ones_like(tail)], dim=1)
            first = torch.tensor([len(r) - 1 for r in rows], device=self.device)[:, None]
            positions = first + torch.arange(k, device=self.device)[None]
            out = self.model(
                input_ids=step_ids,
                attention_mask=step_mask,
                position_ids=positions,
                cache=cache,
                **probe,
            )
            cache.crop(-k)  # drop the k positions just added
        else:  # no reusable cache: the whole padded batch once more, with the start appended
            full_mask = torch.cat([mask, torch.ones_like(tail)], dim=1)
            positions = (full_mask.cumsum(1) - 1).clamp(min=0)
            out = self.model(
                input_ids=torch.cat([ids, tail], dim=1),
                attention_mask=full_mask,
                position_ids=positions,
                logits_to_keep=k,  # (B, k, V), not (B, T, V): a 150k vocabulary is large
                **probe,
            )
        if self.probe is not None:  # the prompt's last token is k positions from the end
            return list(self.probe.score(out.hidden_states[self.probe.layer][:, -k]))
        logprobs = torch.log_softmax(out.logits.float(), dim=-1)

        def row(b: int) -> Callable[[int, int], float]:
            return lambda j, t: float(logprobs[b, j, t])

        return [abstain.start_score(s, row(b)) for b, s in enumerate(starts)]

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
            ).cache
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


class StreamHooks(Protocol):
    def score(self, i: int, value: float) -> None: ...

    def text(self, i: int, delta: str) -> None: ...


class _Streamer:
    """A transformers streamer for a whole batch: generate() calls put() with the prompt
    (B, T) first, then with each step's (B,) new tokens. Each row's tokens are decoded as
    they grow and the new text is passed on; a row stops at its end-of-turn token. A word
    piece that decodes to an incomplete character waits for the next token."""

    def __init__(self, tokenizer: Any, rows: list[int], stop_ids: list[int], hooks: StreamHooks):
        self.tokenizer, self.rows, self.stop, self.hooks = tokenizer, rows, set(stop_ids), hooks
        self.tokens: list[list[int]] = [[] for _ in rows]
        self.sent = [""] * len(rows)
        self.done = [False] * len(rows)
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for b, t in enumerate(value.reshape(-1).tolist()):
            if self.done[b]:
                continue
            if t in self.stop:
                self.done[b] = True
                continue
            self.tokens[b].append(t)
            text = self.tokenizer.decode(self.tokens[b], skip_special_tokens=True).lstrip()
            if text.endswith("\ufffd") or not text.startswith(self.sent[b]):
                continue
            if len(text) > len(self.sent[b]):
                self.hooks.text(self.rows[b], text[len(self.sent[b]) :])
                self.sent[b] = text

    def end(self) -> None:
        pass


def _suppress(starts: list[abstain.Start], prompt_len: int, stop_ids: list[int]) -> Any:
    """A transformers logits processor that keeps each row's reply from beginning with its
    refusal start (`abstain.blocked_next`). Runs after the extractive mask: when blocking
    leaves a row no token at all, the row may end its (empty) answer."""
    from transformers import LogitsProcessor

    longest = max(len(s.ids) for s in starts)

    class SuppressRefusalStart(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            if input_ids.shape[1] - prompt_len >= longest:
                return scores  # past every start: nothing left to block (most steps)
            generated = input_ids[:, prompt_len:].tolist()
            for b, (done, start) in enumerate(zip(generated, starts, strict=True)):
                tokens = abstain.blocked_next(done, start)
                if tokens:
                    scores[b, list(tokens)] = -float("inf")
                    if torch.isinf(scores[b]).all():
                        scores[b, stop_ids] = 0.0
            return scores

    return SuppressRefusalStart()


def _constrain(constraints: list[SpanConstraint], prompt_len: int, stop_ids: list[int]) -> Any:
    """A transformers logits processor that masks every token outside each row's spans."""
    from transformers import LogitsProcessor

    class CopySpans(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            step = input_ids.shape[1] - prompt_len
            mask = torch.full_like(scores, -float("inf"))
            for b, c in enumerate(constraints):
                if step > c.length:  # the token chosen at the previous step
                    c.advance(int(input_ids[b, -1]))
                allowed = list(c.next_tokens())
                if c.may_stop or not allowed:
                    allowed += stop_ids
                mask[b, allowed] = 0.0
            return scores + mask

    return CopySpans()
