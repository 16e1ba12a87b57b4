"""Reading evaluation JSONL: the schema per task, errors per line with their line numbers."""

import json

import pytest

from qwenvl_edge.eval.data import Item, LineError, read
from qwenvl_edge.eval.tasks import TASKS


def write(path, lines):
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines), encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"not checked here")
    return tmp_path


def test_fields_per_task_and_relative_or_absolute_images(folder):
    absolute = str(folder / "img" / "a.png")
    cases = {
        "caption": ({"captions": ["x", "y"]}, dict(answers=("x", "y"))),
        "vqa": ({"question": "q?", "answers": ["a", "b"]}, dict(question="q?", answers=("a", "b"))),
        "chartqa": ({"question": "q?", "answers": "12"}, dict(answers=("12",))),
        "refcoco": ({"expression": "the cat", "box": [1, 2, 3.5, 4], "width": 10, "height": 20},
                    dict(expression="the cat", box=(1.0, 2.0, 3.5, 4.0), size=(10, 20))),
        "scienceqa": ({"question": "q", "options": ["x", "y"], "answer": "b", "hint": None},
                      dict(options=("x", "y"), answer=1, hint="")),
    }
    for name, (fields, want) in cases.items():
        data = write(folder / f"{name}.jsonl", [{"id": 1, "image": "img/a.png", **fields},
                                                {"id": "2", "image": absolute, **fields}])
        first, second = read(data, TASKS[name])
        assert isinstance(first, Item) and first.image == str(folder / "img" / "a.png") and first.line == 1
        assert first.image_ref == "img/a.png" and second.image_ref == absolute and second.id == "2"
        for key, value in want.items():
            assert getattr(first, key) == value, (name, key)


def test_each_bad_line_is_an_error_with_its_number(folder):
    data = write(folder / "d.jsonl", [
        {"id": 1, "image": "img/a.png", "question": "q", "answers": ["a"]},
        "{not json",
        "",  # blank lines are skipped, not counted as items
        {"id": 2, "image": "img/a.png", "answers": ["a"]},
        {"id": 3, "image": "img/missing.png", "question": "q", "answers": ["a"]},
        {"id": 1, "image": "img/a.png", "question": "q", "answers": ["a"]},
        {"id": 4, "image": "img/a.png", "question": "q", "answers": []},
        {"id": True, "image": "img/a.png", "question": "q", "answers": ["a"]},
        [1, 2],
        {"id": "1", "image": "img/a.png", "question": "q", "answers": ["a"]},  # "1" is not 1
    ])
    out = read(data, TASKS["vqa"])
    assert [type(e).__name__ for e in out] == ["Item"] + ["LineError"] * 7 + ["Item"]
    errors = {e.line: (e.id, e.message) for e in out if isinstance(e, LineError)}
    assert errors[2][0] is None and errors[2][1].startswith("not valid JSON")
    assert errors[4] == (2, "missing 'question'")
    assert errors[5][0] == 3 and errors[5][1].startswith("image not found") and "missing.png" in errors[5][1]
    assert errors[6] == (1, "id 1 repeats an earlier line's")
    assert errors[7] == (4, "'answers' must be a string or a non-empty list of strings")
    assert errors[8] == (None, "'id' must be a string or an integer")
    assert errors[9] == (None, "not a JSON object")


def test_limit_counts_non_blank_lines(folder):
    data = write(folder / "d.jsonl", ["{bad", "", {"id": 1, "image": "img/a.png", "captions": ["c"]},
                                      {"id": 2, "image": "img/a.png", "captions": ["c"]}])
    assert [e.line for e in read(data, TASKS["caption"], limit=2)] == [1, 3]


@pytest.mark.parametrize("fields, message", [
    ({"options": ["x"], "answer": 1}, "'answer' must be an option index 0..0 or a letter A..A"),
    ({"options": ["x", "y"]}, "missing 'answer'"),
    ({"options": [], "answer": 0}, "'options' must be a non-empty list of strings"),
    ({"options": ["x"], "answer": 0, "hint": 3}, "'hint' must be a string"),
])
def test_ranking_fields(folder, fields, message):
    data = write(folder / "d.jsonl", [{"id": 1, "image": "img/a.png", "question": "q", **fields}])
    assert read(data, TASKS["scienceqa"]) == [LineError(1, 1, message)]


@pytest.mark.parametrize("fields, message", [
    ({"expression": "x", "box": [1, 2, 3]}, "'box' must be [x1, y1, x2, y2] in pixels"),
    ({"expression": "x", "box": [1, 2, 3, 4], "width": 10}, "'width' and 'height' must both be positive numbers"),
    ({"box": [1, 2, 3, 4]}, "missing 'expression'"),
])
def test_grounding_fields(folder, fields, message):
    data = write(folder / "d.jsonl", [{"id": 1, "image": "img/a.png", **fields}])
    assert read(data, TASKS["refcoco"]) == [LineError(1, 1, message)]


def test_non_utf8_line(folder):
    data = folder / "d.jsonl"
    data.write_bytes(b'{"id": 1}\xff\n')
    assert read(data, TASKS["vqa"]) == [LineError(1, None, "not UTF-8 text")]
