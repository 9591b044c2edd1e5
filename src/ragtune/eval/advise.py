"""`ragtune advise DOCS --questions FILE`: fine-tune, RAG, or both, on the user's own corpus.

Indexes DOCS (`rag.index`) and scores the same questions three ways through `ragtune eval`:
- base + RAG: the base model on retrieved passages;
- tuned, closed-book: the adapter with no passages (`prompt.closed_book`), which is what
  fine-tuning alone gives (use an adapter trained closed-book: `closed_book_adapter`);
- tuned + RAG: the adapter on retrieved passages.
It prints one table and a plain recommendation: the setting with the best F1, unless a simpler
one (base + RAG, then closed-book) is within `margin` points of it.

    ragtune advise notes/ --questions data/eval.jsonl --model smollm2-135m --adapter runs/notes
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ragtune.config import ConfigError
from ragtune.eval import stage as evaluate
from ragtune.eval.stage import EvalConfig
from ragtune.generation.load import GenerateConfig
from ragtune.prompt.grounded import PromptConfig
from ragtune.rag.index import IndexConfig, build
from ragtune.rag.settings import RetrievalSection
from ragtune.runs import saved_train_config

KEYS = ["f1", "answerable_f1", "refusal_accuracy", "hallucination_rate", "retrieval_miss_rate"]


@dataclass
class AdviseConfig:
    docs: list[str] = field(default_factory=list)
    """The corpus: files and folders, indexed into out/index."""
    questions: str = ""
    """QA file (any supported format) on that corpus: the questions scored three ways."""
    out: str = "runs/advise"
    """Folder for the index, the three evals and advice.md."""
    model: str = "smollm2-135m"
    """The base model."""
    adapter: str | None = None
    """The adapter trained for RAG (passages in the prompt)."""
    closed_book_adapter: str | None = None
    """The adapter trained closed-book (default: adapter)."""
    margin: float = 2.0
    """F1 points within which a simpler setting is preferred."""
    max_new_tokens: int = 32
    """Most tokens per answer."""
    retrieval: RetrievalSection = field(default_factory=RetrievalSection)
    """How passages are retrieved."""


Config = AdviseConfig


def recommend(f1: dict[str, float], margin: float) -> str:
    """The simplest setting within `margin` F1 points of the best, in the order a team
    would rather run them: base + RAG (no training), closed-book (no index), then both."""
    best = max(f1.values())
    for name in ("base + RAG", "tuned, closed-book", "tuned + RAG"):
        if name in f1 and f1[name] >= best - margin:
            return name
    return max(f1, key=lambda k: f1[k])


ADVICE = {
    "base + RAG": "Use RAG with the base model: fine-tuning does not pay for itself on these questions.",
    "tuned, closed-book": "Fine-tune alone: the model answers as well from memory as from retrieval.",
    "tuned + RAG": "Fine-tune and use RAG: the tuned model on retrieved passages is clearly best.",
}


def run(cfg: AdviseConfig) -> dict[str, Any]:
    if not cfg.docs or not cfg.questions:
        raise ConfigError("docs and questions are required (ragtune advise DOCS --questions FILE)")
    if not cfg.adapter:
        raise ConfigError("adapter: the comparison needs a tuned adapter (--adapter RUN)")
    out = Path(cfg.out)
    index = out / "index"
    build(IndexConfig(docs=cfg.docs, out=str(index)))
    gen = GenerateConfig(model=cfg.model, max_new_tokens=cfg.max_new_tokens, batch_size=8)
    runs = {
        "base + RAG": (None, False),
        "tuned, closed-book": (cfg.closed_book_adapter or cfg.adapter, True),
        "tuned + RAG": (cfg.adapter, False),
    }
    table: dict[str, dict[str, Any]] = {}
    for name, (adapter, closed) in runs.items():
        # Each adapter is scored on the prompt it was trained with (its train_config.yaml).
        saved = (saved_train_config(adapter) if adapter else {}).get("prompt") or {}
        prompt = PromptConfig(
            **{**saved, "closed_book": closed, "cite": saved.get("cite", False) and not closed}
        )
        slug = name.replace(" + ", "-").replace(", ", "-").replace(" ", "-")
        m = evaluate.run(EvalConfig(
            data=cfg.questions, out=str(out / slug), label=name, latency_questions=0, semantic=False,
            gen=replace(gen, adapter=adapter), prompt=prompt,
            index=None if closed else str(index), retrieval=cfg.retrieval,
        ))  # fmt: skip
        table[name] = {k: m.get(k) for k in KEYS}
    f1 = {k: v["f1"] or 0.0 for k, v in table.items()}
    choice = recommend(f1, cfg.margin)
    lines = ["| setting | " + " | ".join(KEYS) + " |", "|---" * (len(KEYS) + 1) + "|"]
    for name, row in table.items():
        cells = ["-" if row[k] is None else f"{row[k]:.1f}" for k in KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + f"\n\n**Advice**: {ADVICE[choice]}\n"
    from ragtune import atomic

    atomic.write_text(out / "advice.md", text)
    return {"table": table, "choice": choice, "markdown": text}


def show(result: dict[str, Any]) -> None:
    print(result["markdown"])
