"""The plain records the runtime's modules hand each other: what a request took (Timings), an image's
features (ImageFeatures), a prompt ready to run (PreparedPrompt), a finished chat exchange (Turn).
They import nothing of the package, so every module can use them without importing another's code."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Timings:
    """Where a request's time went; one per request, filled in as it runs."""

    vision_s: float = 0.0
    images: int = 0
    images_cached: int = 0
    prefill_s: float = 0.0
    prefill_tokens: int = 0
    reused_tokens: int = 0
    decode_s: float = 0.0
    decode_tokens: int = 0

    @property
    def decode_tok_s(self) -> float:
        return self.decode_tokens / self.decode_s if self.decode_s > 0 else 0.0

    @property
    def prefill_tok_s(self) -> float:
        return self.prefill_tokens / self.prefill_s if self.prefill_s > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        out = dataclasses.asdict(self)
        out.update(prefill_tok_s=self.prefill_tok_s, decode_tok_s=self.decode_tok_s)
        return out


@dataclasses.dataclass(frozen=True)
class ImageFeatures:
    """What fills an image span: the vision encoder's rows [256, hidden] and a key naming the content
    (the same picture gives the same key, whatever its path)."""

    key: str
    features: np.ndarray


@dataclasses.dataclass(frozen=True)
class PreparedPrompt:
    """A prompt ready to run: its ids, the image features per span start, and the timings so far."""

    ids: list[int]
    spans: dict[int, ImageFeatures]
    timings: Timings


@dataclasses.dataclass(frozen=True)
class Turn:
    """A finished exchange of a chat: the user's query text and the model's reply text."""

    query: str
    reply: str
