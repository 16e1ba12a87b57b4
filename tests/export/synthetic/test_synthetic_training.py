"""Training the synthetic-task model at tiny dims: a few steps lower the loss, sharing each image's
prefix gives the whole sequences' loss, and the checkpoint written is the trained model exactly."""

from __future__ import annotations

import dataclasses
import json
import os
import random

import pytest
import torch
import torch.nn.functional as F

from qwenvl_edge.prompts import ChatML
from qwenvl_edge.tokenizer import Tokenizer

from qwenvl_edge.export.reference_model import QwenVL
from qwenvl_edge.export.synthetic import initial, train, training
from qwenvl_edge.export.tiny import tiny_ranks

# hidden 128: the adapter's fixed 128-channel heads need a multiple of 128 (one head here)
TINY = training.TrainConfig(n_ranks=512, hidden=128, layers=1, heads=2, ffn=128, vit_width=32, vit_layers=1,
                            vit_heads=2, steps=3, batch_images=2, tasks_per_image=2, chat_fraction=0.5, lr=3e-3,
                            warmup=1)


@pytest.fixture(scope="module")
def setup(request):
    vocab = request.getfixturevalue("real_vocab")
    ranks = tiny_ranks(vocab, TINY.n_ranks)
    tok = Tokenizer(ranks)
    return vocab, tok, ChatML(tok), TINY.model_config(len(ranks))


def test_steps_on_one_batch_lower_its_loss(setup):
    _, tok, chatml, cfg = setup
    torch.manual_seed(0)
    model = initial.initial_model(cfg, 0)
    opt = training.optimizer(model, TINY)
    batch = training.draw_batch(random.Random(0), TINY, tok, chatml)
    losses = [training.train_step(model, opt, *batch, tok.special.endoftext, 3e-3)["loss"] for _ in range(4)]
    assert losses[-1] < losses[0]


def test_the_vision_side_learns_at_its_own_rate(setup):
    _, tok, chatml, cfg = setup
    model = initial.initial_model(cfg, 0)
    opt = training.optimizer(model, dataclasses.replace(TINY, vision_lr_scale=4.0))
    batch = training.draw_batch(random.Random(0), TINY, tok, chatml)
    training.train_step(model, opt, *batch, tok.special.endoftext, 1e-3)
    visual = {id(p) for p in model.transformer.visual.parameters() if p.requires_grad}
    rates = {id(p): group["lr"] for group in opt.param_groups for p in group["params"]}
    assert {rates[k] for k in visual} == {4e-3}
    assert {r for k, r in rates.items() if k not in visual} == {1e-3}
    assert len(rates) == len([p for p in model.parameters() if p.requires_grad])


def test_each_picture_gets_its_tasks_and_a_box_for_each_of_up_to_boxes_per_image_shapes(setup):
    _, tok, chatml, _ = setup
    cfg = dataclasses.replace(TINY, batch_images=6, tasks_per_image=2, boxes_per_image=2)
    pixels, seqs, image_of = training.draw_batch(random.Random(3), cfg, tok, chatml)
    for b in range(6):
        mine = [s for s, i in zip(seqs, image_of) if i == b]
        boxes = [s for s in mine if s.task == "refcoco"]
        assert len(mine) - len(boxes) == 2
        assert 1 <= len(boxes) <= 2 and len({tuple(s.ids) for s in boxes}) == len(boxes)  # distinct shapes


def test_the_loss_weighs_every_answer_token_alike(setup):
    _, tok, chatml, cfg = setup
    model = initial.initial_model(cfg, 2)
    batch = training.draw_batch(random.Random(4), TINY, tok, chatml)
    with torch.no_grad():
        per_sequence = training.loss_per_sequence(model, model.transformer.visual(batch[0]), *batch[1:],
                                                  tok.special.endoftext)
    tokens = torch.tensor([sum(t != training.IGNORE for t in s.targets) for s in batch[1]], dtype=torch.float)
    logged = training.train_step(model, training.optimizer(model, TINY), *batch, tok.special.endoftext, 0.0)["loss"]
    assert logged == pytest.approx(float((per_sequence * tokens).sum() / tokens.sum()), rel=1e-5)
    assert tokens.max() > tokens.min()  # a box's answer is longer than a VQA answer: the weights differ


@torch.no_grad()
def test_the_shared_prefix_loss_equals_the_whole_sequences_loss(setup):
    _, tok, chatml, cfg = setup
    model = initial.initial_model(cfg, 1)
    pixels, seqs, image_of = training.draw_batch(random.Random(1), dataclasses.replace(TINY, batch_images=3), tok, chatml)
    features = model.transformer.visual(pixels)
    shared = training.loss_per_sequence(model, features, seqs, image_of, tok.special.endoftext)
    for n, (s, b) in enumerate(zip(seqs, image_of)):
        hidden, _ = model.transformer(model.embed(torch.tensor([s.ids]), features[[b]]))
        targets = torch.tensor(s.targets)
        keep = targets != training.IGNORE
        assert float(shared[n]) == pytest.approx(float(F.cross_entropy(model.lm_head(hidden[0][keep]), targets[keep])),
                                                 rel=1e-5)


def test_the_checkpoint_written_is_the_trained_model_and_the_log_has_the_task_losses(setup, tmp_path):
    vocab, tok, chatml, _ = setup
    trained = train.train(str(tmp_path / "out"), TINY, vocab, threads=1, progress=False)
    loaded = QwenVL.from_pretrained(tmp_path / "out")
    pixels, seqs, image_of = training.draw_batch(random.Random(5), TINY, tok, chatml)
    with torch.no_grad():
        want = training.loss_per_sequence(trained, trained.transformer.visual(pixels), seqs, image_of,
                                          tok.special.endoftext)
        got = training.loss_per_sequence(loaded, loaded.transformer.visual(pixels), seqs, image_of,
                                         tok.special.endoftext)
        assert torch.equal(got, want)
    log = (tmp_path / "out" / train.LOG_FILE).read_text().splitlines()
    assert len(log) == 1 and all(f'"loss_{task}"' in log[0] for task in ("caption", "vqa", "refcoco"))
    assert 0 < json.loads(log[0])["image_spread"] < 1


def test_a_cached_training_is_reused(setup, tmp_path):
    path = train.cached(tmp_path, TINY, setup[0], threads=1, progress=False)
    stamp = os.path.getmtime(os.path.join(path, "model.safetensors"))
    assert train.cached(tmp_path, TINY, setup[0]) == path
    assert os.path.getmtime(os.path.join(path, "model.safetensors")) == stamp


def test_the_cache_key_follows_the_settings(setup):
    vocab = setup[0]
    assert train.cache_key(TINY, vocab) == train.cache_key(dataclasses.replace(TINY), vocab)
    assert train.cache_key(TINY, vocab) != train.cache_key(dataclasses.replace(TINY, seed=1), vocab)
    assert train.cache_key(TINY, vocab) != train.cache_key(TINY, None)
