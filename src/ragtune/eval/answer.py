"""Answering a set of questions: each question with the passages to answer from, through one
`Generator`, resumable.

The passages are the caller's choice: the eval stage gives each example's gold contexts, and
an end-to-end RAG eval gives what a retriever returned. Finished chunks are appended to a
partial file as they come, so a killed run resumes where it stopped.

    gens = answer_all(generator, [Question(e.id, e.question, e.contexts) for e in examples],
                      PromptConfig(), partial=Path("out/predictions.partial.jsonl"), chunk=64)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ragtune.config import ConfigError
from ragtune.example import Example
from ragtune.generation.abstain import Threshold, at_question, decide
from ragtune.generation.base import CountsTokens, Generation, Generator
from ragtune.generation.grounded import generate_grounded
from ragtune.prompt.fit import fit_passages
from ragtune.prompt.grounded import PromptConfig, build_messages, refusal_for


@dataclass
class Question:
    id: str
    """Unique within the set: the key answers are saved and resumed under."""
    question: str
    """The user's question."""
    passages: Sequence[str]
    """The passages to answer from, in prompt order."""


def fit_questions(
    generator: Generator,
    examples: Sequence[Example],
    prompt: PromptConfig,
    max_length: int,
    max_new_tokens: int,
) -> tuple[list[Question], int]:
    """One Question per example, its passages fitted into `max_length` tokens with room for
    `max_new_tokens`, as training fits them; (questions, how many were shortened). API
    models, which cannot count, are left whole. Eval and calibration both ask through this,
    so a threshold is chosen on the prompts it will be used on."""
    if not isinstance(generator, CountsTokens):
        return [Question(e.id, e.question, e.contexts) for e in examples], 0
    budget = max_length - max_new_tokens
    questions, shortened = [], 0
    for e in examples:
        passages, cut = fit_passages(
            generator.count_prompt_tokens, e.question, e.contexts, prompt, budget
        )
        if any(c.strip() for c in e.contexts) and not passages:
            bare = generator.count_prompt_tokens(build_messages(e.question, [], prompt))
            raise ConfigError(
                f"max_length: {max_length} tokens leave no room for any passage of "
                f'"{e.id}" (the instruction and question take {bare}, the answer '
                f"max_new_tokens={max_new_tokens}); raise max_length"
            )
        questions.append(Question(e.id, e.question, passages))
        shortened += cut
    return questions, shortened


def _read_partial(path: Path, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Answers saved by an earlier, interrupted run (a torn last line is dropped)."""
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("id") in ids:
            done[row["id"]] = row
    return done


def _generate(
    generator: Generator,
    part: Sequence[Question],
    prompt: PromptConfig,
    threshold: Threshold | None,
    extractive: bool,
) -> list[Generation]:
    items = [(q.question, q.passages) for q in part]
    return generate_grounded(generator, items, prompt, threshold, extractive)


def answer_all(
    generator: Generator,
    questions: Sequence[Question],
    prompt: PromptConfig,
    partial: Path | None = None,
    chunk: int = 64,
    threshold: Threshold | None = None,
    extractive: bool = False,
) -> list[Generation]:
    """One Generation per question, in order. With `partial`, answers already saved there
    are reused and each finished chunk is appended to it. With a refusal `threshold`, each
    answer is scored and decided by it (`generation.abstain`); None: greedy decoding.
    `extractive` keeps answers to spans of their passages (`generation.extractive`)."""
    done = _read_partial(partial, {q.id for q in questions}) if partial else {}
    todo = [q for q in questions if q.id not in done]
    bar = tqdm(total=len(questions), initial=len(done), desc=f"eval {generator.name}", unit="q")
    f = partial.open("a", encoding="utf-8") if partial else None
    try:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            gens = _generate(generator, part, prompt, threshold, extractive)
            for q, g in zip(part, gens, strict=True):
                done[q.id] = {"id": q.id, **asdict(g)}
                if f:
                    f.write(json.dumps(done[q.id], ensure_ascii=False) + "\n")
            if f:
                f.flush()
            bar.update(len(part))
    finally:
        bar.close()
        if f:
            f.close()
    names = [f.name for f in fields(Generation)]
    gens = [Generation(**{k: done[q.id][k] for k in names if k in done[q.id]}) for q in questions]
    # Saved as generated (score and suppressed answer), decided here: the same saved answers
    # serve any threshold.
    return [
        decide(g, at_question(threshold, q.question), refusal_for(q.question, prompt))
        for g, q in zip(gens, questions)
    ]


def single_request_latency(
    generator: Generator,
    questions: Sequence[Question],
    prompt: PromptConfig,
    n: int,
    threshold: Threshold | None = None,
    extractive: bool = False,
) -> list[float]:
    """Wall time of answering each of the first `n` questions alone (batch 1), seconds: what
    one user waits, which a batched eval's per-answer time does not show."""
    out = []
    for q in questions[:n]:
        t0 = time.perf_counter()
        _generate(generator, [q], prompt, threshold, extractive)
        out.append(time.perf_counter() - t0)
    return out
