"""Qwen-VL's tokenizer (docs/model.md 6): tiktoken BPE with Qwen's pattern, the special tokens after the ranks,
NFC normalisation, and the image span rewrite.

An ``<img>path</img>`` span is stored in the ids as ``<img>``, the path's UTF-8 bytes as ids 0..255,
``<imgpad>`` up to 256 slots, ``</img>``: 258 ids per image, whatever the path. The model overwrites
the 256 slots with the image's features; the ids only carry the path. The original tokenizer accepts
paths of up to 256 bytes but its forward pass needs an ``<imgpad>`` in the first 255 slots, so 254
bytes is the real limit: longer paths are refused here, at encode time, with a clear message.

An ``<img>`` with no ``</img>`` after it is text ("what does <img> mean in HTML?"), where the reference
raises; every text the reference accepts gets the reference's ids (docs/model.md 6.4).
"""

from __future__ import annotations

import os
import unicodedata
from typing import Collection, Iterable, Literal

from qwenvl_edge.vocab import IMAGE_SLOTS, SPECIAL_TOKENS, VL_TAGS, SpecialIds, encoding, read_ranks

MAX_IMAGE_REF_BYTES = IMAGE_SLOTS - 2
IMAGE_TAGS = frozenset(VL_TAGS)  # what make_context allows as special in user text
BOX_TAGS = ("<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>")
IMG_START, IMG_END = "<img>", "</img>"


class Tokenizer:
    """Encode and decode text for one Qwen vocabulary (a ``qwen.tiktoken`` file)."""

    def __init__(self, ranks: dict[bytes, int]):
        self.special = SpecialIds(len(ranks))
        self._enc = encoding(ranks)
        self._box_tag_ids = frozenset(self.special.id_of(t) for t in BOX_TAGS)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Tokenizer":
        return cls(read_ranks(path))

    @property
    def n_vocab(self) -> int:
        return self.special.n_vocab

    def encode(self, text: str, allowed_special: Literal["all"] | Collection[str] = "all") -> list[int]:
        """Token ids of ``text`` (NFC-normalised). Special-token strings in ``allowed_special`` become
        special tokens; any other special string is encoded as plain text, never refused."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:  # lone surrogates (e.g. from bad decoding): tiktoken would mangle them
            raise ValueError(f"text is not valid Unicode ({e.reason} at position {e.start})") from e
        text = unicodedata.normalize("NFC", text)
        allowed = set(SPECIAL_TOKENS) if allowed_special == "all" else set(allowed_special)
        # Every <img> before the last </img> opens a span; those after it have no </img> to close them and
        # are encoded as text. Special tokens split the text anyway, so cutting after that </img> changes
        # no other id.
        cut = text.rfind(IMG_END) + len(IMG_END) if IMG_END in allowed and IMG_END in text else 0
        ids = self._enc.encode(text[:cut], allowed_special=allowed, disallowed_special=())
        ids += self._enc.encode(text[cut:], allowed_special=allowed - {IMG_START}, disallowed_special=())
        return self._rewrite_images(ids)

    def _rewrite_images(self, ids: list[int]) -> list[int]:
        sp = self.special
        out: list[int] = []
        i = 0
        while i < len(ids):
            if ids[i] != sp.img_start:
                out.append(ids[i])
                i += 1
                continue
            end = ids.index(sp.img_end, i + 1)  # encode() left no <img> without a </img> after it
            ref = self._enc.decode_bytes(ids[i + 1 : end])
            if len(ref) > MAX_IMAGE_REF_BYTES:
                raise ValueError(f"image reference of {len(ref)} bytes: at most {MAX_IMAGE_REF_BYTES} fit "
                                 f"in an image span ({ref[:40]!r}...)")
            out += [sp.img_start, *ref, *[sp.img_pad] * (IMAGE_SLOTS - len(ref)), sp.img_end]
            i = end + 1
        return out

    def image_spans(self, ids: Iterable[int]) -> list[tuple[str, int]]:
        """(reference, index of its ``<img>``) of every image span in ``ids``; the reference is the
        path, URL or name written in the span's slots."""
        return [(ref.decode("utf-8", errors="replace"), start) for ref, (start, _) in self._image_spans(list(ids))]

    def image_refs(self, ids: Iterable[int]) -> list[str]:
        return [ref for ref, _ in self.image_spans(ids)]

    def _image_spans(self, ids: list[int]) -> list[tuple[bytes, tuple[int, int]]]:
        sp = self.special
        spans = []
        for start, token in enumerate(ids):
            end = start + IMAGE_SLOTS + 1
            if token == sp.img_start and end < len(ids) and ids[end] == sp.img_end:
                slots = ids[start + 1 : end]
                cut = slots.index(sp.img_pad) if sp.img_pad in slots else len(slots)
                if all(0 <= t < 256 for t in slots[:cut]):
                    spans.append((bytes(slots[:cut]), (start, end + 1)))
        return spans

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False, keep_box_tags: bool = False,
               errors: str = "replace") -> str:
        """Text of ``ids``. Image spans come back as ``<img>path</img>``. ``skip_special_tokens`` drops
        every special token (the path text stays); ``keep_box_tags`` then keeps ``<ref>``/``<box>``/
        ``<quad>`` and their closing tags. Ids outside the vocabulary decode to nothing."""
        return self.decode_bytes(ids, skip_special_tokens, keep_box_tags).decode("utf-8", errors=errors)

    def decode_bytes(self, ids: Iterable[int], skip_special_tokens: bool = False,
                     keep_box_tags: bool = False) -> bytes:
        ids = [int(t) for t in ids]
        sp = self.special
        spans = {start: (ref, end) for ref, (start, end) in self._image_spans(ids)}

        def keep(token: int) -> bool:
            if token >= sp.n_vocab or token < 0:
                return False
            if token < sp.n_ranks or not skip_special_tokens:
                return True
            return keep_box_tags and token in self._box_tag_ids

        chunks: list[bytes] = []
        i = 0
        while i < len(ids):
            if i in spans:
                ref, i = spans[i]
                chunks.append(ref if skip_special_tokens else b"<img>" + ref + b"</img>")
                continue
            run = []  # a run of kept ids decodes in one call (multi-byte characters span tokens)
            while i < len(ids) and i not in spans:
                if keep(ids[i]):
                    run.append(ids[i])
                i += 1
            chunks.append(self._enc.decode_bytes(run))
        return b"".join(chunks)
