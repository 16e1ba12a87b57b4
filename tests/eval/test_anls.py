"""ANLS against hand-worked cases, the official script's quirks included."""

import pytest

from qwenvl_edge.eval.anls import levenshtein, score


@pytest.mark.parametrize("a, b, d", [("", "", 0), ("abc", "", 3), ("kitten", "sitting", 3), ("flaw", "lawn", 2)])
def test_levenshtein(a, b, d):
    assert levenshtein(a, b) == d == levenshtein(b, a)


def test_exact_and_case_and_whitespace_insensitive():
    assert score("Hello World", ["hello   world"]) == 1.0


def test_the_closest_annotation_counts():
    # "abcd" vs "abce": 1 edit over 4 -> 0.75; vs "zzzz": 0 after the threshold
    assert score("abcd", ["zzzz", "abce"]) == pytest.approx(0.75)


def test_below_the_threshold_is_zero_and_the_threshold_itself_stays():
    assert score("abc", ["abd"]) == pytest.approx(2 / 3)
    assert score("ab", ["xy"]) == 0.0
    assert score("ab", ["ax"]) == 0.5  # 1 - 1/2 is not below 0.5


def test_lengths_are_those_of_the_strings_as_given():
    # compared as "xb" vs "ab" (1 edit) but divided by len("   xb   ") = 8, not 2
    assert score("   xb   ", ["ab"]) == pytest.approx(1 - 1 / 8)


def test_lengths_are_measured_after_upper():
    # "ß".upper() == "SS": the length is 2, so 1 edit ("ß" -> "s") scores 0.5 instead of 0
    assert score("s", ["ß"]) == 0.5


def test_empty_strings():
    assert score("", [""]) == 1.0
    with pytest.raises(ValueError):
        score("x", [])
