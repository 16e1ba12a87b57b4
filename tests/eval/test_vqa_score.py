"""VQA accuracy against hand-worked cases, the official script's quirks included."""

import pytest

from qwenvl_edge.eval.vqa_score import digits_articles, normalize_answer, punctuation, score


@pytest.mark.parametrize("answer, normalized", [
    ("1.5", "1.5"),  # a period before a digit stays
    ("yes.", "yes"),
    ("5.", "5"),  # the "(?!<=\d)" look-ahead never protects a period after a digit
    ("Two", "2"),
    ("none", "0"),
    ("a dog", "dog"),
    ("The  Dog\tran\n", "dog ran"),
    ("dont", "don't"),
    ("somebody'd", "somebodyd"),  # the table's one backwards entry
    ("hello-world", "hello world"),  # no space next to '-': replaced by a space
    ("hello - world", "hello world"),  # a space next to '-': removed (then split/joined)
    ("1,000 ft.", "1000 ft"),  # a digit,digit comma anywhere removes all punctuation outright
    ("what?!", "what"),
])
def test_the_model_answer_is_normalized_like_the_official_script(answer, normalized):
    assert normalize_answer(answer) == normalized


def test_punctuation_tests_the_original_text_not_the_edited_one():
    # ';' becomes a space, which puts a space before '?' in the edited text; the official tests the
    # original "x;?y" (no space next to '?'), so '?' becomes a space too instead of going away
    assert punctuation("x;?y") == "x  y"


def test_the_period_strip_removes_at_most_32_periods():
    # re.UNICODE (32) lands in sub()'s count argument
    assert punctuation("." * 40) == "." * 8
    assert punctuation("x." * 33) == "x" * 32 + "x."


def test_digits_articles_lowercases_and_drops_articles():
    assert digits_articles("An Apple and THE three") == "apple and 3"


def test_ten_agreeing_annotators():
    assert score("yes", ["yes"] * 10) == 1.0
    assert score("no", ["yes"] * 10) == 0.0


def test_leave_one_out_average():
    # 2 of 10 say "dog": an annotator who said "dog" leaves 1 match (1/3), the 8 others leave 2 (2/3)
    answers = ["dog"] * 2 + ["cat"] * 8
    assert score("dog", answers) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    # 3 matches: the 3 who said it leave 2 (2/3), the other 7 leave 3 (1)
    assert score("dog", ["dog"] * 3 + ["cat"] * 7) == pytest.approx((3 * (2 / 3) + 7) / 10)


def test_annotations_that_agree_are_not_normalized_at_all():
    # all ten agree: compared as they are, so "Two" never equals the normalized "2"
    assert score("two", ["Two"] * 10) == 0.0
    assert score("yes.", ["yes."] * 10) == 0.0  # the model answer loses its period, the annotations keep it
    assert score("yes", ["yes"] * 10) == 1.0


def test_annotations_that_differ_get_punctuation_only():
    # they differ: punctuation is applied ("yes." -> "yes"), digits/articles are not ("Two" stays)
    answers = ["yes."] * 9 + ["no"]
    assert score("yes", answers) == 1.0
    assert score("2", ["Two"] * 9 + ["three"]) == 0.0
    assert score("a dog", ["a dog"] * 9 + ["cat"]) == 0.0  # the model's "dog" vs the annotations' "a dog"


def test_needs_annotations():
    with pytest.raises(ValueError):
        score("yes", [])


def test_a_single_annotation_always_scores_zero():
    assert score("yes", ["yes"]) == 0.0  # no other annotator to agree with
    assert score("yes", ["yes"] * 4) == 1.0
