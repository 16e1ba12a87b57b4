"""Response bodies in OpenAI's shapes (chat.completion, chat.completion.chunk, text_completion, usage),
plus this server's documented extension on the final body or chunk: ``boxes`` (the reply's grounding
boxes, 0..1000 and in the pixels of the picture they refer to) and ``timings`` (docs/server.md)."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

from PIL import Image

from qwenvl_edge.boxes import Box
from qwenvl_edge.reply import Reply


@dataclasses.dataclass(frozen=True)
class Answer:
    """A finished generation as the responses need it."""

    reply: Reply
    prompt_tokens: int
    latest: tuple[int, Image.Image] | None  # the picture (number, image) the boxes refer to


class Ids:
    """The id, creation time and model name shared by a response's body or chunks."""

    def __init__(self, prefix: str, model: str):
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def usage(answer: Answer) -> dict:
    generated = len(answer.reply.token_ids)
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": generated,
            "total_tokens": answer.prompt_tokens + generated,
            "prompt_tokens_details": {"cached_tokens": answer.reply.timings.reused_tokens}}


def timings(answer: Answer) -> dict:
    t = answer.reply.timings
    return {"vision_s": t.vision_s, "images": t.images, "cached_images": t.images_cached,
            "prefill_s": t.prefill_s, "prefill_tokens": t.prefill_tokens, "prefill_tok_s": t.prefill_tok_s,
            "cached_tokens": t.reused_tokens, "decode_s": t.decode_s, "decode_tokens": t.decode_tokens,
            "decode_tok_s": t.decode_tok_s}


def boxes(answer: Answer) -> list[dict]:
    """Each box or quad of the reply: its ref, 0..1000 coordinates, and pixels of the latest picture."""
    number, picture = answer.latest if answer.latest else (None, None)
    out = []
    for shape in answer.reply.boxes:
        item: dict[str, Any]
        if isinstance(shape, Box):
            item = {"ref": shape.ref, "box": [shape.x1, shape.y1, shape.x2, shape.y2]}
        else:
            item = {"ref": shape.ref, "quad": [list(p) for p in shape.points]}
        pixels = shape.pixels(*picture.size) if picture is not None else None
        item.update(image=number, pixels=None if pixels is None else _flat(pixels),
                    image_size=list(picture.size) if picture is not None else None)
        out.append(item)
    return out


def _flat(pixels) -> list:
    return [list(p) if isinstance(p, tuple) else p for p in pixels]


def extension(answer: Answer) -> dict:
    return {"boxes": boxes(answer), "timings": timings(answer)}


def chat_completion(ids: Ids, answer: Answer) -> dict:
    message = {"role": "assistant", "content": answer.reply.text}
    return {**ids.head("chat.completion"),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": answer.reply.finish_reason}],
            "usage": usage(answer), **extension(answer)}


def chat_chunk(ids: Ids, delta: dict, finish_reason: str | None = None, **extra) -> dict:
    return {**ids.head("chat.completion.chunk"),
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], **extra}


def text_completion(ids: Ids, answer: Answer) -> dict:
    return {**ids.head("text_completion"),
            "choices": [{"index": 0, "text": answer.reply.text, "logprobs": None,
                         "finish_reason": answer.reply.finish_reason}],
            "usage": usage(answer), **extension(answer)}


def text_chunk(ids: Ids, text: str, finish_reason: str | None = None, **extra) -> dict:
    return {**ids.head("text_completion"),
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}], **extra}


def usage_chunk(ids: Ids, kind: str, answer: Answer) -> dict:
    """``stream_options.include_usage``: the last chunk, with no choices."""
    return {**ids.head(kind), "choices": [], "usage": usage(answer)}


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"
