"""Bad input over HTTP: each a 4xx in OpenAI's error shape with a message naming the problem, and the
server answers the next request normally."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import httpx
import pytest

import qwenvl_edge
from qwenvl_edge.server.engine import Settings
from serving import Served, data_url, png_bytes

KEY = "s3cret-key"
OK = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}


@pytest.fixture(scope="module")
def small(tiny_bundle):
    """A server with small limits: 256 positions, 2 images, 256 KiB bodies, and an API key."""
    model = qwenvl_edge.load(tiny_bundle, threads=2, context=1024)
    with Served(model, Settings(max_request_bytes=256 << 10, max_images=2, max_image_bytes=128 << 10),
                api_key=KEY) as s:
        yield s


def post(server, body, key=KEY, path="/v1/chat/completions", raw: bytes | None = None, **headers):
    headers = {"Content-Type": "application/json", **headers}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(server.url + path, content=raw if raw is not None else json.dumps(body), headers=headers,
                      timeout=60)


def image_body(*urls):
    return dict(OK, messages=[{"role": "user", "content": [*({"type": "image_url", "image_url": {"url": u}}
                                                                for u in urls), {"type": "text", "text": "What?"}]}])


def bomb() -> bytes:
    """A tiny PNG whose header says 20000 x 20000 pixels."""
    data = bytearray(png_bytes(1, 1))
    struct.pack_into(">II", data, 16, 20000, 20000)  # IHDR: width, height after the signature and chunk head
    struct.pack_into(">I", data, 29, zlib.crc32(data[12:29]))
    return bytes(data)


def png_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def refused(server, response, status, *words):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    for word in words:
        assert word in error["message"], error["message"]
    assert "Traceback" not in response.text
    after = post(server, OK)  # the next request is served normally
    assert after.status_code == 200 and after.json()["choices"][0]["finish_reason"] in ("stop", "length")


CASES = {
    "malformed JSON": (dict(raw=b'{"messages": [}'), 400, "not valid JSON"),
    "not an object": (dict(raw=b"[1, 2]"), 400, "JSON object"),
    "messages not a list": (dict(body=dict(OK, messages="hi")), 400, "messages must be a non-empty list"),
    "a role that does not exist": (dict(body=dict(OK, messages=[{"role": "robot", "content": "x"}])), 400, "role"),
    "content of a wrong type": (dict(body=dict(OK, messages=[{"role": "user", "content": 42}])), 400, "content"),
    "temperature a string": (dict(body=dict(OK, temperature="hot")), 400, "temperature"),
    "max_tokens a float": (dict(body=dict(OK, max_tokens=2.5)), 400, "max_tokens"),
    "stream not a bool": (dict(body=dict(OK, stream="yes")), 400, "stream"),
    "n > 1": (dict(body=dict(OK, n=2)), 400, "unsupported parameter: n"),
    "tools": (dict(body=dict(OK, tools=[{"type": "function"}])), 400, "unsupported parameter: tools"),
    "logprobs": (dict(body=dict(OK, logprobs=True)), 400, "unsupported parameter: logprobs"),
    "bad base64": (dict(body=image_body("data:image/png;base64,@@not base64@@")), 400, "not valid base64"),
    "a non-image": (dict(body=image_body(png_url(b"hello, world"))), 400, "not a PNG, JPEG, WebP or GIF"),
    "a decompression bomb": (dict(body=image_body(png_url(bomb()))), 400, "decompression bomb"),
    "a truncated PNG": (dict(body=image_body(png_url(png_bytes(64, 64)[:60]))), 400, "cannot decode"),
    "an image over the byte limit": (dict(body=image_body(png_url(bytes(150 << 10)))), 400, "larger than"),
    "a huge body": (dict(raw=b'{"messages": "' + b"x" * (300 << 10) + b'"}'), 413, "request body"),
    "too many images": (dict(body="three pictures"), 400, "too many images"),
    "a prompt past the context": (dict(body=dict(OK, messages=[{"role": "user", "content": "word " * 1100}])),
                                  400, "prompt too long"),
    "max_tokens past the context": (dict(body=dict(OK, max_tokens=1024)), 400, "goes past the context"),
    "a file:// URL": (dict(body=image_body("file:///etc/passwd")), 400, "never reads its own files"),
    "a path": (dict(body=image_body("/etc/passwd")), 400, "only data: URLs"),
    "a remote URL without the flag": (dict(body=image_body("http://127.0.0.1:9/cat.png")), 400,
                                      "--allow-remote-images"),
    "an assistant message last": (dict(body=dict(OK, messages=[{"role": "assistant", "content": "x"}])), 400,
                                  "taking turns"),
    "text not JSON": (dict(body=OK, **{"Content-Type": "text/plain"}), 415, "Content-Type: application/json"),
    "completions on a chat bundle": (dict(body={"prompt": "x"}, path="/v1/completions"), 400, "/v1/chat/completions"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_clear_4xx_and_the_server_goes_on(small, pictures, case):
    request, status, words = CASES[case][0], CASES[case][1], CASES[case][2:]
    if request.get("body") == "three pictures":
        request = dict(body=image_body(*(data_url(p) for p in pictures)))
    refused(small, post(small, **{"body": None, **request}), status, *words)


@pytest.mark.parametrize("key, words", [(None, "missing API key"), ("wrong", "wrong API key")])
def test_a_missing_or_wrong_api_key_is_401(small, key, words):
    refused(small, post(small, OK, key=key), 401, words)
    assert httpx.get(small.url + "/v1/models").status_code == 401
    assert httpx.get(small.url + "/health").status_code == 200  # health needs no key


def test_a_request_for_another_host_name_is_refused(small):
    """DNS rebinding: a page on evil.example whose name now points to 127.0.0.1."""
    refused(small, post(small, OK, Host="evil.example"), 403, "localhost")


def test_an_unknown_route_is_404_in_openai_shape(small):
    refused(small, httpx.get(small.url + "/v1/nothing", headers={"Authorization": f"Bearer {KEY}"}), 404, "/v1/nothing")


def test_text_that_is_not_valid_unicode_is_400(small):
    raw = b'{"messages": [{"role": "user", "content": "a \\ud800 b"}], "max_tokens": 2}'
    refused(small, post(small, None, raw=raw), 400, "not valid Unicode")
