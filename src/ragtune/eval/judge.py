"""An LLM judge: rubric scores 1-5 for each answer, from any OpenAI-compatible model.

`ragtune eval judge=openai:MODEL` (with `judge_api_base=URL`) asks the judge, at temperature
0, to grade each prediction on three written criteria: faithfulness to the passages,
correctness against the gold answer, and style. It must reply with strict JSON (`parse`
checks the keys and that each score is an integer 1-5). A reply that does not parse is asked
again, up to `retries` more times. What still fails is counted (`judge_failures`) and named
in the notes, never dropped silently. The prompt holds no numeric example, so the judge does
not anchor on one. Refusals are scored by rule, not by the judge (`refusal_verdict`): their
grade follows from the gold label, and a 1.5B judge answered them with a 0 that no retry
mended (benchmarks/RESULTS.md), which left every refusal out of the means. Means per
criterion go into metrics.json and the report, so `ragtune compare` shows them per model
side by side.

    scores, failures = judge_rows(generator, rows, contexts, retries=2)
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ragtune.generation.base import GenerationError, Generator
from ragtune.generation.parse import first_json

CRITERIA = ("faithfulness", "correctness", "style")
SYSTEM = """You grade one answer given by a question-answering system that must answer only from the numbered passages it was shown.

Score each criterion with an integer from 1 (worst) to 5 (best):
- faithfulness: every claim in the answer is supported by the passages. Best: fully supported. Middle: partly supported. Worst: it contradicts the passages or invents facts.
- correctness: the answer means the same as the gold answer. Best: the same meaning, whatever the wording. Middle: partly right or incomplete. Worst: wrong. When the gold answer says the question is unanswerable, only a refusal is correct.
- style: short and direct, in the language of the question. Best: as short as the answer allows. Middle: a few needless words. Worst: rambling or off-topic.

Reply with a JSON object only, no other text, with exactly these keys: "faithfulness", "correctness", "style" (integers) and "reason" (one short sentence)."""


class VerdictError(ValueError):
    """A judge reply that is not the required JSON; the message says what was wrong."""


def parse(text: str) -> dict[str, Any]:
    """The verdict in a judge reply: {"faithfulness", "correctness", "style": 1-5, "reason"}.
    A code fence or text around the JSON object is tolerated; anything else raises."""
    obj = first_json(text, dict)
    if obj is None:
        raise VerdictError("no JSON object in the reply")
    out: dict[str, Any] = {}
    for key in CRITERIA:
        v = obj.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5:
            raise VerdictError(f'"{key}" must be an integer 1-5, got {v!r}')
        out[key] = v
    out["reason"] = str(obj.get("reason", ""))[:300]
    return out


def messages_for(
    question: str, passages: Sequence[str], gold: str, answer: str
) -> list[dict[str, str]]:
    numbered = "\n\n".join(f"[{i}] {p}" for i, p in enumerate(passages, 1))
    user = (f"Passages:\n{numbered or '(none)'}\n\nQuestion: {question}\n\nGold answer: {gold}\n\n"
            f"Answer to grade: {answer}")  # fmt: skip
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def judge_one(
    generator: Generator, msgs: list[dict[str, str]], retries: int
) -> tuple[dict[str, Any] | None, str]:
    """(verdict or None, the last parse error)."""
    error = ""
    asked = list(msgs)
    for _ in range(retries + 1):
        try:
            reply = generator.generate([asked])[0].text
        except GenerationError as e:  # the endpoint failed after its own retries
            return None, str(e)
        try:
            return parse(reply), ""
        except VerdictError as e:
            error = str(e)
            # Greedy decoding repeats itself: say what was wrong, so the retry can differ.
            asked = [*msgs, {"role": "assistant", "content": reply},
                     {"role": "user", "content": f"That reply was not valid ({error}). Reply with the JSON object only."}]  # fmt: skip
    return None, error


def refusal_verdict(answerable: bool) -> dict[str, Any]:
    """A refusal's grade: it claims nothing (faithful) in one short sentence (style), and it
    is correct exactly when the question is unanswerable."""
    return {"faithfulness": 5, "correctness": 1 if answerable else 5, "style": 5,
            "reason": "refusal: scored by rule", "by_rule": True}  # fmt: skip


def judge_rows(generator: Generator, rows: Sequence[dict[str, Any]], contexts: Sequence[Sequence[str]],
               retries: int = 2, concurrency: int = 4) -> tuple[dict[str, Any], list[dict[str, Any] | None]]:  # fmt: skip
    """(summary: means per criterion, failures, an example error; verdict per row or None).
    Rows are eval prediction rows (question, answers, answerable, prediction)."""
    if len(rows) != len(contexts):
        raise ValueError(f"judge_rows: {len(rows)} rows but {len(contexts)} context lists")

    def grade(i: int) -> tuple[dict[str, Any] | None, str]:
        r = rows[i]
        if r.get("refused"):  # never sent: the gold label decides (refusal_verdict)
            return refusal_verdict(bool(r.get("answerable"))), ""
        gold = (r["answers"][0] if r.get("answerable") and r.get("answers")
                else "(unanswerable: the passages do not hold the answer)")  # fmt: skip
        return judge_one(
            generator, messages_for(r["question"], contexts[i], gold, r["prediction"]), retries
        )

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        results = list(pool.map(grade, range(len(rows))))
    verdicts = [v for v, _ in results]
    ok = [v for v in verdicts if v is not None]
    errors = [e for v, e in results if v is None]
    summary: dict[str, Any] = {
        f"judge_{k}": (sum(v[k] for v in ok) / len(ok) if ok else None) for k in CRITERIA
    }
    summary["judge_failures"] = len(errors)
    summary["judge_scored"] = len(ok)
    summary["judge_by_rule"] = sum(bool(v.get("by_rule")) for v in ok)
    summary["judge_error_example"] = errors[0] if errors else None
    return summary, verdicts
