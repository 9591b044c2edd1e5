"""The OpenAI chat-completions wire format: request checks that name the field, and the
response, chunk and error bodies.

Checks return 400 with OpenAI's error shape (`{"error": {"message", "type", "param"}}`), the
offending field in `param` and in the message (`max_tokens: 4096 is above this server's
limit of 512`), so a client sees at once what to change.

    req = parse_chat(body, limits)              # ChatRequest, or raises ApiError(400, ...)
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error", headers: dict[str, str] | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind
        self.headers = headers or {}

    code: str | None = None
    """OpenAI's machine-readable code (model_not_found), when there is one."""

    def body(self) -> dict[str, Any]:
        err = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        return {"error": err}


@dataclass
class Limits:
    max_tokens: int = 512
    """Largest max_tokens a request may ask for."""
    max_messages: int = 64
    """Most messages in one request."""
    max_chars: int = 32_000
    """Most characters over all messages (the prompt must also fit the model: max_length)."""


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    max_tokens: int | None
    stream: bool
    include_usage: bool
    index: str | None = None
    """RAG mode: the named index to retrieve from (model "rag:NAME", or "ragtune": {"index"})."""
    extractive: bool | None = None
    """RAG mode: copy the answer from the passages ("ragtune": {"extractive": true}) or not;
    None: the server's setting."""
    extra: dict[str, Any] = field(default_factory=dict)


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, f"{param}: {message}", param)


def parse_chat(body: Any, limits: Limits) -> ChatRequest:
    if not isinstance(body, dict):
        raise _bad("body", "expected a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "required: a model name from /v1/models")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "required: a non-empty list of {role, content}")
    if len(messages) > limits.max_messages:
        raise _bad(
            "messages", f"{len(messages)} messages; this server takes at most {limits.max_messages}"
        )
    clean, chars = [], 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise _bad(f"messages[{i}].role", "must be system, user or assistant")
        content = m.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}] parts
            texts = [
                p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"
            ]
            if not all(isinstance(t, str) for t in texts):
                raise _bad(f"messages[{i}].content", "text parts must hold strings")
            content = "".join(str(t) for t in texts)
        if not isinstance(content, str):
            raise _bad(f"messages[{i}].content", "must be a string (or text parts)")
        chars += len(content)
        clean.append({"role": m["role"], "content": content})
    if chars > limits.max_chars:
        raise _bad("messages", f"{chars} characters; this server takes at most {limits.max_chars}")
    if clean[-1]["role"] != "user":
        raise _bad("messages", "the last message must be the user's")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _bad("max_tokens", f"must be a positive integer, got {max_tokens!r}")
        if max_tokens > limits.max_tokens:
            raise _bad(
                "max_tokens", f"{max_tokens} is above this server's limit of {limits.max_tokens}"
            )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", "must be true or false")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise _bad("stream_options", "must be an object")
    n = body.get("n", 1)
    if n != 1:
        raise _bad("n", "only n=1 is supported (decoding is greedy)")
    extra = body.get("ragtune") or {}
    if not isinstance(extra, dict):
        raise _bad("ragtune", 'must be an object such as {"index": NAME}')
    index = extra.get("index")
    if model.startswith("rag:"):
        index, _, adapter = model[4:].partition("@")
        model = adapter or ""
    if index is not None and not isinstance(index, str):
        raise _bad("ragtune.index", "must be an index name")
    extractive = extra.get("extractive")
    if extractive is not None and not isinstance(extractive, bool):
        raise _bad("ragtune.extractive", "must be true or false")
    if extractive and index is None:  # false is what chat mode does anyway
        raise _bad(
            "ragtune.extractive",
            'copies answers from retrieved passages: RAG mode only (model "rag:NAME", or '
            '"ragtune": {"index": NAME})',
        )
    return ChatRequest(model, clean, max_tokens, stream, bool(opts.get("include_usage")),
                       index=index, extractive=extractive, extra=extra)  # fmt: skip


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip


def completion(cid: str, model: str, text: str, finish: str, use: dict[str, int],
               rag: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": use,
    }  # fmt: skip
    if rag is not None:
        body["ragtune"] = rag
    return body


def chunk(cid: str, model: str, delta: dict[str, str], finish: str | None = None,
          rag: dict[str, Any] | None = None, usage_null: bool = False) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }  # fmt: skip
    if usage_null:  # with include_usage, every chunk but the usage one says "usage": null
        body["usage"] = None
    if rag is not None:
        body["ragtune"] = rag
    return body
