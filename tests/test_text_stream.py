"""Streaming deltas never split a character and join to the whole text."""

import pytest

from qwenvl_edge.text_stream import TextStream
from qwenvl_edge.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def byte_level():
    return Tokenizer({bytes([b]): b for b in range(256)})


def test_multibyte_characters_are_held_until_complete(byte_level):
    text = "héllo 你好 🙂!"
    ids = byte_level.encode(text)
    stream = TextStream(byte_level)
    deltas = [stream.push([t]) for t in ids] + [stream.finish()]
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas)
    assert deltas[ids.index(0xE4)] == ""  # first byte of 你: nothing yet


def test_unfinished_character_becomes_a_replacement_at_the_end(byte_level):
    stream = TextStream(byte_level)
    assert stream.push([0x61, 0xE4, 0xBD]) == "a"
    assert stream.finish() == "\ufffd"


def test_special_tokens_are_dropped_but_box_tags_kept(byte_level):
    sp = byte_level.special
    stream = TextStream(byte_level)
    out = stream.push([sp.ref_start, 0x61, sp.ref_start + 1, sp.im_end, sp.endoftext]) + stream.finish()
    assert out == "<ref>a</ref>"
