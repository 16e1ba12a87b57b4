"""A server on a free loopback port, in a thread of the test process; images as data URLs. Imported by
the server tests and their conftest (a module of its own: pytest's conftest is not for importing)."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
import httpx  # noqa: E402 (after the skip: the server extra brings it with the openai client)
import uvicorn  # noqa: E402

from qwenvl_edge.server import start  # noqa: E402
from qwenvl_edge.server.engine import Settings  # noqa: E402


class Served:
    """``with Served(model, ...) as s:`` a server at ``s.url`` until the block ends."""

    def __init__(self, model, settings: Settings | None = None, queue: int = 8, api_key: str | None = None,
                 name: str = "tiny", cors: list[str] | None = None, wait_ready: bool = True):
        self.app, self.worker = start(model, settings or Settings(), queue, api_key, cors=cors, name=name)
        self.wait_ready = wait_ready
        sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self) -> "Served":
        self.thread.start()
        deadline = time.monotonic() + 60
        while httpx.get(self.url + "/health").status_code != (200 if self.wait_ready else 503):
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join()
        self.worker.stop()


def data_url(path: str) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def png_bytes(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()
