"""A multi-turn Qwen-VL-Chat conversation with its own decoder and KV cache.

Each turn builds the whole ChatML context like the reference (``make_context``: system prompt,
history newest-first within the window, ``Picture N: <img>..</img>`` numbering over the conversation)
and hands it to the session, which prefills only what its cache does not already hold. Images are
encoded once per content (the model's feature cache). A turn that fails (bad image, prompt too
long) or is cancelled leaves the conversation as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Callable, Iterator, Protocol, Sequence

from qwenvl_edge import image
from qwenvl_edge.manifest import Generation
from qwenvl_edge.prompts import ChatML, picture
from qwenvl_edge.records import ImageFeatures, PreparedPrompt, Timings, Turn
from qwenvl_edge.reply import Reply, ReplyStream
from qwenvl_edge.session import Session


class ChatModel(Protocol):
    """What a Chat needs of its model (a qwenvl_edge.Model, whose chat() makes it)."""

    generation: Generation
    chatml: ChatML

    def new_session(self) -> Session: ...

    def encode_images(self, sources: Sequence[image.ImageLike], timings: Timings) -> list[ImageFeatures]: ...

    def spans(self, ids: Sequence[int], images: Sequence[ImageFeatures]) -> dict[int, ImageFeatures]: ...

    def run(self, session: Session, prepared: PreparedPrompt | Callable[[], PreparedPrompt], **options
            ) -> ReplyStream: ...


@dataclasses.dataclass(frozen=True)
class _Exchange:
    turn: Turn
    images: tuple[ImageFeatures, ...]  # in the order of their spans in turn.query


class Chat:
    def __init__(self, model: ChatModel, system: str):
        if model.generation.chat_format != "chatml":
            raise ValueError("this bundle is a base model (chat_format 'raw'): use model.generate() with a "
                             "base-model prompt, or export Qwen-VL-Chat for chat")
        self.model = model
        self.system = system
        self.history: list[_Exchange] = []
        self._session = model.new_session()
        self._images_seen = 0
        self._answering = threading.Lock()  # held by the one generation that may run on this chat

    def __repr__(self) -> str:
        return f"Chat(turns={len(self.history)}, images={self._images_seen}, system={self.system!r})"

    @property
    def turns(self) -> list[Turn]:
        return [e.turn for e in self.history]

    def reset(self) -> None:
        """Forget the conversation (the cached system prompt stays reusable)."""
        self.history.clear()
        self._images_seen = 0

    def _window(self, options: dict, query: str) -> int:
        return window(self.model.generation, self._session.capacity, options.get("max_new_tokens"),
                      len(self.model.chatml.query(query)))

    def _prepare(self, query: str, images: Sequence[ImageFeatures], timings: Timings,
                 window: int | None = None) -> PreparedPrompt:
        """The run-ready context for ``query`` (which carries ``images``) after the current history
        (``window``: the ChatML window, by default for the model's default reply length)."""
        ids, kept = self.model.chatml.context(query, self.turns, self.system, window or self._window({}, query))
        in_order = [img for e in self.history[len(self.history) - kept:] for img in e.images] + list(images)
        return PreparedPrompt(ids, self.model.spans(ids, in_order), timings)

    def _run(self, query_of: Callable[[int], str], images: tuple[ImageFeatures, ...], timings: Timings, options,
             exclusive: bool = True) -> ReplyStream:
        """Generate the reply to ``query_of(n)`` (n: the number its first picture gets). The context is
        built when the generation starts, from the history as it is then, so a stream made while another
        one runs answers after that one's turn; two generations never run at once (the second is refused)."""
        asked = {}

        def prepared() -> PreparedPrompt:
            asked["query"] = query_of(self._images_seen + 1)
            return self._prepare(asked["query"], images, timings, self._window(options, asked["query"]))

        def done(reply: Reply) -> None:
            self.history.append(_Exchange(Turn(asked["query"], reply.text), images))
            self._images_seen += len(images)

        now = query_of(self._images_seen + 1)
        self._prepare(now, images, timings, self._window(options, now))  # refuse a too long prompt now
        return self.model.run(self._session, prepared, on_done=done,
                              exclusive=self._answering if exclusive else None, **options)

    def stream(self, text: str, images: image.ImageLike | Sequence[image.ImageLike] = (), **options) -> ReplyStream:
        """Ask and stream the reply's text; the turn joins the history when the stream completes. One
        reply at a time: a stream started while another of this chat runs is refused (RuntimeError).
        ``images``: one image or a list (paths, URLs, bytes, PIL images, arrays)."""
        if not isinstance(text, str):
            raise TypeError(f"the question must be str, not {type(text).__name__}")
        sources = image.as_list(images)

        def query_of(first: int) -> str:
            return "".join(picture(first + i, image.reference_name(s, first + i)) for i, s in enumerate(sources)) + text

        query = query_of(self._images_seen + 1)
        ids, _ = self.model.chatml.context(query, self.turns, self.system, self._window(options, query))
        if len(ids) >= self._session.capacity:  # before any vision work
            raise ValueError(f"prompt too long: {len(ids)} tokens, the context holds {self._session.capacity} "
                             f"(including the reply)")
        timings = Timings()
        encoded = tuple(self.model.encode_images(sources, timings))
        return self._run(query_of, encoded, timings, options)

    def ask(self, text: str, images: image.ImageLike | Sequence[image.ImageLike] = (), **options) -> Reply:
        """Ask and wait for the whole reply. Options: max_new_tokens, temperature (0 = greedy), top_p,
        top_k, repetition_penalty, seed, stop (strings that end the reply)."""
        return self.stream(text, images, **options).wait()

    def regenerate(self, **options) -> Reply:
        """Answer the last question again (the cache rewinds to it); on failure or cancellation the
        previous reply stays."""
        with exclusively(self._answering):
            if not self.history:
                raise ValueError("nothing to regenerate: the conversation is empty")
            last = self.history.pop()
            self._images_seen -= len(last.images)
            reply = None
            try:
                reply = self._run(lambda first: last.turn.query, last.images, Timings(), options,
                                  exclusive=False).wait()
                return reply
            finally:
                if reply is None or reply.finish_reason == "cancelled":
                    self.history.append(last)
                    self._images_seen += len(last.images)


def window(generation: Generation, capacity: int, max_new_tokens: int | None, query_tokens: int) -> int:
    """The ChatML window (system prompt and kept turns): the model's max_window_size, but never more than
    the context leaves after the query and the reply's tokens, so a conversation with a small context
    drops old turns instead of failing every turn."""
    room = capacity - (max_new_tokens or generation.max_new_tokens) - query_tokens
    return min(generation.max_window_size, room)


@contextlib.contextmanager
def exclusively(lock: threading.Lock | None) -> Iterator[None]:
    """Hold ``lock`` (when given) for the block; refused at once when a generation of the chat holds it."""
    if lock is None:
        yield
        return
    if not lock.acquire(blocking=False):
        raise RuntimeError("this chat is already answering: finish or cancel that reply before asking again "
                           "(or give each thread its own chat)")
    try:
        yield
    finally:
        lock.release()
