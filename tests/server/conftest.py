"""Fixtures of the server tests: the tiny bundle's models and a server over them."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
import qwenvl_edge  # noqa: E402
from serving import Served  # noqa: E402


@pytest.fixture(scope="session")
def served_model(tiny_bundle):
    return qwenvl_edge.load(tiny_bundle, threads=2)


@pytest.fixture(scope="session")
def reference_model(tiny_bundle):
    """A second model on the same bundle for Chat.ask: its own feature cache, so the server's is its own."""
    return qwenvl_edge.load(tiny_bundle, threads=2)


@pytest.fixture(scope="module")
def server(served_model):
    with Served(served_model) as s:
        yield s
