"""Exact match and GQA's answer post-processing against hand-worked cases."""

import pytest

from qwenvl_edge.eval.exact_match import gqa_answer, gqa_score, score


def test_strip_and_case_insensitive_against_any_annotation():
    assert score("  Harry Potter ", ["the hobbit", "harry potter"]) == 1.0
    assert score("harry", ["harry potter"]) == 0.0
    with pytest.raises(ValueError):
        score("x", [])


@pytest.mark.parametrize("response, short", [
    ("Yes.", "yes"),
    ("red, I think", "red"),
    ("The car is red", "red"),
    ("They are on the table", "table"),  # "are " then "the "
    ("an apple", "apple"),
    ("The color of the car", "color"),  # "the " then cut before " of"
    ("Wow! A dog", "wow"),
    ("this is a dog", ""),  # "is " matches inside "this ": the text after it is ""
    ("pizza slice", "slice"),  # "a " matches the end of "pizza "
])
def test_gqa_post_processing(response, short):
    assert gqa_answer(response) == short


def test_gqa_score_post_processes_the_answer_only():
    assert gqa_score("It is a cat.", ["cat"]) == 1.0
    assert gqa_score("cat", ["a cat"]) == 0.0
