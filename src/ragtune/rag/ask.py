"""`ragtune ask INDEX "question"`: retrieve, answer with the tuned model, cite the sources.

The answer is printed with its citations ([n] -> file and heading) and the passages shown to
the model; `json=true` (`--json`) prints one JSON object instead, for scripts. The adapter's
(or a full fine-tune's) calibrated refusal threshold applies (`gen.refusal_threshold=auto`); the generator can be a
local model, a .gguf file through llama.cpp, or any OpenAI-compatible endpoint such as vLLM
(`--model openai:NAME gen.api_base=http://host:8000/v1`).

    ragtune ask my-index "How do I reset the router?" --model smollm2-135m --adapter runs/lora
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from ragtune import runtime
from ragtune.config import ConfigError, require
from ragtune.generation.load import GenerateConfig, load_generator, refusal_threshold
from ragtune.prompt.grounded import PromptConfig
from ragtune.rag.index import Index
from ragtune.rag.pipeline import Answer, Pipeline
from ragtune.rag.router import RouterSection, make_router
from ragtune.rag.settings import RetrievalSection
from ragtune.runtime import RuntimeSection


@dataclass
class AskConfig:
    index: str = ""
    """The index folder built by `ragtune index`."""
    question: str = ""
    """The question to answer."""
    json: bool = False
    """Print one JSON object (answer, refused, citations, passages) instead of text."""
    max_length: int = 1024
    """Tokens per prompt plus answer, as in training; passages are shortened to fit."""
    gen: GenerateConfig = field(default_factory=GenerateConfig)
    """Model and decoding settings (gen.model, gen.adapter, gen.refusal_threshold, ...)."""
    retrieval: RetrievalSection = field(default_factory=RetrievalSection)
    """How passages are found (retrieval.mode, retrieval.k, retrieval.rerank, ...)."""
    router: RouterSection = field(default_factory=RouterSection)
    """Optional routing of questions that need no retrieval straight to the model."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """Grounded prompt settings (must match what the model was trained with)."""
    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    """Device, dtype and CPU threads for a local model."""

    def __post_init__(self) -> None:
        require(self, "max_length", min=32)


Config = AskConfig


def build_pipeline(cfg: AskConfig, index: Index) -> Pipeline:
    """The pipeline an AskConfig describes (the server builds its RAG mode the same way)."""
    rt = runtime.for_stage(cfg.runtime, cfg.gen.model, cfg.gen.is_local)
    generator = load_generator(cfg.gen, rt)
    threshold = refusal_threshold(cfg.gen)
    router = make_router(cfg.router, index, generator, cfg.gen)
    return Pipeline(
        index.retriever(cfg.retrieval, rt.threads),
        generator,
        cfg.prompt,
        k=cfg.retrieval.k,
        threshold=threshold,
        max_length=cfg.max_length,
        max_new_tokens=cfg.gen.max_new_tokens,
        router=router,
        extractive=cfg.gen.extractive,
    )


def answer_dict(a: Answer) -> dict[str, Any]:
    return {
        "question": a.question,
        "answer": a.text,
        "refused": a.refused,
        "route": a.route,
        "refusal_score": a.refusal_score,
        "citations": [{**asdict(c), "heading": list(c.heading)} for c in a.citations],
        "passages": [
            {"n": i, "chunk_id": p.chunk.id, "file": p.chunk.file, "heading": list(p.chunk.heading),
             "start": p.chunk.start, "end": p.chunk.end, "score": p.score, "text": p.text}
            for i, p in enumerate(a.passages, 1)
        ],
    }  # fmt: skip


def run(cfg: AskConfig) -> dict[str, Any]:
    if not cfg.index:
        raise ConfigError("index: an index folder is required (ragtune ask INDEX QUESTION)")
    if not cfg.question.strip():
        raise ConfigError("question: is empty (ragtune ask INDEX QUESTION)")
    index = Index.open(cfg.index)
    # With --json, stdout carries the one JSON object: loading messages go to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if cfg.json else contextlib.nullcontext()
    try:
        with quiet:
            answer = build_pipeline(cfg, index).ask(cfg.question)
    finally:
        index.close()
    return {**answer_dict(answer), "json": cfg.json}


def show(result: dict[str, Any]) -> None:
    if result.pop("json"):
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    marks = "".join(f" [{c['n']}]" for c in result["citations"])
    print(result["answer"] + marks)
    for c in result["citations"]:
        where = " > ".join(c["heading"])
        print(f"  [{c['n']}] {c['file']}" + (f" ({where})" if where else ""))
    if result["route"] != "rag":
        print(f"  (route {result['route']}: answered without retrieval)")
