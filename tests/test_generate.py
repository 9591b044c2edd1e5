"""The generation path: batched local decoding and an OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from ragtune.generate import GenerateConfig, LocalGenerator, load_generator, stop_token_ids
from ragtune.models import load_model
from ragtune.prompt import render_prompt

MSG = [
    {"role": "system", "content": "Answer."},
    {"role": "user", "content": "Where is the Eiffel Tower?"},
]
MSG2 = [{"role": "system", "content": "Answer."}, {"role": "user", "content": "Who? " * 20}]


def test_batched_equals_one_by_one(tiny_model_dir: Path) -> None:
    model, tok = load_model(str(tiny_model_dir))
    batched = LocalGenerator(model, tok, max_new_tokens=6, batch_size=2, name="t").generate(
        [MSG, MSG2]
    )
    single = LocalGenerator(model, tok, max_new_tokens=6, batch_size=1, name="t")
    one = [single.generate([m])[0] for m in (MSG, MSG2)]
    assert [g.text for g in batched] == [g.text for g in one]  # left padding changes nothing
    # and both equal transformers' own generate, one prompt at a time (no prefilled cache)
    for g, m in zip(batched, (MSG, MSG2)):
        enc = tok(render_prompt(tok, m), return_tensors="pt", add_special_tokens=False)
        ref = model.generate(
            **enc, max_new_tokens=6, do_sample=False, eos_token_id=stop_token_ids(tok, model.config)
        )
        text = tok.decode(ref[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        assert g.text == text
    assert all(g.batch_size == 2 and 0 <= g.new_tokens <= 6 for g in batched)
    assert any(g.new_tokens > 0 for g in batched)  # the comparison is over real text


def test_prefill_fills_the_cache_without_padding_work(tiny_model_dir: Path) -> None:
    model, tok = load_model(str(tiny_model_dir))
    gen = LocalGenerator(model, tok, max_new_tokens=4, batch_size=2, name="t")
    rows = [tok(render_prompt(tok, m), add_special_tokens=False)["input_ids"] for m in (MSG, MSG2)]
    ids, mask, cache = gen._prefill(rows)
    width = max(len(r) for r in rows)
    assert ids.shape == mask.shape == (2, width)
    assert mask.sum(-1).tolist() == [len(r) for r in rows]
    assert mask[:, -1].all() and ids[:, -1].tolist() == [r[-1] for r in rows]  # left padded
    assert cache is not None and cache.get_seq_length() == width - 1  # all but the last token
    # each row's cached keys equal those of that row run alone, after its padding
    short = 0 if len(rows[0]) < len(rows[1]) else 1
    alone = model(input_ids=torch.tensor([rows[short][:-1]]), use_cache=True).past_key_values
    pad = width - len(rows[short])
    got = cache.layers[0].keys[short, :, pad:]
    assert torch.allclose(got, alone.layers[0].keys[0], atol=1e-6)
    assert got.shape[-2] == len(rows[short]) - 1


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        reply = {
            "choices": [{"message": {"content": " Paris "}}],
            "usage": {"completion_tokens": 2},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def api_server() -> Any:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_openai_compatible_endpoint(api_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    gen = load_generator(
        GenerateConfig(model="openai:big-model", api_base=api_server, max_new_tokens=7)
    )
    out = gen.generate([MSG])
    assert out[0].text == "Paris" and out[0].new_tokens == 2
    req = _Handler.seen[-1]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["model"] == "big-model" and req["messages"] == MSG
    assert req["temperature"] == 0 and req["max_tokens"] == 7


def test_unreachable_endpoint_error_names_url() -> None:
    gen = load_generator(
        GenerateConfig(model="openai:x", api_base="http://127.0.0.1:9/v1", timeout_s=2)
    )
    with pytest.raises(RuntimeError, match="127.0.0.1:9/v1/chat/completions"):
        gen.generate([MSG])
