"""QA pairs written by a teacher model, per chunk, kept only when grounded in that chunk.

The teacher is any OpenAI-compatible endpoint (`teacher=openai:MODEL`, `teacher_api_base`): a
local model behind llama.cpp's server or `ragtune serve`, or a cloud API. Each chunk is sent
once, in its own language's instructions, asking for JSON pairs with a supporting quote. A
pair is kept when its answer or its quote occurs in the chunk (`text.answer_in_context`);
the rest is counted as ungrounded. Requests run `concurrency` at a time; the client retries
429s, 5xx and timeouts with backoff. Each chunk's result is appended to a cache file
(`OUT.teacher.jsonl`) as it arrives, so a re-run skips the chunks already done and a killed
run resumes. The totals: requests, tokens, failures.

    pairs, stats = ask_teacher(generator, chunks, Path("data/x.jsonl.teacher.jsonl"), per_chunk=3)
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ragtune.generation.base import GenerationError, Generator
from ragtune.generation.parse import first_json
from ragtune.rag.chunk import Chunk
from ragtune.text import answer_in_context, language

SYSTEM_EN = (
    "You write question-answer pairs for a reading-comprehension data set. "
    "Reply with a JSON list only, no other text."
)
PROMPT_EN = (
    "Passage:\n{passage}\n\nWrite {n} questions that the passage answers. Each answer must be a "
    "short span copied exactly from the passage: a name, number, date or phrase of a few words. "
    'Reply with a JSON list only:\n[{{"question": "...", "answer": "...", '
    '"quote": "the words of the passage around the answer"}}]'
)
SYSTEM_ZH = "你为阅读理解数据集编写问答对。只回复一个 JSON 列表，不要其他文字。"
PROMPT_ZH = (
    "段落：\n{passage}\n\n写{n}个这段文字能回答的问题。每个答案必须是从段落中原样摘录的简短片段："
    '一个名字、数字、日期或几个词的短语。只回复一个 JSON 列表：\n[{{"question": "……", "answer": "……", '
    '"quote": "段落中答案所在的原文"}}]'
)
# One worked example before the real request: without it a 1.5B teacher answered with whole
# sentences (or a numbered list instead of JSON); with it, short spans. Its facts are not in
# any user's chunk, so an answer copied from it fails the grounding check and is dropped.
SHOT_EN = (
    "The Eiffel Tower was completed in 1889 as the entrance arch of the World's Fair in Paris. "
    "It was designed by the company of Gustave Eiffel and is 330 metres tall.",
    [{"question": "When was the Eiffel Tower completed?", "answer": "1889",
      "quote": "The Eiffel Tower was completed in 1889"},
     {"question": "Whose company designed the Eiffel Tower?", "answer": "Gustave Eiffel",
      "quote": "designed by the company of Gustave Eiffel"}],
)  # fmt: skip
SHOT_ZH = (
    "埃菲尔铁塔于1889年建成，是巴黎世界博览会的入口拱门。它由古斯塔夫·埃菲尔的公司设计，高330米。",
    [{"question": "埃菲尔铁塔是哪一年建成的？", "answer": "1889年", "quote": "埃菲尔铁塔于1889年建成"},
     {"question": "埃菲尔铁塔由谁的公司设计？", "answer": "古斯塔夫·埃菲尔", "quote": "由古斯塔夫·埃菲尔的公司设计"}],
)  # fmt: skip


def messages_for(passage: str, n: int) -> list[dict[str, str]]:
    """The teacher's request for `n` pairs on `passage`, in the passage's language."""
    zh = language(passage) == "zh"
    system, prompt, (shot, pairs) = (
        (SYSTEM_ZH, PROMPT_ZH, SHOT_ZH) if zh else (SYSTEM_EN, PROMPT_EN, SHOT_EN)
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": prompt.format(n=len(pairs), passage=shot)},
        {"role": "assistant", "content": json.dumps(pairs, ensure_ascii=False)},
        {"role": "user", "content": prompt.format(n=n, passage=passage)},
    ]


def parse_pairs(text: str) -> list[dict[str, str]]:
    """The pairs in a teacher reply (a JSON list of {question, answer, quote}); malformed
    entries are skipped, a reply with no JSON list raises ValueError."""
    items = first_json(text, list)
    if items is None:
        raise ValueError("no JSON list of pairs in the reply")
    out = []
    for it in items:
        if (
            isinstance(it, dict)
            and isinstance(it.get("question"), str)
            and isinstance(it.get("answer"), str)
        ):
            out.append({"question": it["question"].strip(), "answer": it["answer"].strip(),
                        "quote": str(it.get("quote") or "").strip()})  # fmt: skip
    return out


def grounded(pair: dict[str, str], chunk: str) -> bool:
    if not pair["question"] or not pair["answer"]:
        return False
    return (
        answer_in_context(pair["answer"], [chunk])
        or bool(pair["quote"])
        and answer_in_context(pair["quote"], [chunk])
    )


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        raw = path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # a torn last line: later rows start on their own
            with path.open("ab") as f:
                f.write(b"\n")
        for line in raw.decode("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the torn line itself
            if isinstance(row, dict) and "key" in row:
                done[row["key"]] = row
    return done


def cache_key(generator: Generator, per_chunk: int, chunk: Chunk) -> str:
    """A reply is reused only for the same teacher, request and chunk text: an edited
    document or another teacher asks again."""
    request = json.dumps(messages_for(chunk.text, per_chunk), ensure_ascii=False)
    text = f"{generator.name}\n{request}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def ask_teacher(generator: Generator, chunks: Sequence[Chunk], cache: Path, per_chunk: int = 3,
                concurrency: int = 4) -> tuple[list[tuple[Chunk, dict[str, str]]], dict[str, Any]]:  # fmt: skip
    """(grounded pairs with their chunk, stats). Chunks in `cache` are not asked again."""
    done = _read_cache(cache)
    keys = {c.id: cache_key(generator, per_chunk, c) for c in chunks}
    todo = [
        c for c in chunks if keys[c.id] not in done or "error" in done[keys[c.id]]
    ]  # failures: again
    stats = {"chunks": len(chunks), "cached": len(chunks) - len(todo), "requests": 0, "failures": 0,
             "prompt_tokens": 0, "completion_tokens": 0}  # fmt: skip
    lock = threading.Lock()
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a", encoding="utf-8") as f:

        def one(c: Chunk) -> None:
            msgs = messages_for(c.text, per_chunk)
            row: dict[str, Any] = {"key": keys[c.id], "chunk": c.id}
            try:
                g = generator.generate([msgs])[0]
                row["pairs"] = parse_pairs(g.text)
                usage = (g.prompt_tokens, g.new_tokens)
            except (GenerationError, ValueError) as e:
                row["error"] = f"{type(e).__name__}: {e}"[:300]
                usage = (0, 0)
            with lock:
                stats["requests"] += 1
                stats["prompt_tokens"] += usage[0]
                stats["completion_tokens"] += usage[1]
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                done[keys[c.id]] = row

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            list(pool.map(one, todo))
    pairs: list[tuple[Chunk, dict[str, str]]] = []
    stats["ungrounded"] = 0
    stats["quote_only"] = 0  # kept on the quote alone: the answer itself is not a span
    example: dict[str, str] | None = None
    for c in chunks:
        row = done.get(keys[c.id], {})
        if "error" in row:
            stats["failures"] += 1
            continue
        for p in row.get("pairs", []):
            if grounded(p, c.text):
                pairs.append((c, p))
                stats["quote_only"] += not answer_in_context(p["answer"], [c.text])
            else:
                stats["ungrounded"] += 1
                example = example or {"question": p["question"], "answer": p["answer"]}
    return pairs, {**stats, "ungrounded_example": example}
