"""One decoder and the ids in its KV cache: prefill with prefix reuse, then token-by-token generation.

A new prompt reuses the longest prefix already in the cache (same ids and, in image slots, the same
image content) and prefills only the rest, so a chat turn does not re-prefill the conversation so
far, and a regenerated turn rewinds to where the turns diverge. The cache is dropped instead when the
new prompt would get a different dynamic-NTK alpha than the cached keys were rotated with (prompts
past seq_length), because the reference recomputes everything with the new alpha then.
"""

from __future__ import annotations

import threading
import time
from typing import Collection, Generator, Sequence

import numpy as np

from qwenvl_edge import _core
from qwenvl_edge.manifest import DecoderConfig
from qwenvl_edge.records import ImageFeatures, Timings
from qwenvl_edge.sampling import Sampling, choose
from qwenvl_edge.vocab import IMAGE_SLOTS


class Session:
    def __init__(self, decoder, config: DecoderConfig, img_start: int):
        self.decoder = decoder
        self.config = config
        self.img_start = img_start
        self.ids: list[int] = []  # what the KV cache holds
        self.image_keys: dict[int, str] = {}  # start index of each cached image span -> content key
        self.lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self.decoder.capacity

    def _reusable(self, ids: Sequence[int], spans: dict[int, ImageFeatures]) -> int:
        """How many leading positions of the cache serve ``ids`` (at least one position is recomputed,
        for its logits; never a part of an image span)."""
        n = 0
        limit = min(len(self.ids), len(ids) - 1)
        while n < limit and self.ids[n] == ids[n]:
            if n in spans and self.image_keys.get(n) != spans[n].key:
                break
            n += 1
        for start in list(spans) + list(self.image_keys):  # back off to before a partly kept span
            if start < n < start + IMAGE_SLOTS + 2:
                n = start
        if n and self.config.dynamic_ntk and _core.ntk_alpha(len(ids), self.config.seq_length) != self.decoder.ntk_alpha:
            n = 0
        return n

    def prefill(self, ids: Sequence[int], spans: dict[int, ImageFeatures], timings: Timings) -> np.ndarray:
        """Bring the cache to ``ids`` (image features at the given span starts); the last logits."""
        ids = [int(t) for t in ids]
        if not ids:
            raise ValueError("empty prompt")
        if len(ids) > self.capacity:
            raise ValueError(f"prompt too long: {len(ids)} tokens, the context holds {self.capacity}")
        keep = self._reusable(ids, spans)
        self.decoder.truncate(keep)
        self.ids = ids[:keep]
        self.image_keys = {s: k for s, k in self.image_keys.items() if s < keep}
        start = time.perf_counter()
        x = self.decoder.embed(np.asarray(ids[keep:], dtype=np.int32))
        for s, image in spans.items():
            if s >= keep:
                x[s + 1 - keep : s + 1 - keep + IMAGE_SLOTS] = image.features
        logits = self.decoder.forward(x)
        logits = logits.reshape(-1, logits.shape[-1])[-1]  # the last position's row
        self.ids = ids
        self.image_keys.update({s: image.key for s, image in spans.items() if s >= keep})
        timings.prefill_s += time.perf_counter() - start
        timings.prefill_tokens += len(ids) - keep
        timings.reused_tokens += keep
        return logits

    def continuation_logits(self, last: np.ndarray, continuation: Sequence[int]) -> np.ndarray:
        """The rows of logits predicting each token of ``continuation`` after the prompt in the cache:
        ``last`` (the prompt's last row, from prefill), then one row per further token, computed on
        top of the cache, which holds the prompt again afterwards."""
        rows = last[None]
        if len(continuation) > 1:
            prompt = len(self.ids)
            try:
                x = self.decoder.embed(np.asarray(continuation[:-1], dtype=np.int32))
                rows = np.concatenate([rows, self.decoder.forward(x, all_logits=True)])
            finally:
                self.decoder.truncate(prompt)
        return rows

    def generate(self, logits: np.ndarray, *, max_new_tokens: int, sampling: Sampling, seed: int | None,
                 timings: Timings, min_new_tokens: int = 0, stop_ids: Collection[int] = ()) -> Generator[int, None, None]:
        """Yield new token ids, each fed back into the cache when the next one is asked for; ends at
        ``max_new_tokens`` or when the context is full. The consumer stops it (at a stop token) by
        closing the generator, so a stop token is never fed. ``stop_ids`` cannot be chosen as the first
        ``min_new_tokens`` tokens (HF's min_new_tokens, which masks eos the same way)."""
        rng = np.random.default_rng(seed)
        masked = np.fromiter(stop_ids, dtype=np.int64)
        start = time.perf_counter()
        try:
            for n in range(max_new_tokens):
                if n < min_new_tokens and masked.size:
                    logits = logits.copy()
                    logits[masked] = -np.inf
                if np.isnan(logits).any() or np.isposinf(logits).any():  # say so, rather than a numpy error
                    raise ValueError("the decoder produced NaN or infinite logits (damaged weights, or "
                                     "non-finite image features?)")
                token = choose(logits, self.ids, sampling, rng)  # seen ids for the repetition penalty
                timings.decode_tokens += 1
                yield token
                if n + 1 == max_new_tokens or len(self.ids) >= self.capacity:
                    return
                logits = self.decoder.step(token).reshape(-1)
                self.ids.append(token)
        finally:
            timings.decode_s += time.perf_counter() - start

    def reusable(self, ids: Sequence[int], spans: dict[int, ImageFeatures]) -> int:
        """How many positions of the cache a prefill of ``ids`` would keep (a server picks the session
        that keeps the most)."""
        return self._reusable(ids, spans)
