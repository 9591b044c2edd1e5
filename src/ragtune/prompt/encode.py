"""Training encoding: the grounded prompt plus its target, with loss on the answer only.

`encode_example` returns token ids with labels set to IGNORE_INDEX everywhere but the answer
(and the template's end-of-turn marker), so cross-entropy trains the reply and nothing else.
Over-long examples lose the end of their passages, never the question or the answer.

    enc = encode_example(tokenizer, example, PromptConfig(), max_length=1024)
    enc["input_ids"], enc["labels"], enc["truncated"]
"""

from __future__ import annotations

from typing import Any

from ragtune.example import Example
from ragtune.prompt.fit import fit_passages
from ragtune.prompt.grounded import Messages, PromptConfig, build_messages, render_prompt, target

IGNORE_INDEX = -100  # label value that cross-entropy skips: prompt and padding positions


def _answer_suffix(tokenizer: Any, messages: Messages, answer: str) -> tuple[str, str]:
    """(prompt text, answer text incl. the template's end-of-turn marker)."""
    prompt = render_prompt(tokenizer, messages)
    full = str(
        tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": answer}], tokenize=False
        )
    )
    if not full.startswith(prompt):
        # Templates that rewrite earlier turns (rare) cannot be split; fall back to prompt + answer + eos.
        return prompt, answer + (tokenizer.eos_token or "")
    return prompt, full[len(prompt) :].rstrip()


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_example(
    tokenizer: Any, ex: Example, cfg: PromptConfig, max_length: int
) -> dict[str, Any]:
    """Token ids and labels for one training example, answer-only loss.

    When prompt + answer exceed `max_length` tokens the passages are shortened from the end
    (`fit.fit_passages`, the rule inference applies too; never the question or the answer),
    and `truncated` is set so data checks can count it.
    """
    answer = target(ex, cfg)

    def count(messages: Messages) -> int:
        prompt, suffix = _answer_suffix(tokenizer, messages, answer)
        return len(_ids(tokenizer, prompt)) + len(_ids(tokenizer, suffix))

    contexts, truncated = fit_passages(count, ex.question, ex.contexts, cfg, max_length)
    prompt, suffix = _answer_suffix(tokenizer, build_messages(ex.question, contexts, cfg), answer)
    prompt_ids, answer_ids = _ids(tokenizer, prompt), _ids(tokenizer, suffix)
    if len(prompt_ids) + len(answer_ids) > max_length:
        # Still too long (answer alone near max_length): keep the answer, clip the prompt's head.
        keep = max(0, max_length - len(answer_ids))
        prompt_ids = prompt_ids[-keep:] if keep else []
        answer_ids = answer_ids[:max_length]
    input_ids = prompt_ids + answer_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    return {"input_ids": input_ids, "labels": labels, "truncated": truncated}
