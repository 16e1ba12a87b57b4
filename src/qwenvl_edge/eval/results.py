"""The results file (``--out``): one JSON record per item, written as soon as the item is done, so an
interrupted run loses at most the item in progress.

A record is ``{"task", "id", "line", "prediction", "score", ...}`` (the score is null for captions:
CIDEr is a corpus score) or, for an item that could not run, ``{"task", "id", "line", "error"}``.
Reopening the file keeps the finished items of the same task and drops error records and unreadable
lines (the tail of a killed run), so a new run retries exactly what has no result yet.
"""

from __future__ import annotations

import json
import os
from typing import IO


class Results:
    def __init__(self, path: str | os.PathLike | None, task: str):
        """Open ``path`` (None: keep records in memory only) for ``task``'s records."""
        self.path, self.task = path, task
        self.records: list[dict] = []  # finished records, earlier runs' first
        self._file: IO[str] | None = None
        if path is None:
            return
        if os.path.exists(path):
            self.records = self._finished(path)
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(self._line(r) for r in self.records)
        os.replace(tmp, path)
        self._file = open(path, "a", encoding="utf-8")

    def _finished(self, path) -> list[dict]:
        kept = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, text in enumerate(f, 1):
                try:
                    record = json.loads(text)
                except json.JSONDecodeError:
                    continue
                if not isinstance(record, dict) or "error" in record or "id" not in record:
                    continue
                if record.get("task") != self.task:
                    raise ValueError(f"{path}: line {number} is a {record.get('task')!r} result; this run is "
                                     f"{self.task!r} (use another --out file)")
                kept.append(record)
        return kept

    @staticmethod
    def _line(record: dict) -> str:
        return json.dumps(record, ensure_ascii=False) + "\n"

    def done_ids(self) -> set:
        return {(type(r["id"]), r["id"]) for r in self.records}

    def add(self, record: dict) -> None:
        record = {"task": self.task, **record}
        if "error" not in record:
            self.records.append(record)
        if self._file is not None:
            self._file.write(self._line(record))
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
