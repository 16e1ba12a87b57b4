"""The generation parameters of a request body, checked and turned into Model.run's options.

Every key of the body must be one this server knows: a parameter it does not support (tools,
logprobs, n > 1, penalties) is refused by name rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
import math

from qwenvl_edge.server.errors import ApiError

# Keys accepted at their neutral value only (what the OpenAI clients may send by default).
NEUTRAL = {"n": 1, "logprobs": False, "presence_penalty": 0, "frequency_penalty": 0}
COMMON = {"model", "max_tokens", "temperature", "top_p", "seed", "stop", "stream", "stream_options", "user"}
MAX_STOP_STRINGS = 4  # as OpenAI


@dataclasses.dataclass(frozen=True)
class Params:
    options: dict  # Model.run's keyword options
    max_tokens: int | None  # as asked (None: the model's default, within the context)
    stream: bool
    include_usage: bool


def check_keys(body: dict, allowed: set[str]) -> None:
    for key, value in body.items():
        if key in NEUTRAL:
            if value is not None and value != NEUTRAL[key]:
                raise ApiError(400, f"unsupported parameter: {key}={value!r} (this server takes {key}="
                                    f"{NEUTRAL[key]!r} only)", key)
        elif key not in allowed:
            raise ApiError(400, f"unsupported parameter: {key}", key)


def _number(body: dict, key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ApiError(400, f"{key} must be a number in {low}..{high}, got {value!r}", key)
    return float(value)


def _whole(body: dict, key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"{key} must be a whole number in {low}..{high}, got {value!r}", key)
    return value


def parse(body: dict, capacity: int, extra_keys: set[str]) -> Params:
    """The parameters of ``body``; ``extra_keys``: the endpoint's own keys (messages, prompt...)."""
    check_keys(body, COMMON | extra_keys)
    max_tokens = _whole(body, "max_tokens", 1, capacity)
    completion = _whole(body, "max_completion_tokens", 1, capacity)
    if max_tokens is not None and completion is not None and max_tokens != completion:
        raise ApiError(400, "max_tokens and max_completion_tokens differ: give one of them", "max_tokens")
    max_tokens = max_tokens if max_tokens is not None else completion
    temperature = _number(body, "temperature", 0, 2)
    if temperature is not None and 0 < temperature < 1e-4:
        temperature = 0.0  # as greedy as it gets; the sampler refuses tinier values
    options = {"temperature": temperature, "top_p": _number(body, "top_p", 1e-9, 1),
               "seed": _whole(body, "seed", 0, 2**63 - 1), "stop": _stop(body.get("stop"))}
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"stream must be true or false, got {stream!r}", "stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict) or set(stream_options) - {"include_usage"} \
            or not isinstance(stream_options.get("include_usage", False), bool):
        raise ApiError(400, "stream_options must be {\"include_usage\": true|false}", "stream_options")
    if stream_options and not stream:
        raise ApiError(400, "stream_options needs stream: true", "stream_options")
    for key in ("model", "user"):
        if key in body and not isinstance(body[key], str):
            raise ApiError(400, f"{key} must be a string", key)
    return Params({k: v for k, v in options.items() if v is not None}, max_tokens, stream,
                  bool(stream_options.get("include_usage", False)))


def _stop(stop: object) -> list[str] | None:
    strings = [stop] if isinstance(stop, str) else stop
    if strings is None:
        return None
    if not isinstance(strings, list) or len(strings) > MAX_STOP_STRINGS \
            or not all(isinstance(s, str) and s for s in strings):
        raise ApiError(400, f"stop must be a non-empty string or a list of at most {MAX_STOP_STRINGS}", "stop")
    return strings or None
