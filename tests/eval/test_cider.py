"""CIDEr on hand-checkable captions, with both tokenizers."""

import shutil

import pytest

from qwenvl_edge.eval.cider import PTB, SIMPLE, cider, simple_tokens

TOKENIZERS = [SIMPLE, pytest.param(PTB, marks=pytest.mark.skipif(shutil.which("java") is None, reason="no java"))]
REFS = {"d": ["a dog"], "c": ["A cat."]}


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
def test_hand_worked_scores(tokenizer):
    # Two images, so a word of only one image's references weighs log(2) and "a" (in both) weighs 0.
    # "a dog" for "a dog": cosine 1 for 1-grams ({dog}) and 2-grams ({a dog}), nothing of length 3
    # or 4 -> mean (1 + 1 + 0 + 0) / 4, times 10, no length penalty: 5.0.
    result = cider({"d": "a dog", "c": "a cat"}, REFS, tokenizer)
    assert result.tokenizer == tokenizer
    assert result.per_item == pytest.approx({"d": 5.0, "c": 5.0}) and result.score == pytest.approx(5.0)
    # "a cat" for the dog shares only "a", which weighs 0
    result = cider({"d": "a cat", "c": "A cat!"}, REFS, tokenizer)
    assert result.per_item == pytest.approx({"d": 0.0, "c": 5.0}) and result.score == pytest.approx(2.5)


def test_one_image_scores_zero():
    assert cider({1: "a dog"}, {1: ["a dog"]}, SIMPLE).score == 0.0


def test_simple_tokens():
    assert simple_tokens({1: ["A Dog's  ball, red."]}) == {1: ["a dogs ball red"]}


def test_ids_must_match():
    with pytest.raises(ValueError):
        cider({1: "x"}, {2: ["x"]}, SIMPLE)
    with pytest.raises(ValueError):
        cider({1: "x"}, {1: []}, SIMPLE)
