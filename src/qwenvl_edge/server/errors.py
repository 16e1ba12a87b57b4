"""Errors a client sees, in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Only an ApiError's message reaches a client; anything else that goes wrong is logged on the server and
answered with a generic 500, so no stack trace or local path ever leaves the process.
"""

from __future__ import annotations

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
         405: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
         429: "rate_limit_error", 500: "server_error", 503: "server_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}


INTERNAL = ApiError(500, "internal error: the server could not answer this request (see the server's log)")
