"""`ragtune serve` driven through the official openai client on loopback: chat, streaming
with the usage chunk, adapters on one base, RAG mode with citations, auth, bad requests,
overload (429, never 5xx), and draining."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.serve.conftest import scripted_pool

Q = [{"role": "user", "content": "Where is the Eiffel Tower?"}]


def client(url: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


def post(url: str, body: dict | bytes, key: str | None = None) -> tuple[int, dict, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        url + "/v1/chat/completions", data=data, headers={"Content-Type": "application/json"}
    )
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def test_chat_streaming_usage_and_two_adapters_on_one_base(
    start_server, tiny_pool, tiny_pool_parts
) -> None:  # type: ignore[no-untyped-def]
    url, state = start_server(tiny_pool)
    c = client(url)
    assert {m.id for m in c.models.list().data} == {tiny_pool.base_name, "a1", "a2"}
    replies = {}
    for name in (tiny_pool.base_name, "a1", "a2"):
        r = c.chat.completions.create(model=name, messages=Q, max_tokens=6)
        assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 6
        replies[name] = r.choices[0].message.content
        pieces, usage = [], None
        for ch in c.chat.completions.create(model=name, messages=Q, max_tokens=6, stream=True,
                                            stream_options={"include_usage": True}):  # fmt: skip
            if ch.usage is not None:
                usage = ch.usage
            pieces += [ch.choices[0].delta.content or ""] if ch.choices else []
        assert "".join(pieces).strip() == replies[name]  # greedy: the stream says the same
        assert usage is not None and usage.completion_tokens == r.usage.completion_tokens
    assert len(set(replies.values())) == 3  # each adapter gives its own answer, base too
    # ... and the same answer as that adapter merged into its own copy of the model
    from ragtune.generation.load import GenerateConfig, load_generator

    model, adapters = tiny_pool_parts
    merged = load_generator(GenerateConfig(model=model, adapter=adapters["a2"], max_new_tokens=6))
    assert merged.generate([Q])[0].text == replies["a2"]


def test_a_base_model_without_adapters_serves(start_server, tiny_model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from ragtune import runtime
    from ragtune.serve.pool import ModelPool

    rt = runtime.resolve(runtime.RuntimeSection(dtype="fp32", threads=1))
    pool = ModelPool.load(str(tiny_model_dir), {}, rt, max_new_tokens=4)
    url, _ = start_server(pool)
    r = client(url).chat.completions.create(model=pool.base_name, messages=Q, max_tokens=4)
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens > 0


def test_requests_for_one_model_are_batched_together(start_server) -> None:  # type: ignore[no-untyped-def]
    pool = scripted_pool(lambda m: "ok", delay_s=0.3)
    url, _ = start_server(pool, max_batch=8)
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(post(url, {"model": "base", "messages": Q})[0]))
               for _ in range(6)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 6
    assert max(pool.generator.batches) > 1  # concurrency became batches, not a queue of ones


def test_rag_mode_returns_citations_and_passages(start_server, tiny_pool, docs_index: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = start_server(scripted_pool(lambda m: "Ada Quill"), indexes={"docs": docs_index})
    r = client(url).chat.completions.create(
        model="rag:docs", messages=[{"role": "user", "content": "Who founded Marlowe Station?"}]
    )
    rag = r.model_extra["ragtune"]
    assert r.choices[0].message.content == "Ada Quill" and rag["refused"] is False
    assert rag["citations"][0]["heading"] == ["Marlowe Station"] and rag["citations"][0][
        "file"
    ].endswith("guide.md")
    assert rag["passages"][0]["text"].startswith("Marlowe Station was founded")
    chunks = list(client(url).chat.completions.create(model="rag:docs", stream=True,
                  messages=[{"role": "user", "content": "Who founded Marlowe Station?"}]))  # fmt: skip
    assert chunks[-1].model_extra["ragtune"]["citations"][0]["n"] == 1
    nothing = client(url).chat.completions.create(
        model="rag:docs", messages=[{"role": "user", "content": "zebra?"}]
    )
    assert nothing.model_extra["ragtune"]["refused"] is True  # nothing retrieved: refused
    # the real model behind RAG mode, with an adapter named: passages come back with the answer
    url2, _ = start_server(tiny_pool, indexes={"docs": docs_index})
    r2 = client(url2).chat.completions.create(
        model="rag:docs@a1",
        messages=[{"role": "user", "content": "When does the last train leave?"}],
        max_tokens=4,
    )
    assert r2.model_extra["ragtune"]["passages"][0]["heading"] == ["Marlowe Station", "Trains"]


def test_rag_mode_copies_from_the_passages_when_extractive(
    start_server, tiny_pool, docs_index: Path
) -> None:  # type: ignore[no-untyped-def]
    """`extractive`: RAG answers are spans of the passages retrieved, streamed or not; chat
    mode on the same server answers freely."""
    url, state = start_server(tiny_pool, indexes={"docs": docs_index}, extractive=True)
    ask = [{"role": "user", "content": "Who founded Marlowe Station?"}]
    r = client(url).chat.completions.create(model="rag:docs@a1", messages=ask, max_tokens=6)
    text, rag = r.choices[0].message.content, r.model_extra["ragtune"]
    assert text and not rag["refused"]
    assert any(t in p["text"] for t in (text, text[:1].lower() + text[1:]) for p in rag["passages"])
    chunks = list(client(url).chat.completions.create(model="rag:docs@a1", messages=ask,
                                                      max_tokens=6, stream=True))  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed.strip() == text  # deltas as decoded; the final answer is stripped
    free_url, _ = start_server(tiny_pool, indexes={"docs": docs_index})
    free = client(free_url).chat.completions.create(model="rag:docs@a1", messages=ask, max_tokens=6)
    assert free.choices[0].message.content != text  # the constraint did the work
    # A request overrides the server's setting either way ("ragtune": {"extractive": ...}).
    for server, asked, expected in ((url, False, free.choices[0].message.content),
                                    (free_url, True, text)):  # fmt: skip
        r = client(server).chat.completions.create(
            model="rag:docs@a1", messages=ask, max_tokens=6,
            extra_body={"ragtune": {"extractive": asked}},
        )  # fmt: skip
        assert r.choices[0].message.content == expected
        chunks = list(client(server).chat.completions.create(
            model="rag:docs@a1", messages=ask, max_tokens=6, stream=True,
            extra_body={"ragtune": {"extractive": asked}},
        ))  # fmt: skip
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed.strip() == expected


def test_copied_and_free_answers_never_share_a_batch(start_server, docs_index: Path) -> None:  # type: ignore[no-untyped-def]
    """Requests choosing extractive decoding and requests not choosing it arrive together;
    each batch the engine runs is all one or all the other."""
    pool = scripted_pool(lambda m: "Ada Quill", delay_s=0.3)
    url, _ = start_server(pool, indexes={"docs": docs_index}, max_batch=8)
    ask = [{"role": "user", "content": "Who founded Marlowe Station?"}]
    codes: list[int] = []

    def send(copy: bool) -> None:
        body = {"model": "rag:docs", "messages": ask, "ragtune": {"extractive": copy}}
        codes.append(post(url, body)[0])

    threads = [threading.Thread(target=send, args=(i % 2 == 0,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 8
    copied = pool.generator.copied
    assert all(len(set(rows)) == 1 for rows in copied)  # never mixed
    assert {rows[0] for rows in copied} == {True, False} and max(map(len, copied)) > 1


def test_the_page_starts_at_the_servers_extractive_setting(start_server, docs_index: Path) -> None:  # type: ignore[no-untyped-def]
    for setting in (True, False):
        url, _ = start_server(scripted_pool(lambda m: "ok"), extractive=setting)
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            page = r.read().decode()
        assert f"const EXTRACTIVE = {str(setting).lower()};" in page and "{{" not in page
    # A chat request may say "not copied" (what chat does); only "copied" is refused there.
    status, body, _ = post(url, {"model": "base", "messages": Q, "ragtune": {"extractive": False}})
    assert status == 200 and body["choices"][0]["message"]["content"] == "ok"


def test_api_key_is_required_when_set(start_server) -> None:  # type: ignore[no-untyped-def]
    url, _ = start_server(scripted_pool(lambda m: "ok"), api_key="s3cret")
    with pytest.raises(openai.AuthenticationError) as err:
        client(url, "wrong").chat.completions.create(model="base", messages=Q)
    assert "API key" in str(err.value)
    assert (
        client(url, "s3cret")
        .chat.completions.create(model="base", messages=Q)
        .choices[0]
        .message.content
        == "ok"
    )
    with urllib.request.urlopen(url + "/health", timeout=10) as r:  # no key needed
        assert json.loads(r.read())["status"] == "ok"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "base", "messages": Q, "max_tokens": 100000}, "max_tokens"),
        ({"model": "base", "messages": Q, "max_tokens": 0}, "max_tokens"),
        ({"model": "base"}, "messages"),
        ({"model": "base", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "base", "messages": [{"role": "user", "content": "x" * 40000}]}, "messages"),
        ({"messages": Q}, "model"),
        ({"model": "rag:nope", "messages": Q}, "ragtune.index"),
        (
            {"model": "rag:docs", "messages": Q, "ragtune": {"extractive": "yes"}},
            "ragtune.extractive",
        ),
        ({"model": "base", "messages": Q, "ragtune": {"extractive": True}}, "ragtune.extractive"),
        (b"{not json", "body"),
        (b"[" * 50_000, "body"),  # deeper than json can parse
        (
            {
                "model": "base",
                "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}],
            },
            "messages[0].content",
        ),
        (b"x" * 150_000, "body"),  # over max_request_bytes (kept small: the client sends it all)
    ],
)
def test_bad_requests_get_400_naming_the_field(start_server, body, param) -> None:  # type: ignore[no-untyped-def]
    url, _ = start_server(scripted_pool(lambda m: "ok"), max_request_bytes=100_000)
    status, err, _ = post(url, body)
    assert status == 400 and err["error"]["param"] == param
    assert err["error"]["message"].startswith(param)


def test_unknown_model_is_404(start_server) -> None:  # type: ignore[no-untyped-def]
    url, _ = start_server(scripted_pool(lambda m: "ok"))
    with pytest.raises(openai.NotFoundError):
        client(url).chat.completions.create(model="gpt-17", messages=Q)


def test_overload_answers_429_with_retry_after_never_5xx(start_server) -> None:  # type: ignore[no-untyped-def]
    url, state = start_server(
        scripted_pool(lambda m: "ok", delay_s=0.5), max_batch=1, max_waiting=2
    )
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def one() -> None:
        status, _, headers = post(url, {"model": "base", "messages": Q})
        with lock:
            results.append((status, headers))

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [s for s, _ in results]
    assert set(codes) <= {200, 429} and codes.count(429) >= 1 and codes.count(200) >= 3
    assert all(int(h["retry-after"]) >= 1 for s, h in results if s == 429)
    assert post(url, {"model": "base", "messages": Q})[0] == 200  # and it recovers


def test_sigterm_drain_finishes_in_flight_and_refuses_new(start_server) -> None:  # type: ignore[no-untyped-def]
    url, state = start_server(scripted_pool(lambda m: "done", delay_s=1.0))
    out: list[tuple[int, dict, dict]] = []
    t = threading.Thread(target=lambda: out.append(post(url, {"model": "base", "messages": Q})))
    t.start()
    import time

    time.sleep(0.3)  # the request is on the model now
    state.stop()
    time.sleep(0.1)
    status, err, headers = post(url, {"model": "base", "messages": Q})
    assert status == 503 and "shutting down" in err["error"]["message"]
    t.join(10)
    assert out[0][0] == 200 and out[0][1]["choices"][0]["message"]["content"] == "done"


def test_other_host_headers_are_refused_on_loopback(start_server) -> None:  # type: ignore[no-untyped-def]
    url, _ = start_server(scripted_pool(lambda m: "ok"))
    req = urllib.request.Request(url + "/health", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400  # DNS rebinding: a page on another name cannot read it


def test_max_waiting_must_admit_someone() -> None:
    from ragtune.config import ConfigError
    from ragtune.serve.stage import ServeConfig

    with pytest.raises(ConfigError, match="max_waiting"):
        ServeConfig(max_waiting=0)


@pytest.mark.parametrize(("pooled", "english", "refused"), [(0.0, 1.0, False), (1.0, 0.0, True)])
def test_rag_mode_decides_at_the_questions_languages_threshold(
    start_server,
    tiny_model_dir: Path,
    docs_index: Path,
    tmp_path: Path,
    pooled: float,
    english: float,
    refused: bool,
) -> None:  # type: ignore[no-untyped-def]
    """A full fine-tune's run served as the base, its calibration holding an English
    threshold beside the pooled one: an English question is decided at English's, streamed
    or not."""
    import shutil

    from ragtune import runtime
    from ragtune.generation import abstain
    from ragtune.prompt.grounded import PromptConfig
    from ragtune.serve.pool import ModelPool

    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "model")
    (run / "train_config.yaml").write_text("method: full\n")
    record = {"threshold": pooled, "thresholds_by_lang": {"en": english}}
    abstain.calibration_path(run).write_text(json.dumps(record))
    rt = runtime.resolve(runtime.RuntimeSection(dtype="fp32", threads=1))
    pool = ModelPool.load(str(run), {}, rt, max_new_tokens=4)
    assert pool.entries[str(run)].threshold == abstain.Threshold.of(pooled, {"en": english})
    url, _ = start_server(pool, indexes={"docs": docs_index})
    ask = [{"role": "user", "content": "Who founded Marlowe Station?"}]
    r = client(url).chat.completions.create(model="rag:docs", messages=ask, max_tokens=4)
    assert r.model_extra["ragtune"]["refused"] is refused
    assert (r.choices[0].message.content == PromptConfig().refusal_en) is refused
    chunks = list(client(url).chat.completions.create(
        model="rag:docs", messages=ask, max_tokens=4, stream=True))  # fmt: skip
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert chunks[-1].model_extra["ragtune"]["refused"] is refused
    assert (streamed.strip() == PromptConfig().refusal_en) is refused
