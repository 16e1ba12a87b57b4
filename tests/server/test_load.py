"""A bounded load test of the real command on loopback: `qwenvl-edge serve` in its own process, 16
concurrent clients, 64 requests (text and pictures, streaming or not). Every request is answered or
refused with 429, the server survives, and its memory comes back near where it started."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from serving import data_url

CLIENTS, REQUESTS = 16, 64


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


@pytest.fixture()
def serve(tiny_bundle):
    process = subprocess.Popen([sys.executable, "-m", "qwenvl_edge.cli", "serve", str(tiny_bundle), "--port", "0",
                                "--threads", "2", "--queue", "6", "--sessions", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               # glibc gives threads their own malloc arenas (up to 8 per core), as many as
                               # overlap, which the machine's load decides: with two, a round's RSS shows
                               # what the server keeps, not how many arenas its threads happened to touch
                               env={**os.environ, "MALLOC_ARENA_MAX": "2"})
    try:
        banner = process.stdout.readline() + process.stdout.readline()
        assert "page http://127.0.0.1:" in banner, banner + process.stderr.read()
        url = banner.split("page ")[1].split()[0].rstrip("/")
        deadline = time.monotonic() + 120
        while httpx.get(url + "/health").status_code != 200:
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.1)
        yield url, process
    finally:
        process.terminate()
        process.communicate(timeout=30)  # and closes its pipes


def request(url: str, i: int, picture: str) -> int:
    content = [{"type": "text", "text": f"Question {i}?"}]
    if i % 3 == 0:
        content.insert(0, {"type": "image_url", "image_url": {"url": picture}})
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 8, "stream": i % 2 == 0}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=300) as response:
        text = response.read().decode()
    if response.status_code == 200 and body["stream"]:
        assert text.rstrip().endswith("data: [DONE]"), text[-200:]
    elif response.status_code == 200:
        assert json.loads(text)["choices"][0]["message"]["content"] is not None
    else:
        assert response.status_code == 429 and "retry later" in json.loads(text)["error"]["message"], text
    return response.status_code


def load(url: str, picture: str) -> tuple[int, int, float]:
    """64 requests from 16 clients at once: (answered, refused, seconds)."""
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as clients:
        statuses = list(clients.map(lambda i: request(url, i, picture), range(REQUESTS)))
    return statuses.count(200), statuses.count(429), time.monotonic() - start


def test_sixteen_clients_sixty_four_requests_twice(serve, pictures):
    url, process = serve
    picture = data_url(pictures[0])
    for i in range(3):  # the sessions and the feature cache as they are in use
        assert request(url, i, picture) == 200
    rss = [rss_mib(process.pid)]
    for n in (1, 2):
        answered, refused, seconds = load(url, picture)
        rss.append(rss_mib(process.pid))
        assert process.poll() is None and httpx.get(url + "/health").json()["status"] == "ok"
        print(f"\nload round {n}: {CLIENTS} clients, {REQUESTS} requests in {seconds:.1f} s: {answered} answered, "
              f"{refused} refused (429); server RSS {rss[-2]:.0f} -> {rss[-1]:.0f} MiB")
        assert answered + refused == REQUESTS and answered >= 7  # at least the running one and the 6 queued
    assert rss[1] < rss[0] * 1.25 + 32, f"RSS grew from {rss[0]:.0f} to {rss[1]:.0f} MiB"
    assert rss[2] < rss[1] + 16, f"RSS grew again in the second round: {rss[1]:.0f} to {rss[2]:.0f} MiB (a leak?)"
