"""`ragtune data from-docs DOCS... --out FILE`: QA examples from a folder of documents.

Documents are read and chunked as `ragtune index` does (`rag.documents`, `rag.chunk`); each
section's structure gives QA pairs (`synth.rules`). Each pair's context is the chunk holding
its answer, its group is the file (so `data prepare` splits by document). Then the checks
every data set gets: empty fields, the answer found in its context, duplicates
(`data.normalize`), answer length. `OUT` (canonical JSONL, written atomically) holds what was
kept; `OUT.report.json` counts what each rule made and why the rest was dropped, with an
example of each.

    ragtune data from-docs notes/ --out data/notes.jsonl
    ragtune data prepare data/notes.jsonl --out data/
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune import atomic
from ragtune.config import ConfigError, require
from ragtune.data.normalize import example_key
from ragtune.example import Example, write_jsonl
from ragtune.rag import documents
from ragtune.rag.chunk import chunk_document
from ragtune.synth.rules import extract
from ragtune.text import answer_in_context, language, metric_tokens


@dataclass
class FromDocsConfig:
    docs: list[str] = field(default_factory=list)
    """Files and folders to read (Markdown, text, HTML, PDF)."""
    out: str = "data/from_docs.jsonl"
    """Where the examples go (canonical JSONL); the report goes beside it (.report.json)."""
    chunk_size: int = 160
    """Context size in tokens, as in `ragtune index` (the model then sees what retrieval gives)."""
    chunk_overlap: int = 32
    """Tokens shared by consecutive chunks."""
    max_answer_tokens: int = 80
    """Longer answers are dropped: a grounded answer is short."""
    teacher: str | None = None
    """openai:MODEL: also ask this model (any OpenAI-compatible endpoint) for QA pairs per
    chunk, each kept only when grounded in its chunk (`synth.teacher`)."""
    teacher_api_base: str | None = None
    """The teacher's endpoint (default $OPENAI_BASE_URL)."""
    teacher_pairs: int = 3
    """Pairs asked for per chunk."""
    teacher_concurrency: int = 4
    """Teacher requests in flight at once."""

    def __post_init__(self) -> None:
        require(self, "max_answer_tokens", min=1)


Config = FromDocsConfig


def run(cfg: FromDocsConfig) -> dict[str, Any]:
    if not cfg.docs:
        raise ConfigError(
            "docs: give files or folders to read (ragtune data from-docs DOCS --out FILE)"
        )
    files, problems = documents.collect(cfg.docs)
    made: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    sample: dict[str, dict[str, str]] = {}
    kept: list[Example] = []
    seen: set[tuple[str, ...]] = set()
    all_chunks = []

    def drop(reason: str, q: str, a: str) -> None:
        dropped[reason] += 1
        sample.setdefault(reason, {"question": q, "answer": a})

    def keep(ex: Example) -> None:
        q, a = ex.question, ex.answer
        if len(metric_tokens(a, language(a))) > cfg.max_answer_tokens:
            drop(f"answer longer than {cfg.max_answer_tokens} tokens", q, a)
        elif example_key(ex) in seen:
            drop("duplicate question on the same context", q, a)
        else:
            seen.add(example_key(ex))
            kept.append(ex)

    for path in files:
        try:
            doc = documents.read(path)
        except documents.DocumentError as e:
            problems.append(str(e))
            continue
        key = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        chunks = chunk_document(doc, key, cfg.chunk_size, cfg.chunk_overlap)
        all_chunks.extend(chunks)
        for sec in doc.sections:
            body = doc.text[sec.start : sec.end]
            mine = [c for c in chunks if sec.start <= c.start and c.end <= sec.end]
            for q, a, rule in extract(body, sec.heading):
                made[rule] += 1
                if not q.strip() or not a.strip():
                    drop("empty question or answer", q, a)
                    continue
                ctx = next((c.text for c in mine if answer_in_context(a, [c.text])), None)
                if ctx is None:
                    drop("answer not within one chunk (grounding check)", q, a)
                    continue
                keep(
                    Example(
                        f"{key}:{rule}:{len(kept)}", q, [ctx], [a], True, str(path), f"rule_{rule}"
                    )
                )
    teacher_stats = None
    if cfg.teacher:
        teacher_stats = _from_teacher(cfg, all_chunks, keep, made)
    if teacher_stats is not None:
        example = teacher_stats.pop("ungrounded_example", None)
        if teacher_stats["ungrounded"]:
            reason = "teacher pair not grounded in its chunk"
            dropped[reason] = teacher_stats["ungrounded"]
            sample.setdefault(reason, example or {"question": "", "answer": ""})
    if not kept:
        raise ConfigError(
            f"docs: no QA pairs could be made from {len(files)} files"
            + (f" ({'; '.join(problems)})" if problems else "")
        )
    out = Path(cfg.out)
    write_jsonl(out, kept)
    report = {
        "out": str(out), "files": len(files), "kept": len(kept), "made": dict(made),
        "kept_by_rule": dict(Counter(e.kind.removeprefix("rule_") for e in kept)),
        "dropped": dict(dropped), "dropped_examples": sample, "problems": problems,
        "teacher": teacher_stats,
    }  # fmt: skip
    atomic.write_json(out.with_suffix(out.suffix + ".report.json"), report)
    return report


def _from_teacher(
    cfg: FromDocsConfig, chunks: list[Any], keep: Any, made: Counter[str]
) -> dict[str, Any]:
    from ragtune.generation.load import GenerateConfig, load_generator
    from ragtune.synth.teacher import ask_teacher

    if not (cfg.teacher or "").startswith("openai:"):
        raise ConfigError(
            f"teacher: expected openai:MODEL (an OpenAI-compatible endpoint), got {cfg.teacher!r}"
        )
    gen = load_generator(
        GenerateConfig(model=cfg.teacher or "", api_base=cfg.teacher_api_base, max_new_tokens=400)
    )
    cache = Path(cfg.out + ".teacher.jsonl")
    pairs, stats = ask_teacher(gen, chunks, cache, cfg.teacher_pairs, cfg.teacher_concurrency)
    for i, (c, p) in enumerate(pairs):
        made["teacher"] += 1
        keep(
            Example(
                f"{c.id}:teacher:{i}",
                p["question"],
                [c.text],
                [p["answer"]],
                True,
                c.file,
                "teacher",
            )
        )
    made["teacher"] += stats["ungrounded"]
    return stats


def show(r: dict[str, Any]) -> None:
    print(f"from-docs: {r['kept']} examples from {r['files']} files -> {r['out']}")
    print("  kept by rule: " + ", ".join(f"{k} {v}" for k, v in r["kept_by_rule"].items()))
    for reason, n in r["dropped"].items():
        ex = r["dropped_examples"].get(reason) or {"question": "", "answer": ""}
        print(f"  dropped {n}: {reason} (e.g. {ex['question']!r} -> {ex['answer'][:60]!r})")
    for p in r["problems"]:
        print(f"  skipped: {p}")
    t = r.get("teacher")
    if t:
        print(f"  teacher: {t['requests']} requests ({t['cached']} chunks cached), {t['failures']} failed, "
              f"{t['prompt_tokens']} prompt + {t['completion_tokens']} completion tokens, "
              f"{t['ungrounded']} pairs not grounded, {t['quote_only']} kept on their quote alone")  # fmt: skip
