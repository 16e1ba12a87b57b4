"""The Qwen vocabulary file and the special-token ids that follow from it.

``qwen.tiktoken`` holds one BPE token per line, ``<base64 bytes> <rank>``, ranks 0..N-1 in order.
The special tokens come right after the N ranks, in a fixed order, so every special id is derived
from N: nothing in qwenvl-edge hard-codes 151643 (``<|endoftext|>``) or 151857 (``<img>``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os

import tiktoken

from qwenvl_edge.errors import FormatError

# Qwen's pre-tokenizer: like cl100k's but \p{N} takes a single digit, so numbers split digit by digit.
PAT_STR = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
EXTRAS = tuple(f"<|extra_{i}|>" for i in range(205))
# The nine vision-language tags, in the order the original tokenizer appends them.
VL_TAGS = ("<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", "<img>", "</img>", "<imgpad>")
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END) + EXTRAS + VL_TAGS

# Every image occupies <img> + IMAGE_SLOTS + </img> in the token stream.
IMAGE_SLOTS = 256

# The BPE ranks of the released vocabulary, for synthetic vocabularies of its size (synthetic_ranks).
RELEASE_RANKS = 151643
FILLER_LEAD = 0xF8  # never a byte of UTF-8 text


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    """Ids of the special tokens of a vocabulary with ``n_ranks`` BPE ranks."""

    n_ranks: int

    def id_of(self, token: str) -> int:
        return self.n_ranks + SPECIAL_TOKENS.index(token)

    @property
    def n_vocab(self) -> int:
        """Ids the tokenizer can produce (ranks + specials); the embedding table may be padded beyond."""
        return self.n_ranks + len(SPECIAL_TOKENS)

    @property
    def endoftext(self) -> int:
        return self.id_of(ENDOFTEXT)

    @property
    def im_start(self) -> int:
        return self.id_of(IM_START)

    @property
    def im_end(self) -> int:
        return self.id_of(IM_END)

    @property
    def ref_start(self) -> int:
        return self.id_of("<ref>")

    @property
    def box_start(self) -> int:
        return self.id_of("<box>")

    @property
    def img_start(self) -> int:
        return self.id_of("<img>")

    @property
    def img_end(self) -> int:
        return self.id_of("</img>")

    @property
    def img_pad(self) -> int:
        return self.id_of("<imgpad>")

    def as_dict(self) -> dict[str, int]:
        return {token: self.n_ranks + i for i, token in enumerate(SPECIAL_TOKENS)}


def read_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    """Read a tiktoken BPE file into {token bytes: rank}; ranks must be exactly 0..N-1.

    Lines are split with ``splitlines()`` and ``split()`` like the original tokenizer, so CRLF copies
    of the file read the same.
    """
    try:
        with open(path, "rb") as f:
            contents = f.read()
    except OSError as e:
        raise FormatError(f"cannot read vocabulary file {path}: {e.strerror}") from e
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(contents.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError("expected '<base64 token> <rank>'")
            token, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
        except (ValueError, binascii.Error) as e:
            raise FormatError(f"{path}, line {number}: not a tiktoken BPE line ({e})") from e
        if token in ranks:
            raise FormatError(f"{path}, line {number}: token {token!r} appears twice")
        ranks[token] = rank
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise FormatError(f"{path}: ranks are not exactly 0..{len(ranks) - 1}")
    if len(ranks) < 256:
        raise FormatError(f"{path}: {len(ranks)} ranks; a byte-level BPE needs at least the 256 single bytes")
    return ranks


def write_ranks(path: str | os.PathLike, ranks: dict[bytes, int]) -> None:
    """Write {token bytes: rank} as a tiktoken BPE file, in rank order, LF line ends."""
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
            f.write(f"{base64.b64encode(token).decode('ascii')} {rank}\n")


def encoding(ranks: dict[bytes, int]) -> tiktoken.Encoding:
    """The tiktoken encoding of a Qwen vocabulary: BPE ranks plus the special tokens after them."""
    return tiktoken.Encoding("qwen", pat_str=PAT_STR, mergeable_ranks=ranks,
                             special_tokens=SpecialIds(len(ranks)).as_dict())


def synthetic_ranks(count: int) -> dict[bytes, int]:
    """The 256 single bytes, then fillers FILLER_LEAD + 3 bytes: a valid vocabulary of ``count`` ranks
    that text never merges into (so text tokenises to bytes), for random models of the real size."""
    ranks = {bytes([b]): b for b in range(256)}
    for rank in range(256, count):
        ranks[bytes([FILLER_LEAD]) + rank.to_bytes(3, "big")] = rank
    return ranks
