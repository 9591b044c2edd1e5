"""The HTTP API: FastAPI routes over a ModelPool, a Batcher and named RAG indexes.

- `GET /health` (no key): status, models, load.
- `GET /v1/models`: the base, each adapter, and `rag:INDEX` per index.
- `POST /v1/chat/completions`: OpenAI's chat format, streaming (SSE, `data: [DONE]`, the
  final usage chunk with `stream_options.include_usage`) or not. `model` picks the base or an
  adapter. RAG mode, `model: "rag:INDEX"` (or `"rag:INDEX@ADAPTER"`, or any model plus
  `"ragtune": {"index": "INDEX"}`), answers the last user message from that index. The
  adapter's (or a full fine-tune base's) calibrated refusal threshold applies, per language
  where it has them, and the reply carries `ragtune`:
  {refused, citations, passages} (in the last chunk when streaming). In RAG mode
  `"ragtune": {"extractive": true|false}` copies the answer from the passages or not,
  whatever the server's `extractive` setting (a chat request asked to copy gets 400).
- `GET /`: the web page (`page.html`).

Errors use OpenAI's shape. 400 names the field, 401 means a missing or wrong key, 429 comes
with Retry-After when the queue is full, and 503 while draining after SIGTERM.

    app = create_app(ServerState(pool, batcher, indexes={"docs": index}, api_key=None))
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sse_starlette import EventSourceResponse

from ragtune.generation import abstain
from ragtune.generation.base import Generation
from ragtune.generation.grounded import grounded_request
from ragtune.prompt.grounded import PromptConfig, refusal_for
from ragtune.rag.ask import answer_dict
from ragtune.rag.index import Index
from ragtune.rag.pipeline import Answer, Pipeline
from ragtune.rag.settings import RetrievalSection
from ragtune.serve.batcher import Batcher, Draining, Job, Overloaded
from ragtune.serve.pool import ModelPool
from ragtune.serve.schema import (
    ApiError,
    ChatRequest,
    Limits,
    chunk,
    completion,
    completion_id,
    parse_chat,
    usage,
)


@dataclass
class ServerState:
    pool: ModelPool
    batcher: Batcher
    indexes: dict[str, Index] = field(default_factory=dict)
    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_request_bytes: int = 1_000_000
    max_length: int = 2048
    """Prompt + answer tokens a request may take (chat prompts longer than this get 400;
    RAG passages are shortened to fit)."""
    default_max_tokens: int = 48
    prompt: PromptConfig = field(default_factory=PromptConfig)
    retrieval: RetrievalSection = field(default_factory=RetrievalSection)
    extractive: bool = False
    """RAG mode copies answers from whole words of the passages (`ServeConfig.extractive`),
    unless a request says otherwise ("ragtune": {"extractive": false})."""
    draining: bool = False
    inflight: int = 0
    stop: Any = None
    """Starts the drain (set by `stage.serve`): what SIGTERM calls, callable from tests."""
    retrievers: dict[str, Any] = field(default_factory=dict)

    def retriever(self, name: str) -> Any:
        if name not in self.retrievers:
            self.retrievers[name] = self.indexes[name].retriever(self.retrieval)
        return self.retrievers[name]

    def rag_model(self) -> str:
        """The model RAG mode uses when none is named: the first adapter, else the base."""
        adapters = [n for n in self.pool.entries if n != self.pool.base_name]
        return adapters[0] if adapters else self.pool.base_name


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(title="ragtune", docs_url=None, redoc_url=None)
    app.state.ragtune = state

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, e: Exception) -> JSONResponse:
        err = ApiError(500, f"internal error: {type(e).__name__}: {e}", kind="server_error")
        return JSONResponse(err.body(), status_code=500)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if path.startswith("/v1/"):
            if state.api_key is not None:
                auth = request.headers.get("authorization", "")
                given = auth[7:] if auth.lower().startswith("bearer ") else ""
                if not secrets.compare_digest(given.encode(), state.api_key.encode()):
                    err = ApiError(401, "missing or wrong API key: send Authorization: Bearer KEY",
                                   kind="authentication_error")  # fmt: skip
                    return JSONResponse(err.body(), status_code=401)
            if state.draining:
                err = ApiError(503, "server is shutting down; retry on another instance",
                               kind="server_error", headers={"Retry-After": "5"})  # fmt: skip
                return JSONResponse(err.body(), status_code=503, headers=err.headers)
            size = request.headers.get("content-length")
            if size is not None and size.isdigit() and int(size) > state.max_request_bytes:
                err = ApiError(400, f"body: {size} bytes; this server takes at most "
                               f"{state.max_request_bytes}", "body")  # fmt: skip
                return JSONResponse(err.body(), status_code=400)
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "draining" if state.draining else "ok", "models": list(state.pool.entries),
                "indexes": list(state.indexes), "load": state.batcher.load(),
                "batches": state.batcher.batches}  # fmt: skip

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        names = [*state.pool.entries, *(f"rag:{n}" for n in state.indexes)]
        return {
            "object": "list",
            "data": [{"id": n, "object": "model", "owned_by": "ragtune"} for n in names],
        }

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        html = resources.files("ragtune.serve").joinpath("page.html").read_text(encoding="utf-8")
        html = html.replace("{{EXTRACTIVE}}", "true" if state.extractive else "false")
        return HTMLResponse(html.replace("{{AUTH}}", "true" if state.api_key else "false"))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        raw = bytearray()
        async for part in request.stream():  # a chunked upload has no Content-Length to check
            raw += part
            if len(raw) > state.max_request_bytes:
                raise ApiError(
                    400, f"body: over {state.max_request_bytes} bytes, this server's limit", "body"
                )
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise ApiError(400, f"body: not valid JSON ({type(e).__name__}: {e})", "body") from None
        req = parse_chat(body, state.limits)
        if req.index is not None and not req.model:
            req.model = state.rag_model()
        if req.model not in state.pool.entries:
            known = ", ".join([*state.pool.entries, *(f"rag:{n}" for n in state.indexes)])
            err = ApiError(404 if req.index is None else 400,
                           f"model: {req.model!r} is not served here (models: {known})", "model")  # fmt: skip
            err.code = "model_not_found"
            raise err
        if req.index is not None and req.index not in state.indexes:
            raise ApiError(400, f"ragtune.index: no index {req.index!r} (indexes: {', '.join(state.indexes) or 'none'})",
                           "ragtune.index")  # fmt: skip
        max_tokens = req.max_tokens or state.default_max_tokens
        _admission(state)  # before retrieval: an overloaded server spends nothing on a 429
        state.inflight += 1
        try:
            job, pipe, passages = await _prepare(state, req, max_tokens)
            if job is not None and req.stream:
                job.events = asyncio.Queue()
            future = _enqueue(state, job) if job is not None else None  # 429 / 503 happen here
        except BaseException:
            state.inflight -= 1
            raise
        if req.stream:
            stream = _stream(state, req, job, future, pipe, passages)
            return EventSourceResponse(stream, sep="\n", ping=600)
        try:
            gen, answer = await _run(state, future, pipe, passages, req)
        finally:
            state.inflight -= 1
        finish = _finish_reason(gen, answer, max_tokens)
        text = answer.text if answer else gen.text
        rag = _rag_payload(answer) if answer else None
        return completion(completion_id(), _model_label(req), text, finish,
                          usage(gen.prompt_tokens, gen.new_tokens), rag)  # fmt: skip

    return app


def _model_label(req: ChatRequest) -> str:
    return f"rag:{req.index}@{req.model}" if req.index else req.model


def _rag_payload(answer: Answer) -> dict[str, Any]:
    d = answer_dict(answer)
    return {k: d[k] for k in ("refused", "refusal_score", "citations", "passages")}


async def _prepare(
    state: ServerState, req: ChatRequest, max_tokens: int
) -> tuple[Job | None, Pipeline | None, list]:
    """The job to run (None: a RAG question with nothing retrieved, refused at once), the
    pipeline and passages for RAG mode."""
    if req.index is None:
        n = state.pool.count_prompt_tokens(req.messages)
        if n + max_tokens > state.max_length:
            raise ApiError(400, f"messages: the prompt is {n} tokens; with max_tokens={max_tokens} it exceeds "
                           f"this server's {state.max_length}", "messages")  # fmt: skip
        return Job(req.model, req.messages, max_tokens), None, []
    entry = state.pool.entries[req.model]
    question = req.messages[-1]["content"]
    extractive = state.extractive if req.extractive is None else req.extractive
    pipe = Pipeline(state.retriever(req.index), state.pool.generator, state.prompt, k=state.retrieval.k,
                    threshold=entry.threshold, max_length=state.max_length, max_new_tokens=max_tokens,
                    extractive=extractive)  # fmt: skip
    passages = await asyncio.to_thread(pipe.retrieve, question)
    if not passages:
        return None, pipe, []
    r = grounded_request(question, [p.text for p in passages], state.prompt,
                         entry.threshold is not None, extractive)  # fmt: skip
    return Job(req.model, r.messages, max_tokens, r.refusal, r.spans), pipe, passages


def _finish_reason(gen: Generation, answer: Answer | None, max_tokens: int) -> str:
    if answer is not None and answer.refused:
        return "stop"  # the refusal sentence is complete, whatever the suppressed answer did
    return "length" if gen.new_tokens >= max_tokens else "stop"


@contextlib.contextmanager
def _admission_errors(state: ServerState) -> Iterator[None]:
    """The batcher's refusals as API errors: 429 with Retry-After, or 503 while draining."""
    try:
        yield
    except Overloaded as e:
        raise ApiError(429, f"server busy: {state.batcher.load()} requests in progress; retry after "
                       f"{e.retry_after} s", kind="rate_limit_error",
                       headers={"Retry-After": str(e.retry_after)}) from None  # fmt: skip
    except Draining:
        raise ApiError(503, "server is shutting down", kind="server_error",
                       headers={"Retry-After": "5"}) from None  # fmt: skip


def _admission(state: ServerState) -> None:
    with _admission_errors(state):
        state.batcher.check_admission()


def _enqueue(state: ServerState, job: Job) -> asyncio.Future[Generation]:
    with _admission_errors(state):
        return state.batcher.enqueue(job)


async def _run(state: ServerState, future: asyncio.Future[Generation] | None, pipe: Pipeline | None,
               passages: list, req: ChatRequest) -> tuple[Generation, Answer | None]:  # fmt: skip
    if future is None:  # RAG with nothing retrieved
        question = req.messages[-1]["content"]
        gen = Generation(refusal_for(question, state.prompt), 0, 0.0, 1)
        return gen, Answer(question, gen.text, True)
    gen = await future
    answer = pipe.answer_from(req.messages[-1]["content"], gen, passages) if pipe else None
    return gen, answer


async def _stream(state: ServerState, req: ChatRequest, job: Job | None,
                  future: asyncio.Future[Generation] | None, pipe: Pipeline | None,
                  passages: list) -> AsyncIterator[dict[str, str]]:  # fmt: skip
    cid, label = completion_id(), _model_label(req)
    get: asyncio.Task[Any] | None = None
    task: asyncio.Task[tuple[Generation, Answer | None]] | None = None
    try:
        yield {
            "data": json.dumps(
                chunk(
                    cid, label, {"role": "assistant", "content": ""}, usage_null=req.include_usage
                )
            )
        }
        # The number for this question's language (a calibration may hold one per language).
        threshold = (
            abstain.at_question(pipe.threshold, req.messages[-1]["content"]) if pipe else None
        )
        task = asyncio.create_task(_run(state, future, pipe, passages, req))
        refused_early = False
        sent = ""
        while job is not None and not task.done():
            get = asyncio.create_task(job.events.get())  # type: ignore[union-attr]
            done, _ = await asyncio.wait({get, task}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                break
            kind, value = get.result()
            if kind == "score" and threshold is not None and value > threshold:
                refused_early = True  # the reply is the refusal sentence: send it at the end
            elif kind == "text" and not refused_early:
                sent += value
                yield {
                    "data": json.dumps(
                        chunk(cid, label, {"content": value}, usage_null=req.include_usage)
                    )
                }
        try:
            gen, answer = await task
        except Exception as e:  # the engine failed after the stream began: say so in it
            err = ApiError(500, f"generation failed: {type(e).__name__}: {e}", kind="server_error")
            yield {"data": json.dumps(err.body())}
            yield {"data": "[DONE]"}
            return
        text = answer.text if answer else gen.text
        rest = text[len(sent) :] if text.startswith(sent) else ("" if sent else text)
        if rest:
            yield {
                "data": json.dumps(
                    chunk(cid, label, {"content": rest}, usage_null=req.include_usage)
                )
            }
        finish = _finish_reason(gen, answer, job.max_new_tokens if job else 1)
        rag = _rag_payload(answer) if answer else None
        yield {"data": json.dumps(chunk(cid, label, {}, finish, rag, req.include_usage))}
        if req.include_usage:
            final = chunk(cid, label, {})
            final["choices"] = []
            final["usage"] = usage(gen.prompt_tokens, gen.new_tokens)
            yield {"data": json.dumps(final)}
        yield {"data": "[DONE]"}
    finally:  # also when the client went away mid-stream: nothing is left running for it
        for pending in (get, task):
            if pending is not None and not pending.done():
                pending.cancel()
        if future is not None and not future.done():
            future.cancel()  # a job still queued is skipped by the batcher
        state.inflight -= 1
