"""``qwenvl-edge eval --ray``: the items answered by workers on a Ray cluster (docs/eval.md, "On a Ray
cluster"). Imported only with ``--ray``: the runtime never needs ray (the ``cluster`` extra has it).

Each worker is a Ray actor that loads the bundle once, at the same path on its node, and keeps its model,
image-feature cache included, for the whole run. The items are grouped by image and each group goes to
one worker, so an image's questions reuse its features. A worker gets its next group while it is on its
last item, so it never waits for the driver. A worker answers an item with ``runner.answer``, exactly as
the single-process run does; the driver writes each record once, as it comes back (``runner.evaluate_with``).

Faults: an actor whose process dies (killed, or its node lost) is restarted by Ray, up to ``RESTARTS``
times, and the items it had in flight are retried on it (``max_task_retries``). As many retries as
restarts means that Ray gives up on an item only when its actor is dead for good; the driver then hands
the item to another worker. No item is lost, and none is written twice.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
from typing import Any, Callable, Generator

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError

from qwenvl_edge import bundle_store
from qwenvl_edge.eval.data import Item
from qwenvl_edge.eval.runner import answer
from qwenvl_edge.eval.tasks import TASKS, Task
from qwenvl_edge.model import load

RESTARTS = 2  # Ray's restarts of a dead worker, and its retries of each item the worker had in flight


class WorkersLost(RuntimeError):
    """Every worker is dead for good; the items not answered yet are not in the results file."""


class Worker:
    """One actor: the bundle's model on this node, loaded once (again after a restart)."""

    def __init__(self, bundle: str, threads: int, exact: bool):
        self.bundle = bundle
        self.node = f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"
        path = bundle_store.resolve(bundle)
        # A missing bundle is reported by the calls, not raised here: Ray keeps only the text of an
        # error raised while an actor starts, and the driver re-raises a call's error as itself.
        self.model = load(path, threads=threads, exact=exact) if os.path.isdir(path) else None

    def _model(self):
        if self.model is None:
            raise FileNotFoundError(f"the bundle {self.bundle} is not on node {self.node}: with --ray, the "
                                    f"bundle's path must exist on every node of the cluster")
        return self.model

    def ready(self) -> tuple[str, str]:
        """(this worker's node, the bundle's chat format)."""
        return self.node, self._model().generation.chat_format

    def answer(self, task: str, item: Item, shots: list[Item]) -> dict:
        return answer(self._model(), TASKS[task], item, shots)


def _result(ref: ray.ObjectRef):
    """A call's value; an exception the worker's code raised is raised here as itself."""
    try:
        return ray.get(ref)
    except RayTaskError as e:
        raise e.cause from e


def by_image(items: list[Item]) -> list[list[Item]]:
    """The items grouped by image, in the order in which each image first appears."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.image, []).append(item)
    return list(groups.values())


def _requeue(groups: collections.deque, item: Item) -> None:
    """Put an item back at the head of the queue, beside the other returned items of its image."""
    if groups and groups[0][0].image == item.image:
        groups[0].append(item)
    else:
        groups.appendleft([item])


class Cluster:
    """Workers on Ray for ``runner.evaluate_with(cluster.answers, ...)``. A context manager: leaving it
    ends the workers, and the Ray instance if this started it.

    ``address``: the cluster's (None: RAY_ADDRESS, else the one ``ray start`` gave this machine, else a
    new local Ray); an initialised Ray is used as it is. ``workers``: how many (default: the cluster's
    CPUs // ``threads``); ``threads``: each worker's threads, and the CPUs it reserves; ``worker``: the
    actor's class (tests give one that dies)."""

    def __init__(self, bundle: str | os.PathLike, address: str | None = None, workers: int | None = None,
                 threads: int = 1, exact: bool = False, worker: type = Worker):
        if threads < 1 or (workers is not None and workers < 1):
            raise ValueError(f"workers and threads must be >= 1, got {workers} and {threads}")
        self.actors: list = []
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, logging_level=logging.WARNING)
        try:
            cpus = int(ray.cluster_resources().get("CPU", 0))
            count = workers or max(1, cpus // threads)
            if count * threads > cpus:
                raise ValueError(f"{count} workers of {threads} threads need {count * threads} CPUs; the Ray "
                                 f"cluster has {cpus}")
            # A path here is made absolute (the workers run elsewhere); a bundle's name is found by each worker.
            path = os.path.abspath(bundle) if os.path.exists(bundle) else os.fspath(bundle)
            actor: Any = ray.remote(worker).options(num_cpus=threads, max_restarts=RESTARTS, max_task_retries=RESTARTS)
            self.actors = [actor.remote(path, threads, exact) for _ in range(count)]
            ready = [_result(a.ready.remote()) for a in self.actors]
        except BaseException:
            self.close()
            raise
        self.nodes = [node for node, _ in ready]
        self.chat_format = ready[0][1]

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for a in self.actors:
            ray.kill(a)
        self.actors = []
        if self._started and ray.is_initialized():
            ray.shutdown()

    def answers(self, task: Task, pending: list[Item], shots_for: Callable[[Item], list[Item]]) -> Generator[dict, None, None]:
        """The records of ``pending`` (``runner.Answers``), each as its worker finishes it."""
        groups = collections.deque(by_image(pending))
        live = list(range(len(self.actors)))
        in_flight: dict[ray.ObjectRef, tuple[int, Item]] = {}
        load: collections.Counter[int] = collections.Counter()  # items in flight per worker

        def hand_out() -> None:
            for w in live:
                while groups and load[w] <= 1:
                    for item in groups.popleft():
                        in_flight[self.actors[w].answer.remote(task.name, item, shots_for(item))] = (w, item)
                        load[w] += 1

        hand_out()
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            w, item = in_flight.pop(ref)
            load[w] -= 1
            try:
                record = _result(ref)
            except RayActorError as e:  # Ray's restarts and retries did not save it: another worker's turn
                if isinstance(e, ActorDiedError) and w in live:
                    live.remove(w)  # dead for good (an unavailable one may come back)
                if not live:
                    raise WorkersLost(f"every worker died ({len(self.actors)}, each restarted {RESTARTS} times); "
                                      f"the items done are in the results file, and a rerun does the rest") from e
                _requeue(groups, item)
            else:
                yield record
            hand_out()
