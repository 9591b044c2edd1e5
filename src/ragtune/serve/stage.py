"""`ragtune serve`: load the base and adapters once, open the indexes, and serve on loopback.

    ragtune serve --model smollm2-135m --adapter support=runs/lora --index docs=my-index
    curl -s localhost:8000/v1/chat/completions -d '{"model": "rag:docs", "messages": [...]}'

SIGTERM (or Ctrl-C) drains: new requests get 503, admitted ones finish (up to
`drain_timeout_s`), then the process exits. Listening beyond loopback (`host=0.0.0.0`)
is the operator's choice; set `api_key` (or $RAGTUNE_API_KEY) when doing so.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

from ragtune import runtime
from ragtune.config import ConfigError, require
from ragtune.prompt.grounded import PromptConfig
from ragtune.rag.settings import RetrievalSection
from ragtune.runtime import RuntimeSection
from ragtune.serve.schema import Limits


@dataclass
class ServeConfig:
    model: str = "smollm2-135m"
    """The base model (alias, local folder or .gguf), loaded once."""
    adapters: list[str] = field(default_factory=list)
    """NAME=DIR per LoRA adapter (the run folder `ragtune train` wrote); clients pick one
    with "model": NAME. --adapter may be given several times."""
    indexes: list[str] = field(default_factory=list)
    """NAME=INDEX per index folder (`ragtune index`); RAG mode is "model": "rag:NAME"."""
    host: str = "127.0.0.1"
    """Address to listen on (loopback by default)."""
    port: int = 8000
    """Port to listen on (0: any free port, printed at start)."""
    api_key: str | None = None
    """Require "Authorization: Bearer KEY" on /v1/*; default $RAGTUNE_API_KEY, unset: no key."""
    max_batch: int = 8
    """Requests decoded together at most (dynamic batching; one model and max_tokens per batch)."""
    max_waiting: int = 32
    """Requests queued beyond the running batch; more get 429 with Retry-After."""
    batch_wait_ms: float = 10.0
    """How long the first request of a batch waits for others to join it."""
    max_tokens: int = 48
    """max_tokens for requests that do not say."""
    limits: Limits = field(default_factory=Limits)
    """Request limits (limits.max_tokens, limits.max_messages, limits.max_chars): 400 beyond."""
    max_request_bytes: int = 1_000_000
    """Largest request body; larger ones get 400."""
    max_length: int = 2048
    """Prompt + answer tokens per request; RAG passages are shortened to fit."""
    drain_timeout_s: float = 30.0
    """After SIGTERM, how long admitted requests may take to finish."""
    retrieval: RetrievalSection = field(default_factory=RetrievalSection)
    """How RAG mode retrieves (retrieval.mode, retrieval.k, retrieval.rerank, ...)."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """Grounded prompt for RAG mode (must match what the adapters were trained with)."""
    extractive: bool = False
    """RAG mode copies each answer from whole words of the retrieved passages (extractive
    decoding, `generation.extractive`; chat mode always answers freely). Off by default:
    on Qwen2.5-0.5B it kept F1 and put every answer in its passages, on SmolLM2 it lost
    F1 and refusals (benchmarks/RESULTS.md). A request overrides it ("ragtune":
    {"extractive": true|false}), and so does the web page's box."""
    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    """Device, dtype and CPU threads."""

    def __post_init__(self) -> None:
        for key in ("max_batch", "max_tokens", "max_request_bytes", "max_length"):
            require(self, key, min=1)
        require(self, "max_waiting", min=1)
        require(self, "port", min=0, max=65535)
        for key in ("adapters", "indexes"):
            for item in getattr(self, key):
                if "=" not in item or not item.split("=", 1)[0] or not item.split("=", 1)[1]:
                    raise ConfigError(f"{key}: expected NAME=PATH, got {item!r}")


Config = ServeConfig


def _pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def build_state(cfg: ServeConfig) -> Any:
    from ragtune.rag.index import Index
    from ragtune.serve.api import ServerState
    from ragtune.serve.batcher import Batcher
    from ragtune.serve.pool import ModelPool

    rt = runtime.for_stage(cfg.runtime, cfg.model)
    pool = ModelPool.load(cfg.model, _pairs(cfg.adapters), rt, cfg.max_tokens, cfg.max_batch)
    indexes = {name: Index.open(path) for name, path in _pairs(cfg.indexes).items()}
    batcher = Batcher(pool, cfg.max_batch, cfg.max_waiting, cfg.batch_wait_ms / 1000)
    key = cfg.api_key or os.environ.get("RAGTUNE_API_KEY") or None
    state = ServerState(pool, batcher, indexes, key, cfg.limits, cfg.max_request_bytes, cfg.max_length,
                        cfg.max_tokens, cfg.prompt, cfg.retrieval, cfg.extractive)  # fmt: skip
    # Loaded now, not on the first request: a config error stops startup instead of failing
    # every request, and the event loop never waits on an embedder or reranker load.
    for name in indexes:
        state.retriever(name)
    return state


async def serve(
    state: Any, host: str, port: int, drain_timeout_s: float, ready: Any = None
) -> None:
    """Run uvicorn until SIGTERM/SIGINT, then drain: 503 for new requests, admitted ones
    finish, then exit. `ready(port)` is called once listening (tests, benchmarks)."""
    import uvicorn

    from ragtune.serve.api import create_app

    app = create_app(state)
    if host in ("127.0.0.1", "localhost", "::1"):
        # Served on loopback: refuse other Host headers, so a web page the user visits cannot
        # read this server through DNS rebinding.
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        loopback = ["127.0.0.1", "localhost", "[::1]", "::1"]
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=loopback)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()

    def drain() -> None:
        if state.draining:
            server.should_exit = server.force_exit = True  # a second signal: stop now
            return
        state.draining = True
        state.batcher.drain()
        loop.create_task(_finish(state, server, drain_timeout_s))

    # uvicorn installs its handlers (main thread only) around serve() and calls this one:
    # draining first instead of closing the socket at once.
    def on_signal(sig: int, frame: Any) -> None:
        loop.call_soon_threadsafe(drain)

    server.handle_exit = on_signal  # type: ignore[method-assign]
    state.stop = lambda: loop.call_soon_threadsafe(drain)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started:
        bound = server.servers[0].sockets[0].getsockname()[1]
        print(f"serve: http://{host}:{bound}/ ({', '.join(state.pool.entries)}"
              + (f"; indexes {', '.join(state.indexes)}" if state.indexes else "") + ")", flush=True)  # fmt: skip
        if ready is not None:
            ready(bound)
    await task
    state.batcher.close()
    for index in state.indexes.values():
        index.close()


async def _finish(state: Any, server: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while state.inflight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    server.should_exit = True
    # uvicorn then waits for open connections; past the deadline it must not wait on.
    server.force_exit = state.inflight > 0


def run(cfg: ServeConfig) -> dict[str, Any]:
    state = build_state(cfg)
    asyncio.run(serve(state, cfg.host, cfg.port, cfg.drain_timeout_s))
    return {"stopped": True, "batches": state.batcher.batches}


def show(result: dict[str, Any]) -> None:
    print(f"serve: stopped after {result['batches']} batches")
