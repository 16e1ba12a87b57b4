"""Decoder sessions (their KV caches) kept across stateless requests, so a client that resends its
conversation each turn prefills only what is new.

A request takes the session whose cache shares the longest prefix with its prompt (ids equal, image
spans equal by content key: Session.reusable). A session is reused when it keeps at least as many
positions as it drops; otherwise a new one is opened while the pool has room, so one conversation does
not overwrite another's cache for a shared system prompt; once full, the least recently used session
with the longest prefix is taken (its cache is overwritten: eviction). Used by the server's one worker
thread only.
"""

from __future__ import annotations

from typing import Callable, Sequence

from qwenvl_edge.records import ImageFeatures
from qwenvl_edge.session import Session


class SessionPool:
    def __init__(self, new_session: Callable[[], Session], size: int):
        if size < 1:
            raise ValueError(f"sessions must be at least 1, got {size}")
        self._new_session = new_session
        self.size = size
        self.sessions: list[Session] = []  # least recently used first

    def take(self, ids: Sequence[int], spans: dict[int, ImageFeatures]) -> Session:
        """The session to prefill ``ids`` in, marked most recently used."""
        kept = [s.reusable(ids, spans) for s in self.sessions]
        best = max(range(len(kept)), key=lambda i: kept[i], default=None)  # the first (oldest) of the longest
        if best is not None and (kept[best] >= len(self.sessions[best].ids) - kept[best]
                                 or len(self.sessions) == self.size):
            session = self.sessions.pop(best)
        else:
            session = self._new_session()
        self.sessions.append(session)
        return session
