"""The prompt of an item of a task, as eval_mm writes it (docs/model.md 7.4): the base-model template of
the task's kind, and few-shot examples of the same template followed by their answers."""

from __future__ import annotations

import collections

from qwenvl_edge.eval import ranking
from qwenvl_edge.eval.data import Item
from qwenvl_edge.eval.tasks import Task
from qwenvl_edge.prompts import CAPTION, GROUNDING, VQA


def prompt(task: Task, item: Item) -> str:
    """The query prompt of one item."""
    if task.kind == "caption":
        return CAPTION.format(image=item.image_ref)
    if task.kind == "vqa":
        return VQA.format(image=item.image_ref, question=item.question)
    if task.kind == "grounding":
        return GROUNDING.format(image=item.image_ref, expression=item.expression)
    return ranking.prompt(item.image_ref, item.question, item.options, item.hint)


def shot(task: Task, item: Item) -> str:
    """One few-shot example: the prompt and " {answer}". eval_mm's training files have one answer per
    example; here it is the most common annotation, the first of equally common ones (so a caption
    example usually gets its first caption)."""
    if not task.takes_shots:
        raise ValueError(f"the {task.name} task has no few-shot prompt")
    answer = collections.Counter(item.answers).most_common(1)[0][0]
    return prompt(task, item) + " " + answer
