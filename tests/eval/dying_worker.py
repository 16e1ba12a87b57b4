"""A test double of the Ray eval worker that kills its own process (SIGKILL, as the OOM killer does) in the
middle of an item. Ray's worker processes import it by name: test_cluster.py puts this folder on their
PYTHONPATH.

The plan is a file ``die-on`` beside the item's image, ``ID TIMES``: the worker dies on item ID until
workers have died on it TIMES times, counted in the file ``deaths`` beside it (a restarted worker starts
afresh, so the count must live on disk)."""

import os
import signal

from qwenvl_edge.eval.cluster import Worker


class DyingWorker(Worker):
    def answer(self, task, item, shots):
        folder = os.path.dirname(item.image)
        victim, times = open(os.path.join(folder, "die-on")).read().split()
        deaths = os.path.join(folder, "deaths")
        died = os.path.getsize(deaths) if os.path.exists(deaths) else 0  # one byte a death
        if str(item.id) == victim and died < int(times):
            with open(deaths, "a") as f:
                f.write("x")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().answer(task, item, shots)
