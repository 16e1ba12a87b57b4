"""RefCOCO scoring against hand-worked cases: parsing, /999, failure boxes, IoU."""

import math

import pytest

from qwenvl_edge.eval.grounding import ZERO_BOX, evaluate, iou, parse, to_pixels


def test_the_first_box_of_the_text():
    assert parse("(10,20),(30,40)</box> and (1,2),(3,4)") == (10, 20, 30, 40)
    assert parse(" (1.5,2),(3,4.25)") == (1.5, 2, 3, 4.25)


@pytest.mark.parametrize("text", ["", "no box", "(10),(20)", "(1,2,3),(4,5)", "(a,b),(c,d)", "(1,2), (3,4)"])
def test_anything_unexpected_is_the_zero_box(text):
    assert parse(text) == ZERO_BOX


def test_division_by_999_not_1000():
    assert to_pixels((999, 999, 499.5, 0), 640, 480) == (640, 480, 320, 0)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert math.isnan(iou(ZERO_BOX, ZERO_BOX))  # empty union
    # a reversed box keeps its negative area (torchvision clamps only the intersection): -100 + 100 - 0
    assert math.isnan(iou((10, 0, 0, 10), (0, 0, 10, 10)))


def test_evaluate():
    # (0,0),(499.5,999) of 999 on 200x100 -> (0,0,100,100) pixels
    box, overlap, correct = evaluate("(0,0),(499.5,999)", (0, 0, 100, 100), 200, 100)
    assert box == [0, 0, 100, 100] and overlap == 1.0 and correct == 1.0
    # IoU 0.5 exactly is correct: the pixel box (0,0,100,100) against (0,0,50,100) overlaps 5000 of 10000
    assert evaluate("(0,0),(499.5,999)", (0, 0, 50, 100), 200, 100)[1:] == (0.5, 1.0)
    assert evaluate("(0,0),(499.5,999)", (0, 0, 40, 100), 200, 100)[2] == 0.0
    assert evaluate("nothing", (0, 0, 40, 100), 200, 100) == ([0, 0, 0, 0], 0.0, 0.0)
