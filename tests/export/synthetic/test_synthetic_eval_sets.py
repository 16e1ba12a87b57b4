"""The synthetic scenes, tasks and eval sets: deterministic from the seed, and every item valid for the
eval harness, its reference answer scoring full marks on the task's own metric."""

from __future__ import annotations

import hashlib
import json
import os
import random

import pytest

from qwenvl_edge.eval import data, grounding, tasks
from qwenvl_edge.export.synthetic import calibration_set, eval_sets, scenes, task_text


def digest(folder) -> str:
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def test_the_same_seed_writes_the_same_files_and_another_seed_does_not(tmp_path):
    eval_sets.write(tmp_path / "a", items=4, seed=3)
    eval_sets.write(tmp_path / "b", items=4, seed=3)
    eval_sets.write(tmp_path / "c", items=4, seed=4)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_every_item_reads_as_valid_for_its_task(tmp_path):
    paths = eval_sets.write(tmp_path, items=6, seed=0)
    for task, path in paths.items():
        entries = data.read(path, tasks.TASKS[task])
        assert len(entries) == 6
        assert all(isinstance(e, data.Item) for e in entries), [e for e in entries if isinstance(e, data.LineError)]


@pytest.mark.parametrize("task", ["vqa", "textvqa"])
def test_the_true_answer_scores_full_marks_and_a_wrong_one_nothing(tmp_path, task):
    path = eval_sets.write(tmp_path, items=8, seed=1)[task]
    for item in data.read(path, tasks.TASKS[task]):
        assert tasks.TASKS[task].score(item.answers[0], item.answers) == 1.0
        assert tasks.TASKS[task].score("purple", item.answers) == 0.0


def test_the_grounding_answer_of_each_item_is_correct_on_its_own_image_size(tmp_path):
    rng = random.Random(0)
    for _ in range(30):
        scene = scenes.random_scene(rng)
        q = task_text.question(scene, task_text.GROUNDING, rng)
        assert q is not None and q.shape is not None
        _, _, correct = grounding.evaluate(q.answer, q.shape.box, scene.width, scene.height)
        assert correct == 1.0


def test_scenes_are_drawn_at_their_size_with_shapes_apart_and_inside():
    rng = random.Random(2)
    sizes = set()
    for _ in range(40):
        scene = scenes.random_scene(rng)
        sizes.add((scene.width, scene.height))
        assert scenes.draw(scene).size == (scene.width, scene.height)
        boxes = [s.box for s in scene.shapes] + ([scene.word_box] if scene.word_box else [])
        for n, a in enumerate(boxes):
            assert 0 <= a[0] < a[2] <= scene.width and 0 <= a[1] < a[3] <= scene.height
            assert not any(scenes._overlaps(a, b, margin=0) for b in boxes[n + 1:])
        assert len({(s.colour, s.kind) for s in scene.shapes}) == len(scene.shapes)
    assert any(w != h for w, h in sizes)


def test_questions_are_answered_from_the_scene():
    scene = scenes.Scene(600, 400, ("plain", (240, 240, 240)),
                         (scenes.Shape("red", "circle", (10, 10, 110, 110)), scenes.Shape("blue", "square", (400, 50, 500, 150))),
                         "CAT", (200, 300, 300, 360), 48)
    rng = random.Random(0)
    assert task_text.vqa_question(scene, "count", rng).answer == "2"
    assert task_text.vqa_question(scene, "colour", rng).answer in ("red", "blue")
    side = task_text.vqa_question(scene, "side", rng)
    assert side.answer == ("left" if "red" in side.question else "right")
    assert task_text.question(scene, task_text.TEXT, rng).answer == "cat"
    assert task_text.captions(scene)[0] == "a red circle and a blue square on a plain background, with the word CAT."
    prompt, continuation = task_text.raw_prompt(task_text.question(scene, task_text.CAPTION, rng), "x.png")
    assert prompt == "<img>x.png</img>Describe the image in English:" and continuation.startswith(" a red circle")


def test_the_calibration_file_names_images_that_exist(tmp_path):
    path = calibration_set.write(tmp_path, images=3)
    with open(path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    assert len(texts) >= 9
    for text in texts:
        ref = text.split("<img>", 1)[1].split("</img>", 1)[0]
        assert os.path.isfile(tmp_path / ref)
