"""Who may talk to the server (an ASGI middleware in front of every route).

- The API key: when the server has one, every route but /health (and the static page, which holds no
  data and asks for the key itself) needs ``Authorization: Bearer KEY``.
- The Host header: a server bound to loopback answers only requests addressed to a loopback name, so a
  web page cannot reach it through a DNS name rebound to 127.0.0.1.
- POST bodies must be JSON (``Content-Type: application/json``): a cross-site page can then reach the
  API only through a CORS preflight, which is answered only for ``--cors ORIGIN``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json

from qwenvl_edge.server.errors import ApiError

OPEN_PATHS = ("/health", "/", "/index.html")
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() in LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str) -> str:
    if host_header.startswith("["):  # [::1]:8080
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    def __init__(self, app, api_key: str | None, loopback_only: bool):
        self.app, self.api_key, self.loopback_only = app, api_key, loopback_only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        error = self._check(scope, headers)
        if error is not None:
            body = json.dumps(error.body()).encode()
            extra = [(b"www-authenticate", b"Bearer")] if error.status == 401 else []
            await send({"type": "http.response.start", "status": error.status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()), *extra]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _check(self, scope, headers: dict[str, str]) -> ApiError | None:
        if self.loopback_only and not is_loopback(_hostname(headers.get("host", ""))):
            return ApiError(403, "this server answers only requests addressed to localhost / 127.0.0.1")
        if scope["method"] == "OPTIONS":  # a CORS preflight: the CORS middleware outside answers it
            return None
        if self.api_key is not None and scope["path"] not in OPEN_PATHS:
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not given:
                return ApiError(401, "missing API key: send the header Authorization: Bearer KEY")
            if not hmac.compare_digest(given.encode(), self.api_key.encode()):
                return ApiError(401, "wrong API key", code="invalid_api_key")
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if scope["method"] == "POST" and media_type != "application/json":
            return ApiError(415, "the request body must be JSON, sent with Content-Type: application/json")
        return None
