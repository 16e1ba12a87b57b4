"""The HTTP routes (Starlette): the OpenAI-compatible API, /health, and the web page at /.

    GET  /                     the page (static/index.html)
    GET  /health               200 {"status": "ok"} once the decoder and the vision encoder are open, else 503
    GET  /v1/models            the one model this server runs
    POST /v1/chat/completions  Qwen-VL-Chat bundles (stream: SSE chunks, then data: [DONE])
    POST /v1/completions       base bundles (Qwen-VL): raw prompts

A request is read and checked here (within the size limit, into the engine's Run), queued on the worker,
and answered from its job's events; a client that disconnects cancels its job.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from typing import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from qwenvl_edge.server import shapes
from qwenvl_edge.server.engine import Engine, Run
from qwenvl_edge.server.errors import INTERNAL, ApiError
from qwenvl_edge.server.guard import Guard
from qwenvl_edge.server.worker import Job, Worker

log = logging.getLogger("qwenvl_edge.server")


def error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


async def read_json(request: Request, limit: int) -> dict:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {int(declared)} bytes: at most {limit} ({limit >> 20} MiB)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body larger than {limit} bytes ({limit >> 20} MiB)")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


async def until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(engine: Engine, worker: Worker, api_key: str | None = None, loopback_only: bool = True,
               cors: list[str] | None = None) -> Starlette:
    page = resources.files("qwenvl_edge.server").joinpath("static/index.html").read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def health(request: Request) -> Response:
        if worker.failed is not None:
            return JSONResponse({"status": "error", "error": "the model could not be opened"}, status_code=503)
        if not worker.ready.is_set():
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ok", "model": engine.name})

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [engine.describe()]})

    async def answer(request: Request, prepare: Callable[[dict], Run], kind: str) -> Response:
        body = await read_json(request, engine.settings.max_request_bytes)
        try:
            run = await run_in_threadpool(prepare, body)
        except ValueError as e:  # the runtime's own refusal (e.g. text that is not valid Unicode)
            raise ApiError(400, str(e)) from None
        job = Job(engine.work(run), asyncio.get_running_loop())
        worker.submit(job)
        ids = shapes.Ids("chatcmpl" if kind == "chat" else "cmpl", engine.name)
        if run.params.stream:
            return StreamingResponse(_events(job, ids, kind, run.params.include_usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await _whole(request, job, ids, kind)

    async def chat(request: Request) -> Response:
        return await answer(request, engine.chat_run, "chat")

    async def completions(request: Request) -> Response:
        return await answer(request, engine.completion_run, "text")

    async def api_error(request: Request, e: Exception) -> Response:
        assert isinstance(e, ApiError)
        return error_response(e)

    async def http_error(request: Request, e: Exception) -> Response:
        assert isinstance(e, HTTPException)
        return error_response(ApiError(e.status_code, f"{e.detail}: {request.method} {request.url.path}"))

    async def unexpected(request: Request, e: Exception) -> Response:
        if isinstance(e, ClientDisconnect):
            return Response(status_code=499)
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(INTERNAL)

    middleware = [Middleware(CORSMiddleware, allow_origins=cors, allow_methods=["GET", "POST"],
                             allow_headers=["Authorization", "Content-Type"])] if cors else []
    middleware.append(Middleware(Guard, api_key=api_key, loopback_only=loopback_only))
    routes = [Route("/", index), Route("/index.html", index), Route("/health", health), Route("/v1/models", models),
              Route("/v1/chat/completions", chat, methods=["POST"]),
              Route("/v1/completions", completions, methods=["POST"])]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: unexpected})
    app.state.engine = engine  # for whoever embeds the app (the tests look into its session pool)
    return app


async def _whole(request: Request, job: Job, ids: shapes.Ids, kind: str) -> Response:
    """Wait for the job's answer; a client that leaves first cancels it."""
    gone = asyncio.ensure_future(until_disconnected(request))
    try:
        while True:
            next_event = asyncio.ensure_future(job.events.get())
            await asyncio.wait({next_event, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not next_event.done():
                next_event.cancel()
                job.cancel()
                return Response(status_code=499)
            event, value = next_event.result()
            if event == "error":
                return error_response(value)
            if event == "done":
                body = shapes.chat_completion(ids, value) if kind == "chat" else shapes.text_completion(ids, value)
                return JSONResponse(body)
    finally:
        gone.cancel()


async def _events(job: Job, ids: shapes.Ids, kind: str, include_usage: bool) -> AsyncIterator[str]:
    """SSE in OpenAI's shape: a first chunk with the role, a chunk per delta, a last chunk with the
    finish_reason (and this server's boxes and timings), the usage chunk when asked, then [DONE]. An
    error after the stream has begun is sent as an ``error`` event, as OpenAI does."""
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def chunk(text: str | None, finish_reason: str | None = None, **extra) -> dict:
        if kind == "chat":
            return shapes.chat_chunk(ids, {} if text is None else {"content": text}, finish_reason, **extra)
        return shapes.text_chunk(ids, text or "", finish_reason, **extra)

    try:
        if kind == "chat":
            yield shapes.sse(shapes.chat_chunk(ids, {"role": "assistant", "content": ""}))
        while True:
            event, value = await job.events.get()
            if event == "delta":
                yield shapes.sse(chunk(value))
            elif event == "error":
                yield shapes.sse(value.body())
                return
            else:
                yield shapes.sse(chunk(None, value.reply.finish_reason, **shapes.extension(value)))
                if include_usage:
                    yield shapes.sse(shapes.usage_chunk(ids, obj, value))
                yield shapes.sse("[DONE]")
                return
    finally:
        job.cancel()  # the client left (or the stream ended: then nothing is left to cancel)
