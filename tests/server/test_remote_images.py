"""--allow-remote-images: http(s) pictures are fetched, with a size cap and no redirect to another host."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import httpx
import pytest

import qwenvl_edge
from qwenvl_edge.server.engine import Settings
from serving import Served


@pytest.fixture(scope="module")
def pictures_site(pictures):
    """http://127.0.0.1:PORT/p0.png serves a picture; /away redirects to another host (localhost); /big is
    100 KiB."""
    folder = Path(pictures[0]).parent

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):
            if self.path == "/big":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"\x89PNG\r\n\x1a\n" + bytes(100 << 10))
                return
            if self.path == "/away":
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{self.server.server_port}/p0.png")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{site.server_port}"
    site.shutdown()
    site.server_close()


@pytest.fixture(scope="module")
def remote(tiny_bundle):
    model = qwenvl_edge.load(tiny_bundle, threads=2)
    with Served(model, Settings(allow_remote_images=True, max_image_bytes=64 << 10)) as s:
        yield s


def ask(server, url):
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                      {"type": "text", "text": "What?"}]}], "max_tokens": 2}
    return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)


def test_a_remote_picture_is_fetched_with_the_flag(remote, pictures_site):
    reply = ask(remote, pictures_site + "/p0.png")
    assert reply.status_code == 200 and reply.json()["timings"]["images"] == 1


def test_a_redirect_to_another_host_is_refused(remote, pictures_site):
    reply = ask(remote, pictures_site + "/away")
    assert reply.status_code == 400 and "redirected to another host" in reply.json()["error"]["message"]


def test_a_remote_picture_over_the_byte_cap_is_refused(remote, pictures_site):
    reply = ask(remote, pictures_site + "/big")
    assert reply.status_code == 400 and "larger than" in reply.json()["error"]["message"]


def test_a_missing_remote_picture_is_a_clear_400(remote, pictures_site):
    reply = ask(remote, pictures_site + "/missing.png")
    assert reply.status_code == 400 and "cannot fetch" in reply.json()["error"]["message"]
