"""Boxes: parsing the model's text, pixel mapping on non-square images, prompt formatting, drawing."""

import numpy as np
import pytest
from PIL import Image

from qwenvl_edge.boxes import Box, Quad, draw, normalize, parse, strip_tags


def test_parse_refs_boxes_and_quads():
    text = ("<ref>the dog</ref><box>(451,379),(731,806)</box> and <ref>cats</ref><box>(1,2),(3,4)</box>"
            "<box>(5,6),(7,8)</box> then <box>(9,10),(11,12)</box> <quad>(1,1),(9,1),(9,9),(1,9)</quad>")
    assert parse(text) == [
        Box(451, 379, 731, 806, "the dog"), Box(1, 2, 3, 4, "cats"), Box(5, 6, 7, 8, "cats"),
        Box(9, 10, 11, 12, None), Quad(((1, 1), (9, 1), (9, 9), (1, 9)), None)]


def test_ref_must_directly_precede():
    assert parse("<ref>a</ref> text <box>(1,2),(3,4)</box>") == [Box(1, 2, 3, 4, None)]
    assert parse("<ref> Woman</ref><box>( 1 , 2 ),(3,4)</box>") == [Box(1, 2, 3, 4, "Woman")]


@pytest.mark.parametrize("text", [
    "<box>(1,2),(3)</box>", "<box>(1,2)</box>", "<box>(a,b),(c,d)</box>", "<box>(1,2),(3,4)", "<ref>x</ref><box>",
    "<quad>(1,2),(3,4)</quad>", "<box>(1,2),(3,4),(5,6)</box>", "<box>x(1,2),(3,4)</box>", "", "<<<>>>",
])
def test_malformed_output_never_raises_and_yields_nothing(text):
    assert parse(text) == []


def test_strip_tags_for_display():
    assert strip_tags("<ref>the dog</ref><box>(1,2),(3,4)</box> runs") == "the dog runs"
    assert strip_tags("a <box>(1,2),(3") == "a "


def test_pixel_mapping_on_a_non_square_image():
    box = Box(250, 500, 750, 1000)
    assert box.pixels(800, 200) == (200.0, 100.0, 600.0, 200.0)  # x by width, y by height
    assert box.pixels(999, 999, divisor=999) == (250.0, 500.0, 750.0, 1000.0)
    assert normalize((200, 100, 600, 199.9), 800, 200) == (250, 500, 750, 999)
    for x, y in [(0, 0), (123, 45), (799, 199)]:  # normalize then map back lands within one grid step
        nx, ny, _, _ = normalize((x, y, x, y), 800, 200)
        px, py, _, _ = Box(nx, ny, nx, ny).pixels(800, 200)
        assert 0 <= x - px < 0.8 + 1e-9 and 0 <= y - py < 0.2 + 1e-9
    with pytest.raises(ValueError):
        normalize((0, 0, 1, 1), 0, 10)


def test_draw_marks_the_right_pixels_on_a_wide_image():
    image = Image.new("RGB", (800, 200), (255, 255, 255))
    out = draw(image, [Box(250, 500, 750, 1000, "thing"), Box(0, 0, 100, 100)])
    a = np.asarray(out)
    assert out.size == image.size and image.getpixel((200, 150)) == (255, 255, 255)  # the input is untouched
    assert tuple(a[150, 200]) != (255, 255, 255)  # left edge of the first box at x = 200
    assert tuple(a[150, 400]) == (255, 255, 255)  # inside: not filled
    assert tuple(a[150, 100]) == (255, 255, 255)  # outside
