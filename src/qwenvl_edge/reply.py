"""From generated ids to a reply: stop rules, text deltas for streaming, the final Reply.

Stop rules (docs/model.md 7.2): a stop id (``<|endoftext|>``, and ``<|im_end|>``/``<|im_start|>`` for ChatML) or
a multi-token stop word (``Human:`` for raw prompts) ends the reply and is not part of its text. While
the tail of the output could still become a stop word, its text is held back, so a stream never shows
text that the final reply does not contain. The text is decoded without special tokens but with the
``<ref>``/``<box>``/``<quad>`` tags, and stripped; joined deltas equal it exactly.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Callable, Generator, Iterator, Sequence

from qwenvl_edge import boxes
from qwenvl_edge.records import Timings
from qwenvl_edge.text_stream import TextStream
from qwenvl_edge.tokenizer import Tokenizer


@dataclasses.dataclass
class Reply:
    text: str
    boxes: list[boxes.Box | boxes.Quad]
    token_ids: list[int]  # every generated id, the stop id or stop word included
    finish_reason: str  # "stop", "length" or "cancelled"
    timings: Timings

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return (f"Reply({text!r}, boxes={len(self.boxes)}, tokens={len(self.token_ids)}, "
                f"finish_reason={self.finish_reason!r}, decode={self.timings.decode_tok_s:.1f} tok/s)")

    def as_dict(self) -> dict:
        return {"text": self.text, "boxes": [dataclasses.asdict(b) for b in self.boxes],
                "token_ids": self.token_ids, "finish_reason": self.finish_reason, "timings": self.timings.as_dict()}


class ReplyStream:
    """Iterate for text deltas (never a split character); ``reply`` is there when the iteration ends.
    ``cancel()``, from any thread, or leaving the loop early stops the generation."""

    def __init__(self, run: Callable[["ReplyStream"], Iterator[str]]):
        self.cancelled = threading.Event()
        self.done: Reply | None = None  # set by deltas() when the generation ends, however it ends
        self._deltas = run(self)

    @property
    def reply(self) -> Reply:
        """The whole reply, once the iteration has ended."""
        if self.done is None:
            raise RuntimeError("the reply is not complete: iterate the stream to its end (or call wait())")
        return self.done

    def __iter__(self) -> Iterator[str]:
        return self._deltas

    def cancel(self) -> None:
        self.cancelled.set()

    def wait(self) -> Reply:
        """Run to the end (discarding deltas) and return the reply."""
        for _ in self._deltas:
            pass
        return self.reply

    def __repr__(self) -> str:
        return f"ReplyStream({'done: ' + repr(self.done) if self.done else 'running'})"


class _Stripped:
    """Deltas of ``text.strip()``: leading whitespace dropped, trailing whitespace held back until more
    text follows."""

    def __init__(self, tokenizer: Tokenizer):
        self._stream, self._started, self._held = TextStream(tokenizer), False, ""

    def _emit(self, piece: str) -> str:
        if not self._started:
            piece = piece.lstrip()
            self._started = bool(piece)
        body = piece.rstrip()
        if not body:
            self._held += piece
            return ""
        out, self._held = self._held + body, piece[len(body):]
        return out

    def push(self, ids: list[int]) -> str:
        return self._emit(self._stream.push(ids)) if ids else ""

    def finish(self) -> str:
        return self._emit(self._stream.finish())


def deltas(owner: ReplyStream, tokens: Generator[int, None, None], tokenizer: Tokenizer, stop_ids: set[int],
           stop_words: Sequence[Sequence[int]], timings: Timings,
           on_done: Callable[[Reply], None] | None = None) -> Iterator[str]:
    """Consume generated ``tokens`` (closing the generator at a stop), yield text deltas, and set
    ``owner.done`` at the end; ``on_done(reply)`` runs unless the generation was cancelled."""
    words = [list(w) for w in stop_words if w]
    generated: list[int] = []
    body = 0  # how many generated ids are the reply's text (all but a final stop id / stop word)
    shown = 0  # how many of those went into the text stream
    text = _Stripped(tokenizer)
    finish = "cancelled"
    try:
        for token in tokens:
            if owner.cancelled.is_set():
                break
            generated.append(token)
            if token in stop_ids:
                finish = "stop"
                break
            word = next((w for w in words if generated[-len(w):] == w), None)
            if word is not None:
                finish, body = "stop", len(generated) - len(word)
                break
            body = len(generated)
            # hold back the longest tail that could still grow into a stop word
            held = max((k for w in words for k in range(1, len(w)) if generated[-k:] == w[:k]), default=0)
            delta = text.push(generated[shown : body - held])
            shown = max(shown, body - held)
            if delta:
                yield delta
        else:
            finish = "length"
        tail = text.push(generated[shown:body]) + text.finish()
        if tail:
            yield tail
    finally:
        tokens.close()
        reply_text = tokenizer.decode(generated[:body], skip_special_tokens=True, keep_box_tags=True).strip()
        owner.done = Reply(reply_text, boxes.parse(reply_text), generated, finish, timings)
        if on_done is not None and finish != "cancelled":
            on_done(owner.done)
