"""The OpenAI-compatible engine against a local fake server: request shape, retries with
backoff on 429 and 5xx (Retry-After honoured), one-line errors that name the URL, streaming."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ragtune.generation.base import GenerationError
from ragtune.generation.load import GenerateConfig, load_generator

MSG = [{"role": "system", "content": "Answer."}, {"role": "user", "content": "Where?"}]


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []
    failures: list[tuple[int, dict[str, str]]] = []  # answered (in order) before a success

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.seen.append(
            {
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "t": time.monotonic(),
                **body,
            }
        )
        if _Handler.failures:
            status, headers = _Handler.failures.pop(0)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            data = json.dumps({"error": {"message": f"fake {status}"}}).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in ("Par", "is"):
                chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}  # fmt: skip
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        data = json.dumps(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": " Paris "},
                    }
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
            }  # fmt: skip
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[str]:
    _Handler.seen.clear()
    _Handler.failures.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _gen(base: str, **kw: Any) -> Any:
    return load_generator(GenerateConfig(model="openai:big-model", api_base=base, **kw))


def test_request_and_answer(api_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out = _gen(api_server, max_new_tokens=7).generate([MSG])
    assert out[0].text == "Paris" and out[0].new_tokens == 2 and out[0].batch_size == 1
    req = _Handler.seen[-1]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["model"] == "big-model" and req["messages"] == MSG
    assert req["temperature"] == 0 and req["max_tokens"] == 7


def test_429_and_503_are_retried_honouring_retry_after(api_server: str) -> None:
    _Handler.failures[:] = [(429, {"Retry-After": "1"}), (503, {})]
    out = _gen(api_server, retries=2).generate([MSG])
    assert out[0].text == "Paris" and len(_Handler.seen) == 3
    assert _Handler.seen[1]["t"] - _Handler.seen[0]["t"] >= 0.9  # waited as told


def test_429_after_every_retry_is_one_clear_error(api_server: str) -> None:
    _Handler.failures[:] = [(429, {"Retry-After": "0"})] * 3
    with pytest.raises(GenerationError, match=r"/v1/chat/completions: HTTP 429.*rate-limited"):
        _gen(api_server, retries=1).generate([MSG])
    assert len(_Handler.seen) == 2  # the first try and one retry, then it gave up


def test_unauthorised_names_the_key_variable(api_server: str) -> None:
    _Handler.failures[:] = [(401, {})]
    with pytest.raises(GenerationError, match="HTTP 401.*api_key_env"):
        _gen(api_server, retries=0).generate([MSG])


def test_unreachable_endpoint_error_names_url() -> None:
    gen = _gen("http://127.0.0.1:9/v1", timeout_s=2, retries=0)
    with pytest.raises(
        GenerationError, match=r"127\.0\.0\.1:9/v1/chat/completions: cannot connect"
    ):
        gen.generate([MSG])


def test_streaming(api_server: str) -> None:
    assert list(_gen(api_server).stream(MSG)) == ["Par", "is"]
    assert _Handler.seen[-1]["stream"] is True
