"""Replies for people: tags stripped as the text streams, boxes listed with their pixels."""

import pytest

from qwenvl_edge import boxes
from qwenvl_edge.readable import TagFree, box_lines

REPLY = "<ref>The dog</ref><box>(100,200),(500,800)</box> chases <ref>a ball</ref><box>(1,2),(3,4)</box>. 2 < 3"


def streamed(text, sizes):
    """TagFree's output for ``text`` cut into pieces of the given sizes (cycled)."""
    stream, out, i, n = TagFree(), [], 0, 0
    while i < len(text):
        size = sizes[n % len(sizes)]
        out.append(stream.push(text[i : i + size]))
        i, n = i + size, n + 1
    return out + [stream.finish()]


@pytest.mark.parametrize("sizes", [[1], [2], [3, 1], [7], [len(REPLY)]])
def test_streamed_pieces_join_to_the_text_without_tags(sizes):
    out = streamed(REPLY, sizes)
    assert "".join(out) == boxes.strip_tags(REPLY) == "The dog chases a ball. 2 < 3"
    assert not any(tag in piece for piece in out for tag in ("<ref", "ref>", "<box", "box>", "(1"))


def test_text_is_shown_as_soon_as_no_tag_can_be_open():
    stream = TagFree()
    assert stream.push("Hello <") == "Hello "  # "<" may begin a tag
    assert stream.push("b") == ""
    assert stream.push("ig> world") == "<big> world"
    assert stream.push("<box>(1,2)") == ""  # an open box waits for its end
    assert stream.push(",(3,4)</box>!") == "!"
    assert stream.push("<ref>cut off") == "" and stream.finish() == "<ref>cut off"  # as strip_tags leaves it


def test_box_lines_give_corners_of_1000_and_pixels():
    shapes = boxes.parse(REPLY) + [boxes.Quad(((0, 0), (1000, 0), (1000, 500), (0, 500)))]
    assert box_lines(shapes, (640, 480)) == [
        "The dog: (100,200),(500,800) of 1000 -> pixels (64,96),(320,384)",
        "a ball: (1,2),(3,4) of 1000 -> pixels (1,1),(2,2)",
        "(no ref): (0,0),(1000,0),(1000,500),(0,500) of 1000 -> pixels (0,0),(640,0),(640,240),(0,240)"]
    assert box_lines(shapes[:1], None, "the dog") == ["The dog: (100,200),(500,800) of 1000"]
    assert box_lines([boxes.Box(1, 2, 3, 4)], None, "the dog") == ["the dog: (1,2),(3,4) of 1000"]
