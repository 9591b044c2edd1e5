"""The grounded prompt: answer-only labels, refusal language, context truncation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.example import Example
from ragtune.models import load_tokenizer
from ragtune.prompt.encode import IGNORE_INDEX, encode_example
from ragtune.prompt.grounded import PromptConfig, build_messages, render_prompt, target
from ragtune.prompt.refusal import is_refusal
from ragtune.text import language

EX = Example(
    id="1",
    question="Where is the Eiffel Tower?",
    contexts=["The Eiffel Tower is in Paris."],
    answers=["Paris"],
)


def test_prompt_tokens_masked_answer_tokens_not(tiny_model_dir: Path) -> None:
    tok = load_tokenizer(str(tiny_model_dir))
    enc = encode_example(tok, EX, PromptConfig(), max_length=512)
    ids, labels = enc["input_ids"], enc["labels"]
    assert len(ids) == len(labels)
    n_prompt = len(
        tok(
            render_prompt(tok, build_messages(EX.question, EX.contexts, PromptConfig())),
            add_special_tokens=False,
        )["input_ids"]
    )
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    answer_ids = labels[n_prompt:]
    assert IGNORE_INDEX not in answer_ids
    assert answer_ids == ids[n_prompt:]
    assert tok.decode(answer_ids) == "Paris<|im_end|>"  # the end-of-turn token is learned too
    assert not enc["truncated"]


def test_unanswerable_target_is_refusal_in_question_language() -> None:
    cfg = PromptConfig()
    en = Example(
        id="2", question="Who is the mayor?", contexts=["A town."], answers=[], answerable=False
    )
    zh = Example(
        id="3", question="市长是谁？", contexts=["一个小镇。"], answers=[], answerable=False
    )
    assert target(en, cfg) == cfg.refusal_en
    assert target(zh, cfg) == cfg.refusal_zh
    assert cfg.refusal_zh in build_messages(zh.question, zh.contexts, cfg)[0]["content"]
    assert language("北京大学在哪里？") == "zh" and language("Where is it?") == "en"


def test_chinese_questions_get_the_chinese_instruction_when_set() -> None:
    cfg = PromptConfig(system_zh="只根据上下文回答。没有答案时回复：“{refusal}”")
    zh = build_messages("市长是谁？", ["一个小镇。"], cfg)[0]["content"]
    en = build_messages("Who is the mayor?", ["A town."], cfg)[0]["content"]
    assert zh == "只根据上下文回答。没有答案时回复：“上下文中没有答案。”"
    assert en == cfg.system.replace("{refusal}", cfg.refusal_en)
    cited = PromptConfig(system_zh=cfg.system_zh, cite=True)
    assert build_messages("市长是谁？", ["一个小镇。"], cited)[0]["content"] == (
        zh + " " + cited.cite_instruction
    )
    # Unset, every language reads the one instruction (with its own refusal sentence).
    assert build_messages("市长是谁？", ["一个小镇。"], PromptConfig())[0]["content"] == (
        PromptConfig().system.replace("{refusal}", cfg.refusal_zh)
    )


def test_long_context_truncated_never_the_answer(tiny_model_dir: Path) -> None:
    tok = load_tokenizer(str(tiny_model_dir))
    long = Example(id="4", question="Where?", contexts=["Paris is nice. " * 200], answers=["Paris"])
    enc = encode_example(tok, long, PromptConfig(), max_length=128)
    assert enc["truncated"] and len(enc["input_ids"]) <= 128
    kept = [t for t in enc["labels"] if t != IGNORE_INDEX]
    assert tok.decode(kept) == "Paris<|im_end|>"


def test_refusal_detection() -> None:
    assert is_refusal("The context does not contain the answer.")
    assert is_refusal("上下文中没有答案。")
    assert is_refusal("The text doesn't mention the mayor.")
    assert not is_refusal("Paris")
    assert not is_refusal("")


def test_closed_book_prompts_carry_no_passages(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    from ragtune.example import Example
    from ragtune.prompt.encode import encode_example
    from ragtune.prompt.grounded import PromptConfig, build_messages

    cfg = PromptConfig(closed_book=True)
    msgs = build_messages("Where is the Eiffel Tower?", ["The Eiffel Tower is in Paris."], cfg)
    assert msgs[1]["content"] == "Question: Where is the Eiffel Tower?"
    assert (
        "Paris" not in msgs[0]["content"] + msgs[1]["content"]
        and "from what you know" not in msgs[0]["content"]
    )
    assert PromptConfig().refusal_en in msgs[0]["content"]
    zh = build_messages("北京大学在哪里？", ["北京大学位于北京。"], cfg)
    assert PromptConfig().refusal_zh in zh[0]["content"] and "北京。" not in zh[1]["content"]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ex = Example(
        "1", "Where is the Eiffel Tower?", ["The Eiffel Tower is in Paris. " * 20], ["Paris"]
    )
    closed = encode_example(tok, ex, cfg, max_length=512)
    open_ = encode_example(tok, ex, PromptConfig(), max_length=512)
    assert closed is not None and open_ is not None
    assert len(open_["input_ids"]) - len(closed["input_ids"]) > 100  # the passage is gone
    assert tok.decode(closed["input_ids"]).count("Paris") == 1  # only the answer


def test_an_empty_refusal_sentence_is_refused_by_its_key() -> None:
    from ragtune.config import ConfigError

    for key in ("refusal_en", "refusal_zh"):
        with pytest.raises(ConfigError, match=f"^{key}: the refusal sentence is empty"):
            PromptConfig(**{key: "  "})
