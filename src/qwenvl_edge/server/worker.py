"""One computation at a time on the cores: a single worker thread runs the jobs (vision, prefill,
decode) in arrival order from a bounded queue; a job beyond the bound is refused (429) at once.

A job talks to its HTTP handler through an asyncio queue of events ("delta", text), ("done", result)
and ("error", ApiError), pushed thread-safely onto the server's event loop, which stays free to answer
/health and /v1/models while a generation runs. ``cancel()`` (the client went away) drops a job that
has not started and stops a running generation at its next token.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any, Callable

from qwenvl_edge.errors import FormatError
from qwenvl_edge.reply import ReplyStream
from qwenvl_edge.server.errors import INTERNAL, ApiError

log = logging.getLogger("qwenvl_edge.server")


class Job:
    def __init__(self, work: Callable[["Job"], Any], loop: asyncio.AbstractEventLoop):
        self.work = work
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self._loop = loop
        self._stream: ReplyStream | None = None
        self._lock = threading.Lock()

    def emit(self, kind: str, value: Any) -> None:
        if not self.cancelled.is_set():
            try:
                self._loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
            except RuntimeError:  # the event loop has closed (server shutting down)
                self.cancel()

    def attach(self, stream: ReplyStream) -> None:
        """The generation this job runs, so that cancel() can stop it."""
        with self._lock:
            self._stream = stream
            if self.cancelled.is_set():
                stream.cancel()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled.set()
            if self._stream is not None:
                self._stream.cancel()


class Worker:
    def __init__(self, queue_size: int, startup: Callable[[], None]):
        if queue_size < 1:  # queue.Queue takes 0 for unbounded
            raise ValueError(f"queue must be at least 1, got {queue_size}")
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self._queue_size = queue_size
        self.ready = threading.Event()
        self.failed: str | None = None
        self._startup = startup
        self._running: Job | None = None
        self._thread = threading.Thread(target=self._run, name="qwenvl-server-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise ApiError(429, f"too many requests waiting ({self._queue_size} queued, the server's --queue): "
                                f"retry later") from None

    def queued(self) -> int:
        """How many jobs wait (the running one not counted)."""
        return self._jobs.qsize()

    def stop(self) -> None:
        """Cancel the waiting jobs and the running one, and end the thread (before the process exits,
        so that no generation is cut off inside the native core)."""
        while True:
            try:
                waiting = self._jobs.get_nowait()
            except queue.Empty:
                break
            if waiting is not None:
                waiting.cancel()
        running = self._running
        if running is not None:
            running.cancel()
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        try:
            self._startup()
        except Exception as e:  # noqa: BLE001 (reported by /health and to every request)
            log.exception("the model could not be opened")
            self.failed = str(e)
        self.ready.set()
        while (job := self._jobs.get()) is not None:
            if job.cancelled.is_set():
                continue
            self._running = job
            try:
                if self.failed is not None:
                    raise ApiError(503, f"the model could not be opened: {self.failed}")
                job.emit("done", job.work(job))
            except ApiError as e:
                job.emit("error", e)
            except FormatError:  # the bundle's files: the server's problem, not the client's
                log.exception("a request failed")
                job.emit("error", INTERNAL)
            except ValueError as e:  # the runtime's refusal of this request (a caller mistake)
                job.emit("error", ApiError(400, str(e)))
            except Exception:  # noqa: BLE001 (logged here; the client gets no trace)
                log.exception("a request failed")
                job.emit("error", INTERNAL)
            finally:
                self._running = None
