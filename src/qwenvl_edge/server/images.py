"""Images of a request: ``data:`` base64 URLs, and http(s) URLs only when the server allows them.

A client never makes the server read a local file: ``file://`` URLs and paths are refused, and the
bytes are checked to be PNG, JPEG, WebP or GIF before Pillow decodes them (with image.py's
decompression-bomb guard on the pixels). A remote image is fetched with a timeout, a size cap and no
redirect to another host.
"""

from __future__ import annotations

import base64
import binascii
import time
import urllib.error
import urllib.parse
import urllib.request

from PIL import Image

from qwenvl_edge import image
from qwenvl_edge.server.errors import ApiError

REMOTE_TIMEOUT_S = 10
# The formats the API takes, by their first bytes (a GIF's first frame is used).
MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF87a": "GIF", b"GIF89a": "GIF"}


def _format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in MAGIC.items() if data.startswith(magic)), None)


def decode(url: object, what: str, max_bytes: int, allow_remote: bool) -> Image.Image:
    """The RGB picture of an ``image_url.url`` (``what`` names it in errors: "image 2")."""
    if not isinstance(url, str):
        raise ApiError(400, f"{what}: image_url.url must be a string", "messages")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        data = _data_url(url, what, max_bytes)
    elif scheme in ("http", "https"):
        if not allow_remote:
            raise ApiError(400, f"{what}: remote image URLs are off on this server (start it with "
                                f"--allow-remote-images), send the image as a data: URL instead", "messages")
        data = _fetch(url, what, max_bytes)
    else:
        raise ApiError(400, f"{what}: only data: URLs are accepted (the server never reads its own files: no "
                            f"file:// URLs, no paths), e.g. data:image/png;base64,...", "messages")
    kind = _format(data)
    if kind is None:
        raise ApiError(400, f"{what} is not a PNG, JPEG, WebP or GIF image", "messages")
    try:
        return image.to_rgb(data)
    except ValueError as e:  # undecodable, truncated, too many pixels: image.py's message
        raise ApiError(400, f"{what} ({kind}): {e}", "messages") from None


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _data_url(url: str, what: str, max_bytes: int) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.lower().endswith(";base64"):
        raise ApiError(400, f"{what}: a data: URL must be base64, like data:image/png;base64,...", "messages")
    if len(payload) // 4 * 3 > max_bytes:
        raise ApiError(400, f"{what} is larger than {_size(max_bytes)}", "messages")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{what}: the data: URL is not valid base64", "messages") from None


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            raise urllib.error.URLError(f"redirected to another host ({urllib.parse.urlsplit(newurl).netloc})")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str, what: str, max_bytes: int) -> bytes:
    """The body of ``url``: at most ``max_bytes``, all of it within REMOTE_TIMEOUT_S."""
    opener = urllib.request.build_opener(_SameHostRedirects)
    deadline = time.monotonic() + REMOTE_TIMEOUT_S
    chunks, size = [], 0
    try:
        with opener.open(url, timeout=REMOTE_TIMEOUT_S) as response:
            while chunk := response.read1(1 << 16):  # what arrived: a trickling server cannot stall us
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise ApiError(400, f"{what} at {url} is larger than {_size(max_bytes)}", "messages")
                if time.monotonic() > deadline:
                    raise ApiError(400, f"{what} at {url} took longer than {REMOTE_TIMEOUT_S} s", "messages")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ApiError(400, f"{what}: cannot fetch {url}: {getattr(e, 'reason', e)}", "messages") from None
    return b"".join(chunks)
