"""`qwenvl-edge serve` on the command line: safe by default (the load test runs it for real)."""

from __future__ import annotations

import os

from qwenvl_edge.server.command import API_KEY_VARIABLE
from command_line import qwenvl_edge


def test_a_non_loopback_host_needs_an_api_key(tiny_bundle):
    result = qwenvl_edge("serve", str(tiny_bundle), "--host", "0.0.0.0", "--port", "0",
                         env={k: v for k, v in os.environ.items() if k != API_KEY_VARIABLE})
    assert result.returncode != 0 and "--api-key" in result.stderr and "Traceback" not in result.stderr


def test_serve_is_listed_with_its_flags():
    result = qwenvl_edge("serve", "--help")
    assert result.returncode == 0
    for flag in ("--host", "--port", "--api-key", "--threads", "--ctx", "--sessions", "--queue",
                 "--allow-remote-images", "--cors"):
        assert flag in result.stdout
