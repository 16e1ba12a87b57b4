"""ChartQA relaxed accuracy against hand-worked cases, eval_mm's argument swap included."""

import pytest

from qwenvl_edge.eval.relaxed_accuracy import correct, score


def test_the_relative_change_is_divided_by_the_prediction():
    assert correct("100", "95")  # |95 - 100| / 100 = 0.05
    assert not correct("95", "100")  # |100 - 95| / 95 > 0.05
    assert correct("100", "105") and not correct("100", "105.1")


def test_percent_suffix():
    assert correct("50%", "0.5")
    assert correct("0.5", "50%")
    assert not correct("50", "50%")  # 0.5 vs 50


def test_a_zero_prediction_compares_strings():
    assert not correct("0", "0.0")
    assert correct("0", "0")


def test_words_match_case_insensitively():
    assert correct("Yes", "yes")
    assert not correct("yes ", "yes")  # score() strips the answer, correct() does not


def test_score_strips_the_answer_and_takes_any_annotation():
    assert score(" 12 \n", ["7", "12.5"]) == 1.0
    assert score("Blue", ["red", "green"]) == 0.0
    with pytest.raises(ValueError):
        score("1", [])
