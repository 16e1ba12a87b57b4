"""From generated ids to a reply: stop rules, text deltas for streaming, the final Reply.

Stop rules (docs/model.md 7.2): a stop id (``<|endoftext|>``, and ``<|im_end|>``/``<|im_start|>`` for ChatML) or
a multi-token stop word (``Human:`` for raw prompts) ends the reply and is not part of its text. While
the tail of the output could still become a stop word, its text is held back, so a stream never shows
text that the final reply does not contain. The caller's stop strings (``stop=``) end the reply where
the text first contains one of them, wherever the tokens split it; the reply is the text before it, and
the text that could still become one is held back the same way. The text is decoded without special
tokens but with the ``<ref>``/``<box>``/``<quad>`` tags, and stripped; joined deltas equal it exactly.
"""

from __future__ import annotations

import dataclasses
import inspect
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

    def __init__(self, run: Callable[["ReplyStream"], Generator[str, None, None]]):
        self.cancelled = threading.Event()
        self.done: Reply | None = None  # set by deltas() when the generation ends, however it ends
        self._deltas = run(self)

    @property
    def reply(self) -> Reply:
        """The whole reply, once the iteration has ended. After leaving the loop early (``break``), reading
        it ends the generation there: the reply so far, finish_reason "cancelled"."""
        if self.done is None and inspect.getgeneratorstate(self._deltas) == inspect.GEN_SUSPENDED:
            self.close()
        if self.done is None:
            raise RuntimeError("the reply is not complete: iterate the stream to its end (or call wait())")
        return self.done

    def __iter__(self) -> Iterator[str]:
        return self._deltas

    def cancel(self) -> None:
        self.cancelled.set()

    def close(self) -> None:
        """From the iterating thread (others: cancel()): end the generation where it is; the reply holds
        what came so far. Nothing happens once the generation has ended."""
        self._deltas.close()  # at a yield of deltas(), whose finally sets done

    def wait(self) -> Reply:
        """Run to the end (discarding deltas) and return the reply."""
        for _ in self._deltas:
            pass
        return self.reply

    def __repr__(self) -> str:
        return f"ReplyStream({'done: ' + repr(self.done) if self.done else 'running'})"


def stop_tokens(endoftext: int, stop_words: Sequence[Sequence[int]]) -> tuple[set[int], list[Sequence[int]]]:
    """A format's stop words as what deltas() takes: the ids that end a reply alone (endoftext and the
    one-token words) and the words of several tokens."""
    return {endoftext} | {w[0] for w in stop_words if len(w) == 1}, [w for w in stop_words if len(w) > 1]


def stop_strings(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    """The ``stop=`` option as a tuple: one string or a list of them, none empty."""
    strings = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if not all(isinstance(s, str) and s for s in strings):
        raise ValueError(f"stop must be a string or a list of non-empty strings, got {stop!r}")
    return strings


def before_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the first place where one of ``stops`` starts."""
    return text[: min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))]


class _StopText:
    """Pieces of text up to the first stop string; a tail that could still grow into one is held back.
    No stop string can start before what was shown: that part was never a stop string's beginning."""

    def __init__(self, stops: Sequence[str]):
        self._stops, self._text, self._shown, self.hit = stops, "", 0, False

    def push(self, piece: str) -> str:
        if self.hit or not piece:
            return ""
        self._text += piece
        found = [i for i in (self._text.find(s, self._shown) for s in self._stops) if i >= 0]
        self.hit = bool(found)
        held = max((k for s in self._stops for k in range(1, len(s)) if self._text.endswith(s[:k])), default=0)
        end = min(found) if found else len(self._text) - held
        out, self._shown = self._text[self._shown : end], max(self._shown, end)
        return out

    def finish(self) -> str:
        """What was held back, once no more text comes."""
        out, self._shown = ("" if self.hit else self._text[self._shown :]), len(self._text)
        return out


class _Stripped:
    """Pieces of ``text.strip()``: leading whitespace dropped, trailing whitespace held back until more
    text follows (and dropped at the end)."""

    def __init__(self) -> None:
        self._started, self._held = False, ""

    def push(self, piece: str) -> str:
        if not self._started:
            piece = piece.lstrip()
            self._started = bool(piece)
        body = piece.rstrip()
        if not body:
            self._held += piece
            return ""
        out, self._held = self._held + body, piece[len(body):]
        return out


def deltas(owner: ReplyStream, tokens: Generator[int, None, None], tokenizer: Tokenizer, stop_ids: set[int],
           stop_words: Sequence[Sequence[int]], timings: Timings,
           on_done: Callable[[Reply], None] | None = None, stop: Sequence[str] = ()) -> Iterator[str]:
    """Consume generated ``tokens`` (closing the generator at a stop), yield text deltas, and set
    ``owner.done`` at the end; ``on_done(reply)`` runs unless the generation was cancelled. ``stop``:
    the caller's stop strings."""
    words = [list(w) for w in stop_words if w]
    generated: list[int] = []
    body = 0  # how many generated ids are the reply's text (all but a final stop id / stop word)
    shown = 0  # how many of those went into the text stream
    decoded, stop_text, stripped = TextStream(tokenizer), _StopText(stop), _Stripped()
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
            delta = stripped.push(stop_text.push(decoded.push(generated[shown : body - held])))
            shown = max(shown, body - held)
            if delta:
                yield delta
            if stop_text.hit:
                finish = "stop"
                break
        else:
            finish = "length"
        if not stop_text.hit:
            tail = stop_text.push(decoded.push(generated[shown:body]) + decoded.finish())
            tail = stripped.push(tail + stop_text.finish())
            finish = "stop" if stop_text.hit else finish
            if tail:
                yield tail
    finally:
        tokens.close()
        text = tokenizer.decode(generated[:body], skip_special_tokens=True, keep_box_tags=True)
        reply_text = before_stop(text, stop).strip()
        owner.done = Reply(reply_text, boxes.parse(reply_text), generated, finish, timings)
        if on_done is not None and finish != "cancelled":
            on_done(owner.done)
