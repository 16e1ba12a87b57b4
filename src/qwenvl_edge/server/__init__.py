"""``qwenvl-edge serve``: a local OpenAI-compatible server with a web page (docs/server.md).

    app.py           routes: /, /health, /v1/models, /v1/chat/completions, /v1/completions
    guard.py         the API key, the Host check, JSON-only POSTs
    params.py        generation parameters -> Model.run options (unsupported ones refused by name)
    conversation.py  OpenAI messages -> ChatML ids and pictures (typed <img> spans stay text)
    images.py        data: URLs (and http(s) with --allow-remote-images) -> pictures
    engine.py        checked requests (Run) and the work the worker runs for them
    pool.py          decoder sessions reused by longest shared prefix, LRU eviction
    worker.py        one computation at a time, a bounded FIFO queue (429 beyond it), cancellation
    shapes.py        OpenAI response and SSE chunk bodies, plus boxes and timings
    command.py       the command line
    static/          the web page (plain HTML and JavaScript, no build step, no CDN)

Needs the ``server`` extra (Starlette, uvicorn); the rest of the runtime does not import this package.
"""

from __future__ import annotations

from qwenvl_edge.model import Model
from qwenvl_edge.server.engine import Engine, Settings
from qwenvl_edge.server.worker import Worker


def start(model: Model, settings: Settings, queue: int, api_key: str | None = None, loopback_only: bool = True,
          cors: list[str] | None = None, name: str | None = None):
    """The ASGI app for ``model`` and its started worker (which opens the vision encoder first)."""
    from qwenvl_edge.server.app import create_app

    engine = Engine(model, settings, name)
    worker = Worker(queue, engine.open)
    worker.start()
    return create_app(engine, worker, api_key, loopback_only, cors), worker
