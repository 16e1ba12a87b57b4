"""Option ranking: the prompt, the continuations and the choice."""

import pytest

from qwenvl_edge.eval.ranking import choose, continuations, prompt


def test_prompt_layout():
    assert prompt("a.png", "Which?", ["red", "blue"], "") == (
        "<img>a.png</img>Context: N/A\nQuestion: Which?\nOptions: A. red\nB. blue\nAnswer:")
    assert prompt("a.png", "Q", ["x"], "It rains.").startswith("<img>a.png</img>Context: It rains.\n")


def test_continuations_are_space_letter():
    assert continuations(3) == [" A", " B", " C"]


def test_the_lowest_mean_loss_wins_the_first_on_ties():
    assert choose([2.5, 0.7, 1.0]) == 1
    assert choose([1.0, 0.5, 0.5]) == 1
    with pytest.raises(ValueError):
        choose([])
