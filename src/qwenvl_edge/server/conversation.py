"""An OpenAI ``messages`` list as a Qwen-VL-Chat prompt: the same ids ``Chat`` builds for the same
conversation (``Picture N:`` numbering over the conversation, the ChatML window), with one difference
that makes a server safe: a client's text is encoded without the image tags, so ``<img>/a/path</img>``
typed in a message stays text and never names a file. Only the server's own ``Picture N: <img>..</img>``
spans are image spans, each filled with an attached image's features.
"""

from __future__ import annotations

import dataclasses

from PIL import Image

from qwenvl_edge import image
from qwenvl_edge.chat import window
from qwenvl_edge.prompts import picture
from qwenvl_edge.server import images
from qwenvl_edge.server.errors import ApiError
from qwenvl_edge.tokenizer import BOX_TAGS, IMG_END, IMG_START

ROLES = ("system", "user", "assistant")
PART_SHAPES = ('a part is {"type": "text", "text": ...} or, in a user message, '
               '{"type": "image_url", "image_url": {"url": ...}}')


@dataclasses.dataclass(frozen=True)
class Limits:
    max_images: int
    max_image_bytes: int
    allow_remote: bool


@dataclasses.dataclass
class Message:
    role: str
    pieces: list[str | Image.Image]  # text and pictures in the order written


@dataclasses.dataclass
class Prompt:
    """What a chat request runs: its ids, the pictures of its image spans in order, the picture that the
    reply's boxes refer to (the latest one, as in the reference) and its number."""

    ids: list[int]
    pictures: list[Image.Image]
    latest: tuple[int, Image.Image] | None


def read_messages(messages: object, limits: Limits) -> list[Message]:
    """Check the ``messages`` list's shape and decode its images (each a 4xx naming what is wrong)."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", "messages")
    out, n_images = [], 0
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(400, f"{where}: a message is an object with a role of {', '.join(ROLES)}", "messages")
        unknown = set(m) - {"role", "content", "name"}
        if unknown:
            raise ApiError(400, f"{where}: unsupported field(s) {', '.join(sorted(unknown))}", "messages")
        content = m.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise ApiError(400, f"{where}.content must be a string or a list of parts", "messages")
        pieces: list[str | Image.Image] = []
        for j, part in enumerate(parts):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                pieces.append(part["text"])
            elif kind == "image_url" and m["role"] == "user" and isinstance(part.get("image_url"), dict):
                n_images += 1
                if n_images > limits.max_images:
                    raise ApiError(400, f"too many images: at most {limits.max_images} per request", "messages")
                pieces.append(images.decode(part["image_url"].get("url"), f"image {n_images} ({where}.content[{j}])",
                                            limits.max_image_bytes, limits.allow_remote))
            else:
                raise ApiError(400, f"{where}.content[{j}]: {PART_SHAPES}", "messages")
        out.append(Message(m["role"], pieces))
    return out


def build(messages: list[Message], model, default_system: str, max_tokens: int | None, capacity: int) -> Prompt:
    """The ChatML prompt of the conversation: an optional system message first, then user and assistant
    messages taking turns, ending with the user's question."""
    system = default_system
    if messages[0].role == "system":
        system = _text(messages[0], 0)
        messages = messages[1:]
    roles = [m.role for m in messages]
    taking_turns = all(r == ("user" if i % 2 == 0 else "assistant") for i, r in enumerate(roles))
    if not roles or roles[-1] != "user" or not taking_turns:
        raise ApiError(400, "messages must be an optional system message, then user and assistant messages "
                            "taking turns, ending with a user message", "messages")
    chatml, tok = model.chatml, model.tokenizer
    numbered: list[tuple[list[int], list[Image.Image]]] = []
    for m in messages[::2]:
        numbered.append(_encode(m, sum(len(shown) for _, shown in numbered), tok))
    replies = [tok.encode(_text(m, i), allowed_special=BOX_TAGS) for i, m in enumerate(messages[1::2], 1)]
    query_ids = chatml.query(numbered[-1][0])
    turns = [chatml.exchange(q, r) for (q, _), r in zip(numbered[:-1], replies)]
    system_ids = chatml.message("system", tok.encode(system, allowed_special=BOX_TAGS))
    ids, kept = chatml.fit(system_ids, reversed(turns), query_ids,
                           window(model.generation, capacity, max_tokens, len(query_ids)))
    pictures = [p for _, shown in numbered[len(numbered) - 1 - kept:] for p in shown]
    every = [p for _, shown in numbered for p in shown]
    return Prompt(ids, pictures, (len(every), every[-1]) if every else None)


def _text(message: Message, index: int) -> str:
    if not all(isinstance(p, str) for p in message.pieces):
        raise ApiError(400, f"messages[{index}]: a {message.role} message holds text only", "messages")
    return "".join(message.pieces)  # type: ignore[arg-type]


def _encode(message: Message, before: int, tok) -> tuple[list[int], list[Image.Image]]:
    """A user message's ids: each picture as ``Picture N: <img>image-N.png</img>\\n`` (the reference name
    Chat gives an image that has no path), the text encoded with the box tags only. Text next to a
    picture is encoded as one run with the picture's own text, as the reference tokenises it."""
    ids: list[int] = []
    shown: list[Image.Image] = []
    run = ""
    for piece in message.pieces:
        if isinstance(piece, str):
            run += piece
            continue
        shown.append(piece)
        n = before + len(shown)
        head, _, rest = picture(n, image.reference_name(piece, n)).partition(IMG_START)
        ref, _, tail = rest.partition(IMG_END)
        ids += tok.encode(run + head, allowed_special=BOX_TAGS)
        ids += tok.encode(IMG_START + ref + IMG_END, allowed_special={IMG_START, IMG_END})
        run = tail
    return ids + tok.encode(run, allowed_special=BOX_TAGS), shown
