"""Turning generated ids into text deltas that never split a UTF-8 character.

A token may end in the middle of a multi-byte character (Qwen's byte-level BPE does this for CJK and
emoji); the bytes that do not yet form a character are held back until the next token completes them,
and flushed (as U+FFFD if they never do) at the end. Joined, the deltas equal the text decoded at once.
"""

from __future__ import annotations

import codecs
from typing import Iterable

from qwenvl_edge.tokenizer import Tokenizer


class TextStream:
    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True, keep_box_tags: bool = True):
        self._tok = tokenizer
        self._options = (skip_special_tokens, keep_box_tags)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, ids: Iterable[int]) -> str:
        """The new complete characters after these ids."""
        return self._decoder.decode(self._tok.decode_bytes(ids, *self._options))

    def finish(self) -> str:
        """Whatever is held back, with U+FFFD for an unfinished character."""
        return self._decoder.decode(b"", final=True)
