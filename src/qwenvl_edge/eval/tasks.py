"""The paper's evaluation tasks (spec 7.4): the base-model prompt, the greedy lengths and the metric of
each, as Qwen-VL's eval_mm scripts run them.

Generation is greedy; the bundle's stop ids cannot end an answer before ``min_new_tokens`` (eos masked,
like HF's min_new_tokens); the new tokens are decoded without special tokens and stripped, except for
grounding, whose continuation is parsed as it is. Few-shot prompts are k examples of the same template,
each followed by " {answer}", concatenated with no separator, then the query.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import TYPE_CHECKING, Callable, Sequence

from qwenvl_edge.eval import anls, exact_match, ranking, relaxed_accuracy, vqa_score
from qwenvl_edge.prompts import CAPTION, GROUNDING, VQA

if TYPE_CHECKING:
    from qwenvl_edge.eval.data import Item


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "caption", "vqa", "grounding" or "ranking": the item's fields and how it runs
    metric: str  # what the score is, for the summary
    max_new_tokens: int = 0  # 0: nothing is generated (ranking)
    min_new_tokens: int = 0
    strip: bool = True
    score: Callable[[str, Sequence[str]], float] | None = None  # "vqa" kind: answer, annotations -> [0, 1]

    @property
    def takes_shots(self) -> bool:
        """eval_mm has few-shot prompts for captioning and VQA only."""
        return self.kind in ("caption", "vqa")


TASKS = {task.name: task for task in [
    Task("caption", "caption", "CIDEr", 30, 8),
    Task("vqa", "vqa", "VQA accuracy", 10, 1, score=vqa_score.score),
    Task("textvqa", "vqa", "VQA accuracy", 10, 1, score=vqa_score.score),
    Task("docvqa", "vqa", "ANLS", 100, 1, score=anls.score),
    Task("chartqa", "vqa", "relaxed accuracy", 100, 1, score=relaxed_accuracy.score),
    Task("gqa", "vqa", "accuracy", 10, 1, score=exact_match.gqa_score),
    Task("ocrvqa", "vqa", "accuracy", 100, 1, score=exact_match.score),
    Task("ai2d", "vqa", "accuracy", 10, 1, score=exact_match.score),
    Task("refcoco", "grounding", "Acc@0.5", 28, 10, strip=False),
    Task("scienceqa", "ranking", "accuracy"),
]}


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
