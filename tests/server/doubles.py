"""A test double of the model behind the server: the real tiny model for everything (tokenizer, images,
vision, sessions, prefill) except the generation, which follows a script: a fixed reply (a grounded one,
whose boxes the page must draw) streamed piece by piece, or an endless one that runs until cancelled."""

from __future__ import annotations

import threading
import time

from qwenvl_edge import boxes
from qwenvl_edge.reply import Reply, ReplyStream

GROUNDED = "There is <ref>a red block</ref><box>(100,200),(600,900)</box> on the left."


class ScriptedModel:
    def __init__(self, model, pieces: list[str] | None = None, delay_s: float = 0.0):
        self._model = model
        self.pieces = pieces  # None: an endless reply
        self.delay_s = delay_s
        self.cancelled = threading.Event()  # set when a generation saw its cancellation
        self.started = threading.Event()

    def __getattr__(self, name):
        return getattr(self._model, name)

    def run(self, session, prepared, *, max_new_tokens=None, **options) -> ReplyStream:
        def script(owner: ReplyStream):
            session.prefill(prepared.ids, prepared.spans, prepared.timings)
            self.started.set()
            said, finish = [], "stop"
            try:
                n = 0
                while self.pieces is None or n < len(self.pieces):
                    if owner.cancelled.is_set():
                        finish = "cancelled"
                        self.cancelled.set()
                        return
                    time.sleep(self.delay_s)
                    piece = self.pieces[n] if self.pieces is not None else "la "
                    said.append(piece)
                    n += 1
                    yield piece
            finally:
                text = "".join(said)
                owner.done = Reply(text, boxes.parse(text), [], finish, prepared.timings)

        return ReplyStream(script)


def pieces(text: str, size: int = 6) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]
