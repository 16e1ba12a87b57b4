"""Prompt formats (docs/model.md 6.4, 7.1, 7.4): Qwen-VL-Chat's ChatML, built piecewise exactly like the
reference's ``make_context``, and the base model's raw prompts.

ChatML ids are the concatenation of separately tokenised pieces, not the tokenisation of the joined
text (which can merge across piece boundaries): the same ids as the reference for the same
conversation. Role contents are encoded with only the nine image/box tags allowed as special tokens,
so a user typing ``<|im_start|>`` gets plain text, as in the reference.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from qwenvl_edge.records import Turn
from qwenvl_edge.tokenizer import IMAGE_TAGS, Tokenizer

DEFAULT_SYSTEM = "You are a helpful assistant."


def picture(n: int, ref: str) -> str:
    """How an image is written into a chat query: ``Picture n: <img>ref</img>\\n`` (the space form of
    the latest revision, docs/model.md 6.4)."""
    return f"Picture {n}: <img>{ref}</img>\n"


def box_text(x1: int, y1: int, x2: int, y2: int, ref: str | None = None) -> str:
    """``<ref>ref</ref><box>(x1,y1),(x2,y2)</box>`` with coordinates already in 0..1000."""
    prefix = f"<ref>{ref}</ref>" if ref is not None else ""
    return f"{prefix}<box>({int(x1)},{int(y1)}),({int(x2)},{int(y2)})</box>"


class ChatML:
    """Token ids of ChatML conversations for one tokenizer."""

    def __init__(self, tokenizer: Tokenizer):
        self.tok = tokenizer
        sp = tokenizer.special
        self.im_start, self.im_end = [sp.im_start], [sp.im_end]
        self.nl = tokenizer.encode("\n")

    def message(self, role: str, content: str | Sequence[int]) -> list[int]:
        """``<|im_start|>role\\ncontent<|im_end|>``, piece by piece; ``content`` as text, or as ids
        already encoded (the server encodes a client's text without image tags)."""
        body = self.tok.encode(content, allowed_special=IMAGE_TAGS) if isinstance(content, str) else list(content)
        return self.im_start + self.tok.encode(role, allowed_special=()) + self.nl + body + self.im_end

    def system(self, text: str) -> list[int]:
        return self.message("system", text)

    def turn(self, turn: Turn) -> list[int]:
        return self.exchange(turn.query, turn.reply)

    def exchange(self, query: str | Sequence[int], reply: str | Sequence[int]) -> list[int]:
        """A finished turn: the user's message and the assistant's (each text or ids, as ``message``)."""
        return self.nl + self.message("user", query) + self.nl + self.message("assistant", reply)

    def query(self, text: str | Sequence[int]) -> list[int]:
        """The current query and the open assistant header the model continues."""
        return (self.nl + self.message("user", text) + self.nl + self.im_start
                + self.tok.encode("assistant", allowed_special=()) + self.nl)

    def context(self, query: str, history: Sequence[Turn] = (), system: str = DEFAULT_SYSTEM,
                max_window_size: int = 6144) -> tuple[list[int], int]:
        """(ids, number of history turns kept). History turns are kept newest first while the system
        part, the turn and the turns already kept stay under ``max_window_size``; the first turn that
        does not fit drops it and every older one. The query is always included (docs/model.md 7.1)."""
        return self.fit(self.system(system), (self.turn(t) for t in reversed(history)), self.query(query),
                        max_window_size)

    @staticmethod
    def fit(system_ids: list[int], turns_newest_first: Iterable[list[int]], query_ids: list[int],
            max_window_size: int) -> tuple[list[int], int]:
        """``context`` over encoded pieces: the system part, the turns that fit (newest first), the query."""
        kept: list[int] = []
        n_kept = 0
        for ids in turns_newest_first:
            if len(system_ids) + len(ids) + len(kept) >= max_window_size:
                break
            kept = ids + kept
            n_kept += 1
        return system_ids + kept + query_ids, n_kept


def raw_ids(tokenizer: Tokenizer, text: str) -> list[int]:
    """A base-model prompt: the text itself, special-token strings allowed (docs/model.md 7.1 ``raw``)."""
    return tokenizer.encode(text, allowed_special="all")


def with_image_spans(tokenizer: Tokenizer, prompt: str, refs: Sequence[str]) -> str:
    """A base-model prompt for images named ``refs``: as it is when it has image spans, else with
    ``<img>ref</img>`` in front for each image (the paper's task format)."""
    if refs and not tokenizer.image_spans(raw_ids(tokenizer, prompt)):
        return "".join(f"<img>{ref}</img>" for ref in refs) + prompt
    return prompt


# Base-model task prompts of the paper's evaluation (docs/model.md 7.4); ``{image}`` is the image reference.
CAPTION = "<img>{image}</img>Describe the image in English:"
VQA = "<img>{image}</img>{question} Answer:"
GROUNDING = "<img>{image}</img><ref>{expression}</ref><box>"
