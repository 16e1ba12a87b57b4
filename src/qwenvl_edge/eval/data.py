"""Evaluation data: one JSON object per line, checked line by line against the task's schema.

Every line has ``"id"`` (a string or an integer, unique in the file) and ``"image"`` (a path, relative
to the data file's folder or absolute; the prompt shows it exactly as written, like the reference's
``<img>{image}</img>``). Then, per task:

- caption: ``"captions"``: the reference captions, a non-empty list of strings.
- vqa, textvqa, docvqa, chartqa, gqa, ocrvqa, ai2d: ``"question"``: a string; ``"answers"``: the
  annotated answers, a string or a non-empty list of strings (VQAv2/TextVQA: the ten annotators').
- refcoco: ``"expression"``: the referring expression; ``"box"``: the ground truth ``[x1, y1, x2, y2]``
  in pixels; optional ``"width"``, ``"height"``: the image size the box refers to (default: the image
  file's size).
- scienceqa: ``"question"``; ``"options"``: 1 to 26 strings (shown as "A. ...", "B. ..."); ``"answer"``:
  the right option, an index from 0 or a letter; optional ``"hint"``: the context (empty or missing
  reads "N/A").

A line that is not valid JSON, lacks a field, has a field of the wrong type, repeats an id or names a
missing image becomes a ``LineError`` carrying the line number; the other lines are read as usual.
Blank lines are skipped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from typing import Any

from qwenvl_edge.eval.ranking import LETTERS
from qwenvl_edge.eval.tasks import Task


@dataclasses.dataclass(frozen=True)
class Item:
    id: str | int
    line: int  # 1-based line number in the data file
    image: str  # the path to open
    image_ref: str  # the path as written in the data: what the prompt shows
    question: str = ""  # VQA and ranking tasks
    answers: tuple[str, ...] = ()  # VQA: the annotations; caption: the reference captions
    expression: str = ""  # grounding
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # grounding ground truth, pixels
    size: tuple[float, float] | None = None  # grounding: (width, height) of the box's image; None: the file's
    options: tuple[str, ...] = ()  # ranking
    answer: int = 0  # ranking: index of the right option
    hint: str = ""  # ranking context


@dataclasses.dataclass(frozen=True)
class LineError:
    line: int
    id: str | int | None  # when the line got as far as a valid id
    message: str


class _Invalid(ValueError):
    pass


def _string(obj: dict, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _Invalid(f"'{key}' must be a string" if key in obj else f"missing '{key}'")
    return value


def _strings(obj: dict, key: str, allow_single: bool) -> tuple[str, ...]:
    value = obj.get(key)
    if allow_single and isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        what = "a string or a non-empty list of strings" if allow_single else "a non-empty list of strings"
        raise _Invalid(f"'{key}' must be {what}" if key in obj else f"missing '{key}'")
    return tuple(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _answer_index(obj: dict, n_options: int) -> int:
    answer = obj.get("answer")
    if isinstance(answer, str) and len(answer) == 1 and answer.upper() in LETTERS[:n_options]:
        return LETTERS.index(answer.upper())
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < n_options:
        return answer
    if "answer" not in obj:
        raise _Invalid("missing 'answer'")
    raise _Invalid(f"'answer' must be an option index 0..{n_options - 1} or a letter A..{LETTERS[n_options - 1]}")


def _fields(task: Task, obj: dict) -> dict:
    """The task's fields of one line, checked."""
    if task.kind == "caption":
        return dict(answers=_strings(obj, "captions", allow_single=False))
    if task.kind == "vqa":
        return dict(question=_string(obj, "question"), answers=_strings(obj, "answers", allow_single=True))
    if task.kind == "grounding":
        box = obj.get("box")
        if not isinstance(box, list) or len(box) != 4 or not all(_number(v) for v in box):
            raise _Invalid("'box' must be [x1, y1, x2, y2] in pixels" if "box" in obj else "missing 'box'")
        size = None
        if "width" in obj or "height" in obj:
            w, h = obj.get("width"), obj.get("height")
            if not (_number(w) and _number(h) and typing.cast(float, w) > 0 and typing.cast(float, h) > 0):
                raise _Invalid("'width' and 'height' must both be positive numbers")
            size = (w, h)
        return dict(expression=_string(obj, "expression"), box=tuple(float(v) for v in box), size=size)
    options = _strings(obj, "options", allow_single=False)
    if len(options) > len(LETTERS):
        raise _Invalid(f"at most {len(LETTERS)} options")
    hint = obj.get("hint") or ""
    if not isinstance(hint, str):
        raise _Invalid("'hint' must be a string")
    return dict(question=_string(obj, "question"), options=options, answer=_answer_index(obj, len(options)),
                hint=hint)


def _valid_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _item(task: Task, obj: Any, line: int, folder: str) -> Item:
    if not isinstance(obj, dict):
        raise _Invalid("not a JSON object")
    if "id" not in obj:
        raise _Invalid("missing 'id'")
    if not _valid_id(obj["id"]):
        raise _Invalid("'id' must be a string or an integer")
    ref = _string(obj, "image")
    path = os.path.join(folder, ref)  # an absolute ref stays as it is
    fields = _fields(task, obj)
    if not os.path.isfile(path):
        raise _Invalid(f"image not found: {path}")
    return Item(id=obj["id"], line=line, image=path, image_ref=ref, **fields)


def read(path: str | os.PathLike, task: Task, limit: int | None = None) -> list[Item | LineError]:
    """The first ``limit`` non-blank lines of a JSONL file (all by default), as items or errors."""
    folder = os.path.dirname(os.path.abspath(path))
    out: list[Item | LineError] = []
    seen: set = set()
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if limit is not None and len(out) >= limit:
                break
            if not raw.strip():
                continue
            obj = None
            try:
                obj = json.loads(raw.decode("utf-8"))
                item = _item(task, obj, number, folder)
            except UnicodeDecodeError:
                out.append(LineError(number, None, "not UTF-8 text"))
                continue
            except json.JSONDecodeError as e:
                out.append(LineError(number, None, f"not valid JSON ({e.msg} at column {e.colno})"))
                continue
            except _Invalid as e:
                known = obj.get("id") if isinstance(obj, dict) and _valid_id(obj.get("id")) else None
                out.append(LineError(number, known, str(e)))
                continue
            key = (type(item.id), item.id)  # 1 and "1" are different ids
            if key in seen:
                out.append(LineError(number, item.id, f"id {item.id!r} repeats an earlier line's"))
                continue
            seen.add(key)
            out.append(item)
    return out
