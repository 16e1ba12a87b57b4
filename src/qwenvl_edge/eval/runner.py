"""One task over one data file: the items without a result yet, one at a time, then a summary.

``evaluate`` answers the items in this process; ``evaluate_with`` takes the answering from elsewhere
(``cluster``: Ray workers), with the same records, results file and summary.
An item that cannot run (a malformed line, a missing or undecodable image, a prompt longer than the
context) is recorded as an error with its line number and the run goes on. The summary scores every
item of the data (within ``limit``) that has a result, this run's and the earlier runs' in ``out``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import sys
import time
from typing import Callable, Generator, Sequence

from PIL import Image

from qwenvl_edge.eval import data, grounding, prompting, ranking, tasks
from qwenvl_edge.eval.data import Item, LineError
from qwenvl_edge.eval.results import Results
from qwenvl_edge.eval.tasks import Task
from qwenvl_edge.reply import Reply


@dataclasses.dataclass
class Summary:
    task: str
    metric: str
    items: int  # items with a result (this run's and earlier ones')
    score: float | None  # x100, 2 decimals; None without items
    errors: list[LineError]  # this run's
    seconds: float  # this run's
    note: str = ""  # how the score was made, where that varies (the CIDEr tokenizer)

    def table(self) -> str:
        score = "-" if self.score is None else f"{self.score:.2f}"
        rows = [("task", "metric", "items", "score", "errors", "seconds"),
                (self.task, self.metric, str(self.items), score, str(len(self.errors)), f"{self.seconds:.1f}")]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
                 for r in rows]
        if self.note:
            lines.append(f"({self.note})")
        lines += [f"line {e.line}: {e.message}" for e in self.errors]
        return "\n".join(lines)


def answer_ids(reply: Reply, stop_words: Sequence[Sequence[int]]) -> list[int]:
    """The generated ids without a final multi-token stop word (raw prompts stop at "Human:"); a
    single stop id is a special token, which the decoding drops anyway."""
    ids = list(reply.token_ids)
    if reply.finish_reason == "stop":
        for word in stop_words:
            if len(word) > 1 and ids[-len(word):] == list(word):
                return ids[: -len(word)]
    return ids


def generate(model, task: Task, prompt: str, images: Sequence[str]) -> str:
    reply = model.generate(prompt, images, temperature=0, max_new_tokens=task.max_new_tokens,
                           min_new_tokens=task.min_new_tokens)
    text = model.tokenizer.decode(answer_ids(reply, model.generation.stop_words), skip_special_tokens=True)
    return text.strip() if task.strip else text


def run_item(model, task: Task, item: Item, shots: Sequence[Item] = ()) -> dict:
    """The record of one item: its prediction, its score (None for captions) and what it was scored on."""
    prompt = "".join(prompting.shot(task, s) for s in shots) + prompting.prompt(task, item)
    images = [s.image for s in shots] + [item.image]
    if task.kind == "ranking":
        losses = ranking.continuation_losses(model, prompt, images, ranking.continuations(len(item.options)))
        choice = ranking.choose(losses)
        return dict(prediction=ranking.LETTERS[choice], answer=ranking.LETTERS[item.answer], losses=losses,
                    score=float(choice == item.answer))
    text = generate(model, task, prompt, images)
    if task.kind == "caption":
        return dict(prediction=text, references=list(item.answers), score=None)
    if task.kind == "grounding":
        width: float
        height: float
        if item.size is None:
            with Image.open(item.image) as opened:  # reads the header only
                width, height = opened.size
        else:
            width, height = item.size
        box, overlap, correct = grounding.evaluate(text, item.box, width, height)
        return dict(prediction=text, box=box, truth=list(item.box), iou=None if math.isnan(overlap) else overlap,
                    score=correct)
    assert task.score is not None  # every "vqa" task has its metric (tasks.TASKS)
    return dict(prediction=text, answers=list(item.answers), score=task.score(text, item.answers))


def _shot_pool(task: Task, few_shot: int, items: list[Item], shots_path) -> list[Item]:
    if few_shot <= 0:
        return []
    if not task.takes_shots:
        raise ValueError(f"the {task.name} task has no few-shot prompt (captioning and VQA tasks do)")
    pool = items if shots_path is None else [s for s in data.read(shots_path, task) if isinstance(s, Item)]
    if len(pool) <= few_shot:
        raise ValueError(f"{few_shot} shots need more than {few_shot} valid examples, "
                         f"{shots_path or 'the data'} has {len(pool)}")
    return pool


def _shots(pool: list[Item], k: int, item: Item, seed: int) -> list[Item]:
    """k examples drawn for this item, never the item itself (same id); the same draw on every run."""
    if not k:
        return []
    rng = random.Random(f"{seed}:{type(item.id).__name__}:{item.id}")
    return rng.sample([s for s in pool if s.id != item.id], k)


def score(task: Task, records: list[dict]) -> tuple[float | None, str]:
    """(the task's score x100 over these records, a note on how it was made)."""
    if not records:
        return None, ""
    if task.kind == "caption":
        from qwenvl_edge.eval.cider import cider

        result = cider({i: r["prediction"] for i, r in enumerate(records)},
                       {i: r["references"] for i, r in enumerate(records)})
        return round(100 * result.score, 2), f"CIDEr on {result.tokenizer} tokens"
    return round(100 * sum(r["score"] for r in records) / len(records), 2), ""


def answer(model, task: Task, item: Item, shots: Sequence[Item] = ()) -> dict:
    """The results-file record of one item, its result or its error: what every run writes for it,
    in this process or on a cluster's worker."""
    try:
        record = run_item(model, task, item, shots)
    except (ValueError, OSError) as e:  # an undecodable image, a prompt too long, ...
        return dict(id=item.id, line=item.line, error=str(e))
    return dict(id=item.id, line=item.line, **record)


# What answers the items: (task, the items to run, each item's shots) -> a record (``answer``) per item, in
# any order, each as soon as it is done.
Answers = Callable[[Task, list[Item], Callable[[Item], list[Item]]], Generator[dict, None, None]]


def in_process(model) -> Answers:
    """The items answered one after the other by ``model``."""
    def answers(task: Task, pending: list[Item], shots_for: Callable[[Item], list[Item]]) -> Generator[dict, None, None]:
        for item in pending:
            yield answer(model, task, item, shots_for(item))
    return answers


def evaluate(model, task: Task | str, data_path: str | os.PathLike, out: str | os.PathLike | None = None,
             limit: int | None = None, few_shot: int = 0, shots_path: str | os.PathLike | None = None,
             seed: int = 0, progress: bool = True) -> Summary:
    """Run ``task`` on the items of ``data_path`` that ``out`` has no result for; the summary."""
    return evaluate_with(in_process(model), task, data_path, out=out, limit=limit, few_shot=few_shot,
                         shots_path=shots_path, seed=seed, progress=progress)


def evaluate_with(answers: Answers, task: Task | str, data_path: str | os.PathLike,
                  out: str | os.PathLike | None = None, limit: int | None = None, few_shot: int = 0,
                  shots_path: str | os.PathLike | None = None, seed: int = 0, progress: bool = True) -> Summary:
    """``evaluate`` with the items answered by ``answers``."""
    if isinstance(task, str):
        if task not in tasks.TASKS:
            raise ValueError(f"unknown task {task!r}; the tasks are {', '.join(tasks.TASKS)}")
        task = tasks.TASKS[task]
    start = time.perf_counter()
    entries = data.read(data_path, task, limit)
    items = [e for e in entries if isinstance(e, Item)]
    errors = [e for e in entries if isinstance(e, LineError)]
    pool = _shot_pool(task, few_shot, items, shots_path)
    results = Results(out, task.name)
    try:
        for e in errors:
            results.add(dict(id=e.id, line=e.line, error=e.message))
        done = results.done_ids()
        pending = [i for i in items if (type(i.id), i.id) not in done]
        from tqdm import tqdm  # the eval extra's: imported here so the CLI starts without it

        with tqdm(total=len(pending), desc=task.name, unit="item", file=sys.stderr, disable=not progress) as bar, \
                contextlib.closing(answers(task, pending, lambda item: _shots(pool, few_shot, item, seed))) as stream:
            for record in stream:
                if "error" in record:
                    errors.append(LineError(record["line"], record["id"], record["error"]))
                results.add(record)
                bar.update()
    finally:
        results.close()
    wanted = {(type(i.id), i.id) for i in items}
    scored = [r for r in results.records if (type(r["id"]), r["id"]) in wanted]
    value, note = score(task, scored)
    errors.sort(key=lambda e: e.line)
    return Summary(task.name, task.metric, len(scored), value, errors, time.perf_counter() - start, note)
