"""Image features cached by image content, so a second question about an image skips the vision pass.

The key is a sha256 of the preprocessed pixels (what the vision encoder actually sees) together with
the preprocessing version and the bundle's vision-model hash. It is never the path, the URL or the
token ids: two different images under one name must not share features (a bug other runtimes
shipped), and one image under two names should.
"""

from __future__ import annotations

import collections
import hashlib
import threading

import numpy as np


def content_key(pixels: np.ndarray, salt: str) -> str:
    digest = hashlib.sha256(salt.encode())
    digest.update(str(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels, dtype=np.float32).tobytes())
    return digest.hexdigest()


class FeatureCache:
    """A thread-safe LRU of feature arrays (read-only), at most ``capacity`` images."""

    def __init__(self, capacity: int = 32):
        self.capacity = capacity
        self._items: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            features = self._items.get(key)
            if features is not None:
                self._items.move_to_end(key)
            return features

    def put(self, key: str, features: np.ndarray) -> np.ndarray:
        """Keep a private, frozen copy of ``features`` (unless the capacity is 0); returns that copy."""
        features = np.array(features, dtype=np.float32)
        features.setflags(write=False)
        if self.capacity <= 0:
            return features
        with self._lock:
            self._items[key] = features
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return features

    def __len__(self) -> int:
        return len(self._items)
