"""``qwenvl-edge serve BUNDLE``: load the bundle, then serve it over HTTP until Ctrl-C."""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sys

from qwenvl_edge import limits
from qwenvl_edge.commands import whole

API_KEY_VARIABLE = "QWENVL_EDGE_API_KEY"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="a bundle directory written by `qwenvl-edge export`")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only; any other "
                                                        "needs --api-key)")
    p.add_argument("--port", type=whole(0), default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("--api-key", default=os.environ.get(API_KEY_VARIABLE),
                   help=f"clients must send Authorization: Bearer KEY (default: ${API_KEY_VARIABLE})")
    p.add_argument("--threads", type=whole(1), help="threads (default: physical cores)")
    p.add_argument("--ctx", type=whole(1), help="positions per session's KV cache (default: the bundle's "
                                                "max_context, 8192); memory grows with what is used")
    p.add_argument("--sessions", type=whole(1), default=4, help="KV caches kept for reuse across requests (default 4)")
    p.add_argument("--queue", type=whole(1), default=8, help="requests that may wait while one runs; more are "
                                                             "refused with 429 (default 8)")
    p.add_argument("--allow-remote-images", action="store_true",
                   help="accept http(s) image URLs (fetched with a timeout and a size cap); off: data: URLs only")
    p.add_argument("--cors", action="append", metavar="ORIGIN",
                   help="let web pages of ORIGIN call the API from a browser (repeatable)")
    p.add_argument("--max-body-mb", type=whole(1), default=limits.MAX_REQUEST_BYTES >> 20,
                   help=f"largest request body in MiB (default {limits.MAX_REQUEST_BYTES >> 20})")


def run(args: argparse.Namespace) -> None:
    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        sys.exit("qwenvl-edge serve needs the server extra: pip install 'qwenvl-edge[server]'")
    import uvicorn

    from qwenvl_edge.model import load
    from qwenvl_edge.server import start
    from qwenvl_edge.server.engine import Settings
    from qwenvl_edge.server.guard import is_loopback

    loopback = is_loopback(args.host)
    if not loopback and not args.api_key:
        raise ValueError(f"--host {args.host} is reachable from other machines: give --api-key KEY (or set "
                         f"${API_KEY_VARIABLE}), or keep the default --host 127.0.0.1")
    sock = socket.create_server((args.host, args.port), family=socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    model = load(args.bundle, threads=args.threads, context=args.ctx)
    settings = Settings(sessions=args.sessions, allow_remote_images=args.allow_remote_images,
                        max_request_bytes=args.max_body_mb << 20)
    app, worker = start(model, settings, args.queue, args.api_key, loopback, args.cors)
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    print(f"qwenvl-edge serve: {model!r}\n  page {url}/   API {url}/v1   (Ctrl-C stops)", flush=True)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)).run(sockets=[sock])
    finally:
        worker.stop()
