"""Verification that an exported file behaves like the transformers model it came from.

`reference` records what the fp32 transformers model (base + merged adapter) does on a few
questions: the prompts its chat template renders, their token ids, the next-token logits of
the first prompt, and its greedy answers. `check_gguf` then loads a GGUF in llama.cpp and
fails loudly (ExportError) when the file does not load, its embedded chat template renders
a different prompt, llama.cpp tokenizes the prompt differently (token for token), or its
logits point elsewhere (cosine below `min_logit_cosine`; tuned SmolLM2 scores 1.0000 in
f16 and 0.9988 in q4_k_m, the test model with a wrong q/k layout 0.36). It then reports how often llama.cpp's answers agree with
transformers' and the F1 of both against the gold answers (`ragtune.eval.metrics`), plus
llama.cpp's prompt and decode tokens/s. `check_merged` does the same for the safetensors
folder, loaded with plain transformers.

    ref = reference(model, tokenizer, examples, PromptConfig(), max_new_tokens=48)
    row = check_gguf(Path("model-q8_0.gguf"), ref, threads=2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ragtune.eval import metrics
from ragtune.example import Example
from ragtune.export import ExportError
from ragtune.generation.base import Messages
from ragtune.generation.local import LocalGenerator
from ragtune.prompt.grounded import PromptConfig, build_messages, render_prompt
from ragtune.prompt.refusal import is_refusal
from ragtune.text import metric_tokens

# Used when no --data is given: English, unanswerable and Chinese, so the template, special
# tokens and multi-byte text all pass through both tokenizers.
SAMPLES = [
    Example(
        id="sample-en",
        question="Who founded Marlowe Station?",
        contexts=["Marlowe Station was founded in 1962 on the river Tessa by Ada Quill."],
        answers=["Ada Quill"],
    ),
    Example(
        id="sample-unanswerable",
        question="How many people live in Marlowe Station?",
        contexts=["Marlowe Station was founded in 1962 on the river Tessa by Ada Quill."],
        answerable=False,
    ),
    Example(
        id="sample-zh",
        question="北京大学在哪里？",
        contexts=["北京大学位于北京，创建于1898年。"],
        answers=["北京"],
    ),
]


@dataclass
class Reference:
    """What transformers did; computed once, before the fp32 model is cast or freed."""

    examples: list[Example]
    messages: list[Messages]
    prompts: list[str]
    """Prompts rendered by the HF tokenizer's chat template (generation prompt added)."""
    prompt_ids: list[list[int]]
    """Their token ids, no special tokens added: exactly what ragtune trains and decodes on."""
    logits: np.ndarray
    """(vocab,) fp32 next-token logits after prompt_ids[0]."""
    chat_template: str
    answers: list[str]
    prompt: PromptConfig
    """The prompt settings: their refusal sentences decide what counts as a refusal."""


@torch.inference_mode()
def reference(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    prompt: PromptConfig,
    max_new_tokens: int,
    answer: bool = True,
) -> Reference:
    """Run the fp32 transformers model on `examples`; `answer=False` skips generation."""
    messages = [build_messages(e.question, e.contexts, prompt) for e in examples]
    prompts = [render_prompt(tokenizer, m) for m in messages]
    ids = [list(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    logits = model(torch.tensor([ids[0]])).logits[0, -1].float().numpy()
    answers = []
    if answer:
        gen = LocalGenerator(model, tokenizer, max_new_tokens, batch_size=8, name="transformers")
        answers = [g.text for g in gen.generate(messages)]
    return Reference(
        examples, messages, prompts, ids, logits, tokenizer.chat_template, answers, prompt
    )


def _first_diff(a: list[Any] | str, b: list[Any] | str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))


def answers_agree(ex: Example, a: str, b: str, prompt: PromptConfig) -> bool:
    """Two engines' answers agree: the same normalised tokens, or both refusing (in the
    refusal sentences of `prompt`, the one the model was trained on)."""
    if is_refusal(a, prompt) and is_refusal(b, prompt):
        return True
    lang = metrics.example_language(ex)
    return metric_tokens(a, lang) == metric_tokens(b, lang)


def agreement(ref: Reference, answers: list[str]) -> dict[str, Any]:
    """How often two answer lists agree (`answers_agree`), and each one's score vs gold, with
    the refusal sentences of the prompt the model was trained on."""
    n_same = sum(
        answers_agree(e, a, b, ref.prompt) for e, a, b in zip(ref.examples, ref.answers, answers)
    )
    mine, _ = metrics.evaluate(ref.examples, answers, refusal_cfg=ref.prompt, semantic=False)
    theirs, _ = metrics.evaluate(ref.examples, ref.answers, refusal_cfg=ref.prompt, semantic=False)
    return {
        "n": len(answers),
        "agreement": 100.0 * n_same / len(answers) if answers else None,
        "f1": mine["f1"],
        "exact_match": mine["exact_match"],
        "f1_transformers": theirs["f1"],
        "exact_match_transformers": theirs["exact_match"],
    }


def check_prompts(
    name: str,
    ref: Reference,
    render: Callable[[Messages], str],
    tokenize: Callable[[str], list[int]],
    template: str | None,
) -> None:
    """Raise ExportError unless `render` / `tokenize` reproduce the reference prompts and ids."""
    if template != ref.chat_template:
        raise ExportError(f"{name}: embedded chat template differs from the tokenizer's")
    for prompt, ids, messages in zip(ref.prompts, ref.prompt_ids, ref.messages):
        text = render(messages)
        if text != prompt:
            i = _first_diff(text, prompt)
            raise ExportError(
                f"{name}: chat template renders a different prompt at character {i}: "
                f"{text[max(0, i - 20) : i + 20]!r} vs transformers {prompt[max(0, i - 20) : i + 20]!r}"
            )
        got = tokenize(prompt)
        if got != ids:
            i = _first_diff(got, ids)
            raise ExportError(
                f"{name}: tokenizes the prompt differently from transformers at token {i} "
                f"of {len(ids)}: {got[i : i + 5]} vs {ids[i : i + 5]}"
            )


def check_logits(
    name: str, ref: Reference, logits: np.ndarray, min_cosine: float
) -> dict[str, Any]:
    cos = cosine(logits, ref.logits)
    if cos < min_cosine:
        raise ExportError(
            f"{name}: next-token logits have cosine {cos:.3f} with transformers' "
            f"(< min_logit_cosine={min_cosine}); the weights are not the model's"
        )
    return {
        "logit_cosine": round(cos, 5),
        "top1_match": int(logits.argmax()) == int(ref.logits.argmax()),
    }


def check_gguf(
    path: Path,
    ref: Reference,
    *,
    lora: Path | None = None,
    threads: int | None = None,
    n_ctx: int = 4096,
    max_new_tokens: int = 48,
    min_logit_cosine: float = 0.9,
) -> dict[str, Any]:
    """Load `path` (+ `lora`) in llama.cpp, check it against `ref`; one row for export.json."""
    from ragtune.generation.llamacpp import LlamaCppGenerator

    name = path.name + (f" + {lora.name}" if lora else "")
    try:
        gen = LlamaCppGenerator(
            path, max_new_tokens, lora_path=lora, threads=threads, n_ctx=n_ctx, name=name
        )
    except (ValueError, ImportError) as e:
        raise ExportError(f"{name}: does not load in llama.cpp: {e}") from None
    with gen:
        check_prompts(name, ref, gen.render, gen.tokenize, gen.chat_template)
        try:
            logits = gen.next_token_logits(ref.prompt_ids[0])
            answers = [g.text for g in gen.generate(ref.messages)] if ref.answers else None
        except ValueError as e:  # a prompt longer than the context; the message names the file
            raise ExportError(str(e)) from None
        stats = gen.stats
    row: dict[str, Any] = {"file": name, "engine": "llama.cpp"}
    row.update(check_logits(name, ref, logits, min_logit_cosine))
    if answers is not None:
        row.update(agreement(ref, answers))
        row["prompt_tokens_per_s"] = _rate(stats["prompt_tokens"], stats["prompt_s"])
        row["decode_tokens_per_s"] = _rate(stats["decode_tokens"], stats["decode_s"])
        row["answers"] = answers
    return row


def _rate(n: float, seconds: float) -> float | None:
    return n / seconds if seconds else None


@torch.inference_mode()
def check_merged(folder: Path, ref: Reference, min_logit_cosine: float = 0.9) -> dict[str, Any]:
    """Reload the merged folder with plain transformers (no ragtune, no peft) and compare."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = folder.name + "/"
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    except (OSError, ValueError) as e:
        raise ExportError(f"{folder}: does not load with transformers: {e}") from None
    check_prompts(
        name,
        ref,
        lambda m: render_prompt(tokenizer, m),
        lambda p: list(tokenizer(p, add_special_tokens=False)["input_ids"]),
        tokenizer.chat_template,
    )
    logits = model(torch.tensor([ref.prompt_ids[0]])).logits[0, -1].numpy()
    return {
        "file": name,
        "engine": "transformers",
        **check_logits(name, ref, logits, min_logit_cosine),
    }
