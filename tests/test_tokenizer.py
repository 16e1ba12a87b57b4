"""The tokenizer against the test vectors of docs/model.md 6.6 (real vocabulary) and its image-span rules."""

import pytest

from qwenvl_edge.tokenizer import Tokenizer
from qwenvl_edge.vocab import IMAGE_SLOTS, VL_TAGS, SpecialIds

PAD = 151859
DEMO_SPAN = [151857, 100, 101, 109, 111, 46, 106, 112, 101, 103] + [PAD] * 247 + [151858]


@pytest.fixture(scope="module")
def real(real_vocab) -> Tokenizer:
    return Tokenizer.from_file(real_vocab)


@pytest.fixture(scope="module")
def byte_level() -> Tokenizer:
    """The 256 single bytes, in the real file's order not needed: any valid rank table works."""
    return Tokenizer({bytes([b]): b for b in range(256)})


@pytest.mark.parametrize("text, ids", [
    ("\n", [198]), ("system", [8948]), ("user", [872]), ("assistant", [77091]), ("Human:", [33975, 25]),
    (" A", [362]), (" B", [425]), ("You are a helpful assistant.", [2610, 525, 264, 10950, 17847, 13]),
    ("Picture 1: ", [24669, 220, 16, 25, 220]), (" Answer:", [21806, 25]), ("1000", [16, 15, 15, 15]),
    ("你好", [108386]),
    ("(451,379),(731,806)", [7, 19, 20, 16, 11, 18, 22, 24, 23547, 22, 18, 16, 11, 23, 15, 21, 8]),
    ("<ref>击掌</ref><box>(536,509),(588,602)</box>",
     [151851, 52726, 99933, 151852, 151853, 7, 20, 18, 21, 11, 20, 15, 24, 23547, 20, 23, 23, 11, 21, 15, 17, 8,
      151854]),
    ("<img>demo.jpeg</img>Generate the caption in English with grounding:",
     DEMO_SPAN + [31115, 279, 17256, 304, 6364, 448, 94741, 25]),
    ("<img>demo.jpeg</img><ref>the dog</ref><box>", DEMO_SPAN + [151851, 1782, 5562, 151852, 151853]),
])
def test_spec_vectors(real, text, ids):
    assert real.encode(text) == ids


def test_image_span_lengths(real):
    assert len(real.encode("<img>demo.jpeg</img>Generate the caption in English with grounding:")) == 266
    assert len(real.encode("<img>demo.jpeg</img><ref>the dog</ref><box>")) == 263


def test_decode_round_trips_text_and_image_spans(real):
    text = "Picture 1: <img>demo.jpeg</img>\n<ref>the dog</ref><box>(1,2),(3,4)</box> 你好"
    ids = real.encode(text)
    assert real.decode(ids) == text
    assert real.decode(ids, skip_special_tokens=True) == "Picture 1: demo.jpeg\nthe dog(1,2),(3,4) 你好"
    assert real.decode(ids, skip_special_tokens=True, keep_box_tags=True) == (
        "Picture 1: demo.jpeg\n<ref>the dog</ref><box>(1,2),(3,4)</box> 你好")
    assert real.image_refs(ids) == ["demo.jpeg"]


def test_allowed_special_controls_injection(real):
    typed = "<|im_start|>system"
    assert real.encode(typed)[0] == 151644  # default "all": the reference tokenizer's default
    as_text = real.encode(typed, allowed_special=set(VL_TAGS))  # what make_context passes
    assert 151644 not in as_text and real.decode(as_text) == typed


def test_nfc_normalisation(real):
    assert real.encode("Cafe\u0301") == real.encode("Caf\u00e9")


def test_image_ref_limits(byte_level):
    sp = byte_level.special
    ok = byte_level.encode("<img>" + "a" * 254 + "</img>")
    assert len(ok) == IMAGE_SLOTS + 2 and ok[-2] == sp.img_pad
    with pytest.raises(ValueError, match="255 bytes: at most 254"):
        byte_level.encode("<img>" + "a" * 255 + "</img>")


def test_an_img_tag_without_a_closing_tag_is_text(real):
    """The reference raises "Unclosed image token" here (docs/model.md 6.4); the tag is text instead."""
    sp = real.special
    question = "what does <img> mean in HTML?"
    assert real.encode(question) == real.encode(question, allowed_special=())
    assert sp.img_start not in real.encode(question)
    picture = "Picture 1: <img>a.png</img>"
    ids = real.encode(picture + "\n" + question)
    assert ids == real.encode(picture) + real.encode("\n" + question, allowed_special=())
    assert real.image_refs(ids) == ["a.png"] and ids.count(sp.img_start) == 1
    assert real.decode(ids) == picture + "\n" + question


def test_img_tags_the_reference_accepts_keep_its_ids(byte_level):
    sp = byte_level.special
    assert byte_level.encode("a </img> b")[2] == sp.img_end  # a lone closing tag stays special, as there
    first, second = byte_level.image_spans(byte_level.encode("<img>x</img> and <img>y</img><img> z"))
    assert (first[0], second[0]) == ("x", "y")


def test_multibyte_path_and_special_ids_follow_the_vocabulary(byte_level):
    assert byte_level.special == SpecialIds(256)
    ids = byte_level.encode("<img>图.png</img>")
    assert ids[1:8] == list("图.png".encode())
    assert byte_level.image_refs(ids) == ["图.png"]


def test_invalid_unicode_is_a_clear_error(byte_level):
    with pytest.raises(ValueError, match="not valid Unicode"):
        byte_level.encode("bad \ud800 surrogate")
    with pytest.raises(TypeError):
        byte_level.encode(b"bytes")


def test_decode_never_raises_on_model_output(byte_level):
    sp = byte_level.special
    ids = [72, 105, sp.n_vocab + 5, -1, sp.img_start, 0xE5]  # padding row id, lone <img>, half a character
    assert byte_level.decode(ids) == "Hi<img>\ufffd"
