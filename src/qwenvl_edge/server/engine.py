"""The server's side of the runtime: requests checked and turned into prompts (in the request's own
thread: tokenising and decoding images is cheap next to a generation), then run by the one worker on a
pooled session (vision pass for images not in the shared feature cache, prefill of what the session's
cache lacks, decode), the deltas handed to the job as they come."""

from __future__ import annotations

import dataclasses
import os

from PIL import Image

from qwenvl_edge import _core, limits
from qwenvl_edge.model import Model
from qwenvl_edge.prompts import raw_ids
from qwenvl_edge.records import PreparedPrompt, Timings
from qwenvl_edge.server import conversation, images, params
from qwenvl_edge.server.errors import ApiError
from qwenvl_edge.server.pool import SessionPool
from qwenvl_edge.server.shapes import Answer
from qwenvl_edge.server.worker import Job


@dataclasses.dataclass(frozen=True)
class Settings:
    sessions: int = 4  # decoder sessions (KV caches) kept for reuse
    allow_remote_images: bool = False
    max_request_bytes: int = limits.MAX_REQUEST_BYTES
    max_images: int = limits.MAX_REQUEST_IMAGES
    max_image_bytes: int = limits.MAX_IMAGE_BYTES


@dataclasses.dataclass(frozen=True)
class Run:
    """A checked request, ready for the worker."""

    ids: list[int]
    pictures: list[Image.Image]
    latest: tuple[int, Image.Image] | None
    params: params.Params


class Engine:
    def __init__(self, model: Model, settings: Settings, name: str | None = None):
        self.model = model
        self.settings = settings
        self.name = name or os.path.basename(os.path.normpath(model.bundle.directory))
        self.capacity = model.session.capacity
        self.chat_format = model.generation.chat_format
        self.pool = SessionPool(model.new_session, settings.sessions)
        self.limits = conversation.Limits(settings.max_images, settings.max_image_bytes,
                                          settings.allow_remote_images)

    def open(self) -> None:
        """Open the vision encoder (the decoder is open since load): then the server is ready."""
        self.model.vision  # noqa: B018 (opens it)

    # --- requests, checked in the handler's thread ---------------------------------------------------
    def chat_run(self, body: dict) -> Run:
        if self.chat_format != "chatml":
            raise ApiError(400, f"{self.name} is a base model (Qwen-VL): use /v1/completions with a base-model "
                                f"prompt", "messages")
        p = params.parse(body, self.capacity, {"messages", "max_completion_tokens"})
        messages = conversation.read_messages(body.get("messages"), self.limits)
        prompt = conversation.build(messages, self.model, self.model.generation.system, p.max_tokens, self.capacity)
        return self._checked(Run(prompt.ids, prompt.pictures, prompt.latest, p))

    def completion_run(self, body: dict) -> Run:
        """A base-model prompt; its ``<img>..</img>`` spans are filled, in order, by the attached ``images``
        (data: URLs): what a span says is never read as a path."""
        if self.chat_format == "chatml":
            raise ApiError(400, f"{self.name} is a chat model (Qwen-VL-Chat): use /v1/chat/completions", "prompt")
        p = params.parse(body, self.capacity, {"prompt", "images"})
        prompt, urls = body.get("prompt"), body.get("images") or []
        if not isinstance(prompt, str) or not prompt:
            raise ApiError(400, "prompt must be a non-empty string (one prompt per request)", "prompt")
        if not isinstance(urls, list) or len(urls) > self.settings.max_images:
            raise ApiError(400, f"images must be a list of at most {self.settings.max_images} image URLs", "images")
        pictures = [images.decode(u, f"image {i}", self.settings.max_image_bytes, self.settings.allow_remote_images)
                    for i, u in enumerate(urls, 1)]
        try:
            ids = raw_ids(self.model.tokenizer, prompt)
        except ValueError as e:
            raise ApiError(400, str(e), "prompt") from None
        spans = len(self.model.tokenizer.image_spans(ids))
        if spans != len(pictures):
            raise ApiError(400, f"the prompt has {spans} <img>..</img> span(s) but {len(pictures)} image(s) are "
                                f"attached: each span is filled by the next of `images`", "images")
        return self._checked(Run(ids, pictures, (len(pictures), pictures[-1]) if pictures else None, p))

    def _checked(self, run: Run) -> Run:
        n, room = len(run.ids), self.capacity
        if n >= room:
            raise ApiError(400, f"prompt too long: {n} tokens, the context holds {room} (including the reply)",
                           "messages", "context_length_exceeded")
        if run.params.max_tokens is not None and n + run.params.max_tokens > room:
            raise ApiError(400, f"max_tokens {run.params.max_tokens} goes past the context: the prompt takes {n} "
                                f"of its {room} positions, so at most {room - n} tokens can follow",
                           "max_tokens", "context_length_exceeded")
        return run

    # --- the worker's side ---------------------------------------------------------------------------
    def work(self, run: Run):
        """The job function that runs ``run`` and returns its Answer, emitting deltas on the way."""

        def go(job: Job) -> Answer:
            timings = Timings()
            features = self.model.encode_images(run.pictures, timings)
            spans = dict(zip(self.model.span_starts(run.ids, len(features)), features))
            max_new = run.params.max_tokens or min(self.model.generation.max_new_tokens, self.capacity - len(run.ids))
            session = self.pool.take(run.ids, spans)
            with session.lock:
                stream = self.model.run(session, PreparedPrompt(run.ids, spans, timings), max_new_tokens=max_new,
                                        **run.params.options)
                job.attach(stream)
                for delta in stream:
                    job.emit("delta", delta)
                return Answer(stream.reply, len(run.ids), run.latest)

        return go

    def describe(self) -> dict:
        m = self.model.bundle.manifest
        return {"id": self.name, "object": "model", "created": int(os.path.getmtime(self.model.bundle.directory)),
                "owned_by": "qwenvl-edge", "chat_format": self.chat_format, "context": self.capacity,
                "decoder": f"{m.decoder.config.num_layers}x{m.decoder.config.hidden_size}",
                "isa": self.model.session.decoder.isa, "threads": self.model.threads, "core": _core.__version__}
