"""Task prompts and settings as eval_mm has them (docs/model.md 7.4)."""

import pytest

from qwenvl_edge.eval.data import Item
from qwenvl_edge.eval.prompting import prompt, shot
from qwenvl_edge.eval.tasks import TASKS


def item(**fields):
    return Item(id=1, line=1, image="/data/x.jpg", image_ref="x.jpg", **fields)


def test_prompts():
    assert prompt(TASKS["caption"], item()) == "<img>x.jpg</img>Describe the image in English:"
    for name in ("vqa", "textvqa", "docvqa", "chartqa", "gqa", "ocrvqa", "ai2d"):
        assert prompt(TASKS[name], item(question="What {is} it?")) == "<img>x.jpg</img>What {is} it? Answer:"
    assert prompt(TASKS["refcoco"], item(expression="the dog")) == "<img>x.jpg</img><ref>the dog</ref><box>"
    assert prompt(TASKS["scienceqa"], item(question="Q", options=("a", "b"), hint="H")) == (
        "<img>x.jpg</img>Context: H\nQuestion: Q\nOptions: A. a\nB. b\nAnswer:")


def test_lengths():
    lengths = {name: (t.max_new_tokens, t.min_new_tokens, t.strip) for name, t in TASKS.items()}
    assert lengths == {"caption": (30, 8, True), "vqa": (10, 1, True), "textvqa": (10, 1, True),
                       "docvqa": (100, 1, True), "chartqa": (100, 1, True), "gqa": (10, 1, True),
                       "ocrvqa": (100, 1, True), "ai2d": (10, 1, True), "refcoco": (28, 10, False),
                       "scienceqa": (0, 0, True)}


def test_a_shot_is_the_prompt_and_the_most_common_answer():
    assert shot(TASKS["vqa"], item(question="Q", answers=("b", "a", "a"))) == "<img>x.jpg</img>Q Answer: a"
    assert shot(TASKS["caption"], item(answers=("one", "two"))) == (
        "<img>x.jpg</img>Describe the image in English: one")
    with pytest.raises(ValueError):
        shot(TASKS["refcoco"], item(expression="e"))
