"""A real `ragtune serve` on loopback, in a background thread, for each test that asks.

`start_server(pool, ...)` builds the server state as `ragtune serve` does and serves it on a
free port of 127.0.0.1; on teardown it drains and joins the thread, so no server outlives its
test. `tiny_pool` is the tiny model with two tiny adapters ("a1", "a2") on one base."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ragtune.generation.base import Generation
from ragtune.serve.api import ServerState
from ragtune.serve.batcher import Batcher
from ragtune.serve.pool import ModelPool
from ragtune.serve.stage import serve

GUIDE = "# Marlowe Station\n\nMarlowe Station was founded by Ada Quill in 1871.\n\n## Trains\n\nThe last train departs at 23:40.\n"


@pytest.fixture(scope="session")
def tiny_pool_parts(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, make_tiny_adapter
):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("serve-adapters")
    a1 = make_tiny_adapter(tiny_model_dir, root / "a1" / "adapter", seed=1)
    a2 = make_tiny_adapter(tiny_model_dir, root / "a2" / "adapter", seed=2)
    return str(tiny_model_dir), {"a1": str(a1.parent), "a2": str(a2.parent)}


@pytest.fixture(scope="session")
def tiny_pool(tiny_pool_parts) -> ModelPool:  # type: ignore[no-untyped-def]
    from ragtune import runtime

    model, adapters = tiny_pool_parts
    rt = runtime.resolve(runtime.RuntimeSection(dtype="fp32", threads=1))
    return ModelPool.load(model, adapters, rt, max_new_tokens=8, batch_size=4)


@pytest.fixture(scope="session")
def docs_index(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from ragtune.rag.index import IndexConfig, build

    d = tmp_path_factory.mktemp("serve-docs")
    (d / "guide.md").write_text(GUIDE, encoding="utf-8")
    build(IndexConfig(docs=[str(d)], out=str(d / "idx"), embedder="none"))
    return d / "idx"


class Scripted:
    """A stand-in engine behind the real server: replies `reply(messages)` after `delay_s`
    (to hold requests in flight), and counts the batches it ran."""

    name = "scripted"

    def __init__(self, reply: Callable[[Any], str], delay_s: float = 0.0):
        self.reply, self.delay_s, self.batches = reply, delay_s, []
        self.copied: list[list[bool]] = []
        """Per batch, per row: was the answer to be copied from texts (extractive)?"""
        self.max_new_tokens = 8

    def generate(self, batch, refusals=None, spans=None, stream=None):  # type: ignore[no-untyped-def]
        self.batches.append(len(batch))
        self.copied.append([bool(s) for s in spans] if spans is not None else [False] * len(batch))
        time.sleep(self.delay_s)
        out = []
        for i, m in enumerate(batch):
            text = self.reply(m)
            if stream is not None:
                stream.text(i, text)
            out.append(Generation(text, 2, self.delay_s, len(batch), prompt_tokens=5))
        return out

    def count_prompt_tokens(self, messages) -> int:  # type: ignore[no-untyped-def]
        return sum(len(m["content"].split()) for m in messages)


def scripted_pool(reply: Callable[[Any], str], delay_s: float = 0.0) -> ModelPool:
    return ModelPool(Scripted(reply, delay_s), "base", {}, {})  # type: ignore[arg-type]


@pytest.fixture
def start_server() -> Iterator[Callable[..., tuple[str, ServerState]]]:
    started: list[tuple[threading.Thread, ServerState]] = []

    def start(pool: ModelPool, indexes: dict[str, Path] | None = None, max_batch: int = 4,
              max_waiting: int = 16, **kw: Any) -> tuple[str, ServerState]:  # fmt: skip
        from ragtune.rag.index import Index

        batcher = Batcher(pool, max_batch, max_waiting, wait_s=0.02)
        opened = {n: Index.open(p) for n, p in (indexes or {}).items()}
        state = ServerState(pool, batcher, opened, **kw)
        port: list[int] = []
        ready = threading.Event()

        def target() -> None:
            asyncio.run(
                serve(state, "127.0.0.1", 0, 10.0, ready=lambda p: (port.append(p), ready.set()))
            )

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        assert ready.wait(30), "server did not start"
        started.append((thread, state))
        return f"http://127.0.0.1:{port[0]}", state

    yield start
    for thread, state in started:
        if state.stop is not None:
            state.stop()
        thread.join(15)
        assert not thread.is_alive(), "server did not stop"
