"""The tasks about a scene as text: what the prompt asks and what the model should continue with.

The base-model (raw) prompts are the paper's (qwenvl_edge.prompts, as the eval harness writes them):
captioning, VQA (counts, colours, presence, left/right), text reading (the drawn word) and grounding
(``<ref>the red circle</ref><box>`` continued with the box in 0..999 units). The ChatML variant asks the
same things in Qwen-VL-Chat's words and answers in the reply. Answers are lower-case, as the VQA metric
compares annotations that all agree without normalising them (qwenvl_edge.eval.vqa_score).
"""

from __future__ import annotations

import dataclasses
import random

from qwenvl_edge.boxes import normalize
from qwenvl_edge.prompts import box_text

from .scenes import COLOURS, KINDS, Scene, Shape

# The eval harness's task names (qwenvl_edge.eval.tasks) for the four synthetic tasks.
CAPTION, VQA, TEXT, GROUNDING = "caption", "vqa", "textvqa", "refcoco"
TASKS = (CAPTION, VQA, TEXT, GROUNDING)
VQA_KINDS = ("count", "colour", "presence", "side")
BACKGROUND_WORDS = {"plain": "plain", "gradient": "shaded", "stripes": "striped"}
CHAT_CAPTION = "Describe the image in English."
CHAT_WORD = "What word is written in the image?"
TEXT_QUESTION = "What word is written in the image?"


@dataclasses.dataclass(frozen=True)
class Question:
    """One task item about a scene: the question (VQA/text) or expression (grounding), the answer
    that scores, and its kind (a VQA_KINDS entry; the task name otherwise)."""

    task: str
    kind: str
    question: str
    answer: str
    shape: Shape | None = None  # grounding: the shape referred to


def _listing(names: list[str]) -> str:
    items = [f"a {n}" for n in names]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def captions(scene: Scene) -> list[str]:
    """Reference captions, the canonical one first (shapes left to right): the one the model learns."""
    names = [s.name for s in scene.shapes]
    ground = BACKGROUND_WORDS[scene.background[0]]
    word = f", with the word {scene.word}" if scene.word else ""
    order = [names, names[::-1]] if len(names) > 1 else [names]
    refs = [f"{_listing(n)} on a {ground} background{word}." for n in order]
    refs.append(f"there is {_listing(names)} on a {ground} background{word}.")
    if scene.word:
        refs.append(f"the word {scene.word} and {_listing(names)} on a {ground} background.")
    return refs


def vqa_question(scene: Scene, kind: str, rng: random.Random) -> Question | None:
    """A VQA question of ``kind`` about the scene, or None when the scene cannot ask it unambiguously."""
    shapes = scene.shapes
    if kind == "count":
        return Question(VQA, kind, "How many shapes are there?", str(len(shapes)))
    if kind == "colour":
        unique = [s for s in shapes if sum(t.kind == s.kind for t in shapes) == 1]
        if not unique:
            return None
        s = rng.choice(unique)
        return Question(VQA, kind, f"What color is the {s.kind}?", s.colour)
    if kind == "presence":
        present = {(s.colour, s.kind) for s in shapes}
        if rng.random() < 0.5:
            colour, shape_kind = rng.choice(sorted(present))
        else:
            colour, shape_kind = rng.choice([(c, k) for c in COLOURS for k in KINDS if (c, k) not in present])
        return Question(VQA, kind, f"Is there a {colour} {shape_kind}?", "yes" if (colour, shape_kind) in present else "no")
    s = rng.choice(shapes)
    side = "left" if s.centre_x < scene.width / 2 else "right"
    return Question(VQA, kind, f"Is the {s.name} on the left or the right?", side)


def question(scene: Scene, task: str, rng: random.Random) -> Question | None:
    """An item of ``task`` about the scene (None when the scene has none: a text question without a word)."""
    if task == CAPTION:
        return Question(CAPTION, CAPTION, "", captions(scene)[0])
    if task == VQA:
        for kind in rng.sample(VQA_KINDS, len(VQA_KINDS)):
            q = vqa_question(scene, kind, rng)
            if q is not None:
                return q
        raise AssertionError("count questions always exist")
    if task == TEXT:
        return None if scene.word is None else Question(TEXT, TEXT, TEXT_QUESTION, scene.word.lower())
    return grounding(scene, rng.choice(scene.shapes))


def grounding(scene: Scene, shape: Shape) -> Question:
    return Question(GROUNDING, GROUNDING, f"the {shape.name}", box_units(scene, shape), shape)


def box_units(scene: Scene, shape: Shape) -> str:
    """The grounding answer: ``(x1,y1),(x2,y2)`` in 0..999 units of this (possibly non-square) image."""
    x1, y1, x2, y2 = normalize(shape.box, scene.width, scene.height)
    return f"({x1},{y1}),({x2},{y2})"


def raw_prompt(q: Question, image_ref: str) -> tuple[str, str]:
    """(the base-model prompt the eval harness writes, the continuation the model is trained on)."""
    from qwenvl_edge.prompts import CAPTION as CAPTION_PROMPT, GROUNDING as GROUNDING_PROMPT, VQA as VQA_PROMPT

    if q.task == CAPTION:
        return CAPTION_PROMPT.format(image=image_ref), " " + q.answer
    if q.task == GROUNDING:
        return GROUNDING_PROMPT.format(image=image_ref, expression=q.question), q.answer + "</box>"
    return VQA_PROMPT.format(image=image_ref, question=q.question), " " + q.answer


def chat_exchange(scene: Scene, q: Question) -> tuple[str, str]:
    """(the user's question after the picture line, the assistant's reply) in Qwen-VL-Chat's style."""
    if q.task == CAPTION:
        return CHAT_CAPTION, q.answer[0].upper() + q.answer[1:]
    if q.task == GROUNDING:
        assert q.shape is not None
        return f"Where is {q.question}?", box_text(*normalize(q.shape.box, scene.width, scene.height), q.question)
    return q.question, q.answer
