"""Shared fixtures: every test runs offline with its own cache, and tiny models are built here.

`tiny_model_dir` is a real Hugging Face folder (a byte-level BPE tokenizer trained on a few
sentences, a ChatML chat template, and a 2-layer Llama with random weights): small enough that
training and generation tests take seconds, real enough that every code path is exercised.
`tiny_adapter_dir` is a run folder with a LoRA adapter for it, as `ragtune train` writes one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "You answer questions using only the numbered context passages.",
    "Context: [1] The Eiffel Tower is in Paris. It was built in 1889 by Gustave Eiffel.",
    "Question: Where is the Eiffel Tower? Answer: Paris",
    "The context does not contain the answer.",
    "Reply with the shortest exact answer, copied from the context when possible.",
    "Marlowe Station was founded in 1962 on the river Tessa by Ada Quill.",
    "上下文中没有答案。北京大学位于北京。长城很长。问题：北京大学在哪里？",
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?\"'()[]-",
]


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # With the usual 0.02, embeddings this narrow (32) bound the logit margin after the
        # final RMSNorm to ~0.6, and no adapter could lower the loss much.
        initializer_range=0.2,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def build_tiny_adapter(base: Path, path: Path, seed: int = 1) -> Path:
    """A LoRA adapter (r=4, alpha=8, all linear layers) on the tiny model, saved as `ragtune
    train` saves one. B gets random weights: peft starts it at zero, which would make the
    adapter a no-op that no merge or conversion test could tell apart from the base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune.models import peft_quietly

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with peft_quietly():
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.2)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(base).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def make_tiny_adapter() -> Callable[..., Path]:
    """`build_tiny_adapter`, for tests that adapt a model of their own."""
    return build_tiny_adapter


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding adapter/ for `tiny_model_dir`."""
    run = tmp_path_factory.mktemp("tiny-run")
    build_tiny_adapter(tiny_model_dir, run / "adapter")
    return run


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own working folder and ragtune cache, and cannot reach a model hub."""
    monkeypatch.chdir(tmp_path)  # a stage's default out (runs/...) lands in the test's folder
    monkeypatch.setenv("RAGTUNE_CACHE", str(tmp_path / "ragtune-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture
def qa_examples() -> list:
    """Three QA examples: a short answerable one, a longer one, and an unanswerable one."""
    from ragtune.example import Example

    return [
        Example(
            id="a",
            question="Where is the Eiffel Tower?",
            contexts=["The Eiffel Tower is in Paris."],
            answers=["Paris"],
        ),
        Example(
            id="b",
            question="Who founded it?",
            contexts=["Marlowe Station was founded in 1962 by Ada Quill. " * 3],
            answers=["Ada Quill"],
        ),
        Example(
            id="c", question="Who is the mayor?", contexts=["A town."], answers=[], answerable=False
        ),
    ]


@pytest.fixture
def cpu_fp32():
    """A resolved runtime for tests: CPU, fp32, one thread (what `runtime.resolve` returns)."""
    import torch

    from ragtune.runtime import Runtime

    return Runtime("cpu", torch.float32, 1)


@pytest.fixture
def tiny_train_cfg(tiny_model_dir: Path) -> Callable[..., object]:
    """A TrainConfig factory for short runs on the tiny model: 4 answerable examples (one
    group each) written to `<folder>/train.jsonl`, 6 steps of 2, a checkpoint every 2 steps,
    no eval split, fp32 on one thread (deterministic), out=`<folder>/<out>`."""

    def make(folder: Path, out: str = "run", **kw: object) -> object:
        from ragtune.example import Example, write_jsonl
        from ragtune.runtime import RuntimeSection
        from ragtune.train.config import LoraSection, TrainConfig

        data = folder / "train.jsonl"
        if not data.exists():
            rows = [
                Example(
                    f"q{i}",
                    f"Where is tower {i}?",
                    [f"Tower {i} is in Paris."],
                    ["Paris"],
                    group=f"g{i}",
                )
                for i in range(4)
            ]
            write_jsonl(data, rows)
        base: dict[str, object] = dict(
            data=str(data),
            model=str(tiny_model_dir),
            out=str(folder / out),
            lora=LoraSection(r=4, alpha=8),
            lr=1e-2,
            batch_size=2,
            grad_accum=1,
            max_steps=6,
            eval_steps=2,
            warmup=0.0,
            eval_fraction=0.0,
            logging_steps=1,
            runtime=RuntimeSection(threads=1, dtype="fp32"),
        )
        base.update(kw)
        return TrainConfig(**base)  # type: ignore[arg-type]

    return make
