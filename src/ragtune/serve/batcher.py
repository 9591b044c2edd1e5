"""Dynamic batching with bounded admission.

Requests waiting at the same time for the same model (and the same max_tokens and refusal
scoring) are decoded together in one batch, so concurrency raises throughput instead of only
queueing. One worker thread runs one batch at a time on the model; the event loop never
blocks on it. Admission is bounded: beyond `max_waiting` queued requests `submit` raises
`Overloaded` (the API answers 429 with Retry-After, an estimate from recent batch times);
while draining it raises `Draining` (503). Nothing waits without bound and nothing is
dropped once admitted.

    batcher = Batcher(pool, max_batch=8, max_waiting=32, wait_s=0.01)
    gen = await batcher.enqueue(Job("support", messages, 48))    # 429 / 503 raise here
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ragtune.generation.base import Generation, Messages


class Overloaded(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"server busy; retry after {retry_after} s")
        self.retry_after = retry_after


class Draining(Exception):
    pass


@dataclass
class Job:
    model: str
    messages: Messages
    max_new_tokens: int
    refusal: str | None = None
    """The refusal sentence to score (RAG mode with a calibrated threshold); None: no scoring."""
    spans: list[str] | None = None
    """The texts to copy the answer from (RAG mode, extractive); None: free decoding."""
    events: asyncio.Queue[tuple[str, Any]] | None = None
    """Streaming: ("score", p) before decoding, ("text", delta) as the answer grows."""
    future: asyncio.Future[Generation] | None = None
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, int, bool, bool]:
        return (self.model, self.max_new_tokens, self.refusal is not None, self.spans is not None)

    def _emit(self, kind: str, value: Any) -> None:
        if self.events is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))


class _Hooks:
    """Routes the engine's per-row stream callbacks to each row's job."""

    def __init__(self, jobs: list[Job]):
        self.jobs = jobs

    def score(self, i: int, value: float) -> None:
        self.jobs[i]._emit("score", value)

    def text(self, i: int, delta: str) -> None:
        self.jobs[i]._emit("text", delta)


class Batcher:
    def __init__(self, pool: Any, max_batch: int = 8, max_waiting: int = 32, wait_s: float = 0.01):
        self.pool, self.max_batch, self.max_waiting, self.wait_s = (
            pool,
            max_batch,
            max_waiting,
            wait_s,
        )
        self.pending: deque[Job] = deque()
        self.cv = threading.Condition()
        self.running = 0  # jobs in the batch on the model now
        self.draining = False
        self.closed = False
        self.batch_s: deque[float] = deque(maxlen=20)
        self.batches = 0
        self.thread = threading.Thread(target=self._work, name="ragtune-batcher", daemon=True)
        self.thread.start()

    def load(self) -> int:
        """Requests admitted and not finished (waiting + running)."""
        with self.cv:
            return len(self.pending) + self.running

    def retry_after(self) -> int:
        per_batch = sum(self.batch_s) / len(self.batch_s) if self.batch_s else 1.0
        return max(1, math.ceil(per_batch * (1 + len(self.pending) / self.max_batch)))

    def enqueue(self, job: Job) -> asyncio.Future[Generation]:
        """Admit `job` now or raise (Overloaded, Draining); the future resolves with its
        answer. Called on the event loop, so a streaming response can be refused with 429
        before its first byte."""
        job.loop = asyncio.get_running_loop()
        future: asyncio.Future[Generation] = job.loop.create_future()
        job.future = future
        with self.cv:
            self._refuse_if_full()
            self.pending.append(job)
            self.cv.notify()
        return future

    def check_admission(self) -> None:
        """Raise now what `enqueue` would, before a request spends work on retrieval."""
        with self.cv:
            self._refuse_if_full()

    def _refuse_if_full(self) -> None:  # called with the lock held
        if self.draining or self.closed:
            raise Draining()
        if len(self.pending) >= self.max_waiting:
            raise Overloaded(self.retry_after())

    def _take(self) -> list[Job]:
        with self.cv:
            while True:
                while not self.pending and not self.closed:
                    self.cv.wait()
                if self.closed:
                    return []
                key = self.pending[0].key
                deadline = time.monotonic() + self.wait_s
                # A short wait lets requests that arrive together share the batch.
                while sum(j.key == key for j in self.pending) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.cv.wait(left)
                batch = [j for j in self.pending if j.key == key][: self.max_batch]
                for j in batch:
                    self.pending.remove(j)
                batch = [j for j in batch if j.future is None or not j.future.done()]  # gone: skip
                if batch:
                    self.running = len(batch)
                    return batch

    def _work(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            t0 = time.perf_counter()
            try:
                # One key per batch: all rows or none are scored, and all or none copied.
                refusals = (
                    [j.refusal or "" for j in batch] if batch[0].refusal is not None else None
                )
                spans = [j.spans or [] for j in batch] if batch[0].spans is not None else None
                hooks = _Hooks(batch) if any(j.events is not None for j in batch) else None
                gens = self.pool.generate(batch[0].model, [j.messages for j in batch],
                                          batch[0].max_new_tokens, refusals=refusals,
                                          stream=hooks, spans=spans)  # fmt: skip
                for j, g in zip(batch, gens, strict=True):
                    self._resolve(j, g, None)
            except Exception as e:  # the requests fail with it; the server stays up
                for j in batch:
                    self._resolve(j, None, e)
            finally:
                self.batch_s.append(time.perf_counter() - t0)
                with self.cv:
                    self.running = 0
                    self.batches += 1
                    self.cv.notify_all()

    @staticmethod
    def _resolve(job: Job, gen: Generation | None, error: Exception | None) -> None:
        fut, loop = job.future, job.loop
        if fut is None or loop is None:
            return

        def done() -> None:
            if fut.done():
                return  # the client went away
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(gen)  # type: ignore[arg-type]

        loop.call_soon_threadsafe(done)

    def drain(self) -> None:
        with self.cv:
            self.draining = True

    def close(self) -> None:
        with self.cv:
            self.closed = True
            self.cv.notify_all()
