"""The session pool's choices, on stand-in sessions that hold ids (Session.reusable's rule: the longest
common prefix, at least one position recomputed)."""

from __future__ import annotations

from qwenvl_edge.server.pool import SessionPool


class Cached:
    def __init__(self, name: str):
        self.name, self.ids = name, []

    def reusable(self, ids, spans) -> int:
        n = 0
        while n < min(len(self.ids), len(ids) - 1) and self.ids[n] == ids[n]:
            n += 1
        return n


def pool_of(size: int) -> tuple[SessionPool, list[Cached]]:
    made: list[Cached] = []

    def new() -> Cached:
        made.append(Cached(f"s{len(made)}"))
        return made[-1]

    return SessionPool(new, size), made


def run(pool: SessionPool, ids: list[int]) -> str:
    session = pool.take(ids, {})
    session.ids = list(ids)
    return session.name


def test_a_continued_conversation_takes_its_own_session():
    pool, made = pool_of(2)
    system, a, b = list(range(20)), [100] * 30, [200] * 30
    assert run(pool, system + a) == "s0"
    assert run(pool, system + b) == "s1", "a new conversation overwrote another's cache for a shared prefix"
    assert run(pool, system + a + [7, 8]) == "s0"
    assert run(pool, system + b + [9]) == "s1"
    assert len(made) == 2


def test_a_full_pool_overwrites_the_least_recently_used_session():
    pool, made = pool_of(2)
    run(pool, [1, 2, 3])
    run(pool, [4, 5, 6])
    run(pool, [1, 2, 3, 7])  # s0 used last
    assert run(pool, [8, 9]) == "s1" and len(made) == 2


def test_a_session_that_keeps_more_than_it_drops_is_reused_even_with_room():
    pool, made = pool_of(4)
    run(pool, [1, 2, 3, 4, 5, 6])
    assert run(pool, [1, 2, 3, 4, 9, 9, 9]) == "s0" and len(made) == 1  # keeps 4, drops 2 (a regenerated reply)
