"""The Ollama Modelfile: `ollama create NAME -f Modelfile` runs the exported GGUF unchanged.

Ollama does not run Jinja; its TEMPLATE is a Go template. A chat template is recognised by
rendering it (through the HF tokenizer) on probe conversations and comparing with each known
family's rendering; the family then supplies the Go template (`go`), which `render` mirrors
line for line, and its stop strings. Known families: ChatML (SmolLM2, Qwen2.5, the test
model) and ragtune's fallback template for models without one. Anything else is an error:
a guessed template would silently change every prompt.

The SYSTEM message is ragtune's grounded instruction with the refusal sentence filled in, and
the parameters match ragtune's decoding: temperature 0, no repetition penalty (Ollama's
default 1.1 would change greedy answers), a context window of `num_ctx` tokens.

    text = modelfile_text("model-q8_0.gguf", tokenizer, PromptConfig(), num_ctx=4096)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ragtune.export import ExportError
from ragtune.prompt.grounded import PromptConfig, instruction, render_prompt

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Family:
    name: str
    go: str
    """Ollama TEMPLATE body; {eos} is replaced by the tokenizer's eos token."""
    render: Callable[[Messages, str], str]
    """Python mirror of `go`: (messages, eos token) -> prompt with the generation prompt."""
    stops: tuple[str, ...]
    """Stop strings besides the eos token."""


def _chatml(messages: Messages, eos: str) -> str:
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def _fallback(messages: Messages, eos: str) -> str:
    turns = "".join(f"<|{m['role']}|>\n{m['content']}{eos}\n" for m in messages)
    return turns + "<|assistant|>\n"


FAMILIES = [
    Family(
        "chatml",
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n",
        _chatml,
        ("<|im_end|>", "<|im_start|>"),
    ),
    Family(
        "ragtune-fallback",
        "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}{eos}\n{{ end }}<|assistant|>\n",
        _fallback,
        (),
    ),
]

# Conversations the template must render identically to transformers; Ollama always sends a
# system message first (the Modelfile's SYSTEM when the request has none).
PROBES: list[Messages] = [
    [{"role": "system", "content": "S1"}, {"role": "user", "content": "U1 line\nline 2"}],
    [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
    ],
]


def detect_family(tokenizer: Any) -> Family:
    eos = tokenizer.eos_token or ""
    for fam in FAMILIES:
        if all(render_prompt(tokenizer, m) == fam.render(m, eos) for m in PROBES):
            return fam
    raise ExportError(
        "ollama: the chat template is not one ragtune can translate to Ollama's Go template "
        f"(known: {', '.join(f.name for f in FAMILIES)}); export gguf and write TEMPLATE by hand"
    )


def _quoted(text: str, what: str) -> str:
    if '"""' in text:
        raise ExportError(f'ollama: the {what} contains """, which a Modelfile cannot quote')
    return f'"""{text}"""'


def modelfile_text(gguf_name: str, tokenizer: Any, prompt: PromptConfig, num_ctx: int) -> str:
    fam = detect_family(tokenizer)
    eos = tokenizer.eos_token or ""
    system_en, system_zh = instruction("en", prompt), instruction("zh", prompt)
    stops = list(dict.fromkeys([*fam.stops, eos] if eos else fam.stops))
    lines = [
        "# Written by `ragtune export`. Run: ollama create NAME -f Modelfile && ollama run NAME",
        "# Send the passages and the question as the user message, exactly as ragtune trains:",
        "#   Context:\\n[1] first passage\\n\\n[2] second passage\\n\\nQuestion: ...",
        "# For Chinese questions send this system message instead (Chinese refusal sentence,"
        " and prompt.system_zh's text when set):",
        "#   " + system_zh.replace("\n", "\\n"),
        f"FROM ./{gguf_name}",
        f"TEMPLATE {_quoted(fam.go.replace('{eos}', eos), 'chat template')}",
        f"SYSTEM {_quoted(system_en, 'system prompt')}",
        *(f'PARAMETER stop "{s}"' for s in stops),
        "PARAMETER temperature 0",
        "PARAMETER repeat_penalty 1",
        f"PARAMETER num_ctx {num_ctx}",
    ]
    return "\n".join(lines) + "\n"
