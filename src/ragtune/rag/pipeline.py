"""Retrieve, prompt, generate, cite: the RAG pipeline, over any `Retriever` and `Generator`.

The prompt is the very one the model was tuned on (`prompt.grounded`, passages numbered in
retrieval order), fitted to `max_length` tokens as training fits it; generation goes through
the shared path (`generation.grounded`), so a local model, llama.cpp or an OpenAI-compatible
endpoint (vLLM, `ragtune serve`) answers the same request. With a refusal threshold (an
adapter's or full fine-tune's calibrated one by default, per language where it has them) the model's refusal score decides whether to answer.
An optional `Router` sends some questions straight to the model, without retrieval.

    pipe = Pipeline(index.retriever(RetrievalSection()), generator, threshold=Threshold(0.45))
    a = pipe.ask("Who founded Marlowe Station?")
    a.text, a.refused, [c.label() for c in a.citations]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ragtune.generation.abstain import Threshold, at_question, decide
from ragtune.generation.base import CountsTokens, Generation, Generator
from ragtune.generation.grounded import generate_grounded
from ragtune.prompt.fit import fit_passages
from ragtune.prompt.grounded import PromptConfig, refusal_for
from ragtune.prompt.refusal import is_refusal
from ragtune.rag.cite import Citation, citations, cite
from ragtune.rag.retrieve import Passage, Retriever

if TYPE_CHECKING:
    from ragtune.rag.router import Router


@dataclass
class Answer:
    question: str
    text: str
    """The reply: a short answer, or the refusal sentence."""
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    """Where the answer came from (empty for a refusal)."""
    passages: list[Passage] = field(default_factory=list)
    """What the model was shown, in prompt order ([1] first), as fitted to max_length."""
    route: str = "rag"
    """The router's label; "rag" when the question went through retrieval."""
    refusal_score: float | None = None
    """The model's refusal probability, when a threshold was applied."""
    new_tokens: int = 0
    latency_s: float = 0.0


class Pipeline:
    def __init__(
        self,
        retriever: Retriever,
        generator: Generator,
        prompt: PromptConfig | None = None,
        k: int = 4,
        threshold: Threshold | None = None,
        max_length: int = 1024,
        max_new_tokens: int = 48,
        router: Router | None = None,
        extractive: bool = False,
    ):
        self.retriever, self.generator = retriever, generator
        self.prompt = prompt or PromptConfig()
        self.k, self.threshold = k, threshold
        self.extractive = extractive
        """Answers copied from whole words of the retrieved passages (`gen.extractive`)."""
        self.budget = max_length - max_new_tokens
        self.router = router

    def _fit(self, question: str, passages: list[Passage]) -> list[Passage]:
        if not isinstance(self.generator, CountsTokens):
            return passages
        texts, cut = fit_passages(
            self.generator.count_prompt_tokens, question, [p.text for p in passages],
            self.prompt, self.budget,
        )  # fmt: skip
        if not cut:
            return passages
        from dataclasses import replace

        fitted = []
        for p, t in zip(passages, texts, strict=False):
            chunk = replace(p.chunk, text=t, end=p.chunk.start + len(t))
            fitted.append(replace(p, chunk=chunk))
        return fitted

    def retrieve(self, question: str) -> list[Passage]:
        return self._fit(question, self.retriever.retrieve(question, self.k))

    def ask(self, question: str) -> Answer:
        return self.ask_many([question])[0]

    def ask_many(
        self, questions: Sequence[str], passages: Sequence[list[Passage]] | None = None
    ) -> list[Answer]:
        """Answers for several questions, generated in one batch; `passages` (per question)
        skips retrieval, as an evaluation that retrieved already does."""
        routes = [self.router.route(q) if self.router else "rag" for q in questions]
        answers: list[Answer | None] = [None] * len(questions)
        direct = [i for i, r in enumerate(routes) if r != "rag"]
        if direct:
            gens = self.generator.generate(
                [[{"role": "user", "content": questions[i]}] for i in direct]
            )
            for i, g in zip(direct, gens, strict=True):
                answers[i] = Answer(questions[i], g.text, False, route=routes[i],
                                    new_tokens=g.new_tokens, latency_s=g.latency_s)  # fmt: skip
        rag = [i for i, r in enumerate(routes) if r == "rag"]
        found = {
            i: (self._fit(questions[i], passages[i]) if passages is not None else self.retrieve(questions[i]))
            for i in rag
        }  # fmt: skip
        for i in [i for i in rag if not found[i]]:  # nothing retrieved: nothing to answer from
            answers[i] = Answer(questions[i], refusal_for(questions[i], self.prompt), True)
        rag = [i for i in rag if found[i]]
        items = [(questions[i], [p.text for p in found[i]]) for i in rag]
        gens = (
            generate_grounded(self.generator, items, self.prompt, self.threshold, self.extractive)
            if items
            else []
        )
        for i, g in zip(rag, gens, strict=True):
            answers[i] = self.answer_from(questions[i], g, found[i])
        return [a for a in answers if a is not None]

    def answer_from(self, question: str, gen: Generation, passages: list[Passage]) -> Answer:
        """The Answer for a generation on `passages`: decided by the threshold, refusal
        recognised, citations found (a server that generated in its own batches calls this)."""
        g = decide(gen, at_question(self.threshold, question), refusal_for(question, self.prompt))
        refused = is_refusal(g.text, self.prompt)
        numbers = [] if refused else cite(g.text, passages)
        return Answer(question, g.text, refused, citations(numbers, passages), passages,
                      refusal_score=g.refusal_score, new_tokens=g.new_tokens,
                      latency_s=g.latency_s)  # fmt: skip
