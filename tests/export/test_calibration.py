"""Calibration inputs: token embeddings with the vision encoder's rows in the image slots."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from qwenvl_edge.export import calibration
from qwenvl_edge.tokenizer import Tokenizer
from qwenvl_edge.vocab import IMAGE_SLOTS

HIDDEN = 8


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer({bytes([b]): b for b in range(256)})


def fake_encoder(calls):
    def encode(pixels):
        calls.append(pixels.shape)
        # one distinct value per image: its mean pixel, so rows can be traced back
        return np.broadcast_to(pixels.mean(axis=(1, 2, 3))[:, None, None], (len(pixels), IMAGE_SLOTS, HIDDEN)).copy()
    return encode


def wte_for(tokenizer):
    return torch.arange(tokenizer.n_vocab, dtype=torch.float32)[:, None].repeat(1, HIDDEN)


@pytest.mark.parametrize("chat_format", ["chatml", "raw"])
def test_builtin_set_mixes_text_and_images(tokenizer, chat_format):
    samples = calibration.builtin_samples(chat_format)
    with_images = [s for s in samples if s.images]
    assert len(with_images) >= 5 and len(samples) - len(with_images) >= 10
    assert all(("<|im_start|>" in s.text) == (chat_format == "chatml") for s in samples)
    calls = []
    xs = calibration.embeddings(samples, tokenizer, wte_for(tokenizer), fake_encoder(calls), 448)
    assert len(xs) == len(samples) and len(calls) == len(with_images)
    sp = tokenizer.special
    for sample, x in zip(samples, xs):
        ids = tokenizer.encode(sample.text)
        assert x.shape == (1, len(ids), HIDDEN) and x.dtype == torch.float32
        for ref, start in tokenizer.image_spans(ids):
            rows = x[0, start + 1 : start + 1 + IMAGE_SLOTS]
            assert torch.all(rows == rows[0]) and rows[0, 0] < 3  # a normalised-pixel mean, not a token id
            assert x[0, start, 0] == sp.img_start and x[0, start + IMAGE_SLOTS + 1, 0] == sp.img_end
    pictures = [np.asarray(img) for s in with_images for img in s.images.values()]
    assert len({p.tobytes() for p in pictures}) == len(pictures)  # all different


def test_truncation_never_cuts_an_image_span(tokenizer):
    image = Image.new("RGB", (32, 32), (10, 200, 30))
    sample = calibration.Sample("a" * 100 + "<img>x.png</img> and more text", {"x.png": image})
    x, = calibration.embeddings([sample], tokenizer, wte_for(tokenizer), fake_encoder([]), 448, max_tokens=200)
    assert x.shape[1] == 100  # the span did not fit whole: cut before <img>


def test_user_files_jsonl_and_text(tmp_path, tokenizer):
    Image.new("RGB", (50, 40), (255, 0, 0)).save(tmp_path / "red.png")
    (tmp_path / "c.jsonl").write_text(
        json.dumps({"text": "Picture 1: <img>red.png</img>\nWhat colour?"}) + "\n\n" + json.dumps({"text": "plain"}) + "\n")
    samples = calibration.read_samples(tmp_path / "c.jsonl")
    assert [s.text.split(":")[0] for s in samples] == ["Picture 1", "plain"]
    assert samples[0].images["red.png"].size == (50, 40)
    (tmp_path / "c.txt").write_text("first sample\nstill first\n\n\nsecond\n")
    assert [s.text for s in calibration.read_samples(tmp_path / "c.txt")] == ["first sample\nstill first", "second"]


@pytest.mark.parametrize("content, name, message", [
    ('{"txt": 1}\n', "c.jsonl", "line 1: expected a JSON object"),
    ("<img>absent.png</img>", "c.txt", "cannot open calibration image 'absent.png'"),
    ("\n\n", "c.txt", "no calibration samples"),
])
def test_bad_user_files_are_named(tmp_path, content, name, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        calibration.read_samples(tmp_path / name)
