"""Each task end to end on the tiny bundle (random weights: well-formed results, never a score value),
resuming from the results file, and bad items reported by line."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from qwenvl_edge.eval.data import Item
from qwenvl_edge.eval.results import Results
from qwenvl_edge.eval.runner import answer_ids, evaluate, run_item
from qwenvl_edge.eval.tasks import TASKS
from qwenvl_edge.reply import Reply
from qwenvl_edge.records import Timings

FIELDS = {
    "caption": {"captions": ["a red and blue square", "colour blocks"]},
    "refcoco": {"expression": "the left block", "box": [0, 0, 20, 30]},
    "scienceqa": {"question": "Which colour is the top left?", "options": ["red", "green", "blue"], "answer": 2,
                  "hint": "A picture of blocks."},
    "chartqa": {"question": "What is the value?", "answers": ["12"]},
}
VQA_FIELDS = {"question": "What colour is it?", "answers": ["red"] * 3 + ["blue"]}


def dataset(folder, pictures, task, n=3, extra=()):
    """n items of ``task`` on the pictures, copied beside the data file (images named relatively)."""
    for p in map(Path, pictures):
        shutil.copy(p, folder / p.name)
    lines = [json.dumps({"id": f"q{i}", "image": f"p{i % 3}.png", **FIELDS.get(task, VQA_FIELDS)}) for i in range(n)]
    path = folder / f"{task}.jsonl"
    path.write_text("\n".join(lines + list(extra)) + "\n", encoding="utf-8")
    return path


def records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_end_to_end(eval_model, pictures, tmp_path, task):
    out = tmp_path / "out.jsonl"
    summary = evaluate(eval_model, task, dataset(tmp_path, pictures, task), out=out, progress=False)
    assert summary.items == 3 and summary.errors == [] and summary.task == task
    got = records(out)
    assert [r["id"] for r in got] == ["q0", "q1", "q2"] and [r["line"] for r in got] == [1, 2, 3]
    assert all(r["task"] == task and isinstance(r["prediction"], str) for r in got)
    if task == "caption":
        assert all(r["score"] is None and r["references"] == FIELDS["caption"]["captions"] for r in got)
        assert summary.score >= 0 and summary.note.startswith("CIDEr on ")
    else:
        assert all(0.0 <= r["score"] <= 1.0 for r in got)
        assert 0.0 <= summary.score <= 100.0
        assert summary.score == round(100 * sum(r["score"] for r in got) / 3, 2)
    if task == "refcoco":
        assert all(len(r["box"]) == 4 and (r["iou"] is None or 0 <= r["iou"] <= 1) for r in got)
    if task == "scienceqa":
        assert all(len(r["losses"]) == 3 and r["prediction"] in "ABC" and r["answer"] == "C" for r in got)
    table = summary.table()
    assert table.splitlines()[0].split() == ["task", "metric", "items", "score", "errors", "seconds"]
    assert table.splitlines()[1].startswith(task)


def test_a_second_run_skips_the_done_items_and_retries_the_errors(eval_model, pictures, tmp_path):
    data = dataset(tmp_path, pictures, "vqa", n=4)
    out = tmp_path / "out.jsonl"
    first = evaluate(eval_model, "vqa", data, out=out, limit=2, progress=False)
    assert first.items == 2 and [r["id"] for r in records(out)] == ["q0", "q1"]
    done = records(out)
    (tmp_path / "p2.png").unlink()  # q2 fails this time...
    with out.open("a") as f:
        f.write('{"task": "vqa", "id": "q3", "li')  # ...and a killed run left half a line
    second = evaluate(eval_model, "vqa", data, out=out, progress=False)
    assert second.items == 3 and [e.line for e in second.errors] == [3]
    assert [(r["id"], "error" in r) for r in records(out)] == [("q0", False), ("q1", False), ("q2", True),
                                                              ("q3", False)]
    assert records(out)[:2] == done
    shutil.copy(pictures[2], tmp_path / "p2.png")
    third = evaluate(eval_model, "vqa", data, out=out, progress=False)  # only q2 runs
    assert third.items == 4 and third.errors == []
    assert [r["id"] for r in records(out)] == ["q0", "q1", "q3", "q2"]


def test_bad_items_are_reported_by_line_and_the_run_goes_on(eval_model, pictures, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    extra = ['{"id": "bad json', json.dumps({"id": "noq", "image": "p0.png", "answers": ["a"]}),
             json.dumps({"id": "noimg", "image": "nowhere.png", "question": "q", "answers": ["a"]}),
             json.dumps({"id": "broken", "image": "broken.png", "question": "q", "answers": ["a"]})]
    out = tmp_path / "out.jsonl"
    summary = evaluate(eval_model, "vqa", dataset(tmp_path, pictures, "vqa", n=2, extra=extra), out=out,
                       progress=False)
    assert summary.items == 2
    assert [(e.line, e.id) for e in summary.errors] == [(3, None), (4, "noq"), (5, "noimg"), (6, "broken")]
    assert "missing 'question'" in summary.errors[1].message and "nowhere.png" in summary.errors[2].message
    errors = [r for r in records(out) if "error" in r]
    assert [(r["line"], r["id"]) for r in errors] == [(3, None), (4, "noq"), (5, "noimg"), (6, "broken")]
    table = summary.table()
    assert "line 4: missing 'question'" in table and table.splitlines()[1].split()[-2] == "4"


class Recorder:
    """A model that records prompts and answers with fixed token ids."""

    def __init__(self, generation, tokenizer, ids):
        self.tokenizer, self.ids, self.calls = tokenizer, ids, []
        self.generation = dataclasses.replace(generation, stop_words=[])

    def generate(self, prompt, images, **options):
        self.calls.append((prompt, list(images), options))
        return Reply("", [], list(self.ids), "length", Timings())


def test_few_shot_prompts_and_greedy_settings(eval_model, tmp_path):
    model = Recorder(eval_model.generation, eval_model.tokenizer, eval_model.tokenizer.encode(" Red ball \n"))
    shots = [Item(id=i, line=i, image=f"/s{i}.png", image_ref=f"s{i}.png", question=f"Q{i}?", answers=(f"a{i}",))
             for i in (1, 2)]
    query = Item(id=9, line=9, image="/q.png", image_ref="q.png", question="Q?", answers=("red ball",))
    record = run_item(model, TASKS["ocrvqa"], query, shots)
    prompt, images, options = model.calls[0]
    assert prompt == "<img>s1.png</img>Q1? Answer: a1<img>s2.png</img>Q2? Answer: a2<img>q.png</img>Q? Answer:"
    assert images == ["/s1.png", "/s2.png", "/q.png"]
    assert options == dict(temperature=0, max_new_tokens=100, min_new_tokens=1)
    assert record == dict(prediction="Red ball", answers=["red ball"], score=1.0)
    grounded = run_item(model, TASKS["refcoco"], Item(id=1, line=1, image="/q.png", image_ref="q.png",
                                                       expression="e", box=(0, 0, 1, 1), size=(10, 10)))
    assert grounded["prediction"] == " Red ball \n"  # grounding continuations are not stripped


def test_few_shot_needs_enough_examples_and_a_task_that_has_them(eval_model, pictures, tmp_path):
    with pytest.raises(ValueError, match="no few-shot"):
        evaluate(eval_model, "refcoco", dataset(tmp_path, pictures, "refcoco"), few_shot=1, progress=False)
    with pytest.raises(ValueError, match="more than 3"):
        evaluate(eval_model, "vqa", dataset(tmp_path, pictures, "vqa"), few_shot=3, progress=False)
    summary = evaluate(eval_model, "vqa", dataset(tmp_path, pictures, "vqa"), few_shot=2, progress=False)
    assert summary.items == 3 and summary.errors == []


def test_an_unknown_task_is_refused(eval_model, tmp_path):
    with pytest.raises(ValueError, match="unknown task 'vqav2'"):
        evaluate(eval_model, "vqav2", tmp_path / "none.jsonl")


def test_a_stop_word_is_not_part_of_the_answer():
    human = [33975, 25]
    reply = Reply("", [], [5, 6] + human, "stop", Timings())
    assert answer_ids(reply, [human, [151643]]) == [5, 6]
    assert answer_ids(Reply("", [], [5, 151643], "stop", Timings()), [human]) == [5, 151643]
    assert answer_ids(Reply("", [], [5] + human, "length", Timings()), [human]) == [5] + human


def test_a_results_file_of_another_task_is_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps({"task": "gqa", "id": 1, "prediction": "x", "score": 0}) + "\n")
    with pytest.raises(ValueError, match="'gqa' result"):
        Results(out, "vqa")
