"""The paper's evaluation tasks (docs/model.md 7.4): the base-model prompt, the greedy lengths and the metric of
each, as Qwen-VL's eval_mm scripts run them.

Generation is greedy; the bundle's stop ids cannot end an answer before ``min_new_tokens`` (eos masked,
like HF's min_new_tokens); the new tokens are decoded without special tokens and stripped, except for
grounding, whose continuation is parsed as it is. Few-shot prompts are k examples of the same template,
each followed by " {answer}", concatenated with no separator, then the query.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from qwenvl_edge.eval import anls, exact_match, relaxed_accuracy, vqa_score


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
