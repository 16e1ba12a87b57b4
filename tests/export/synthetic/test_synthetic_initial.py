"""The training init at tiny dims: with both starts each image token's cell is readable from its
feature and the adapter's queries attend near their own cell; with neither, neither holds."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from qwenvl_edge.export.synthetic import initial, probes, scenes, training
from qwenvl_edge.image import preprocess

TINY = training.TrainConfig(hidden=128, layers=1, heads=2, ffn=128, vit_width=32, vit_layers=1, vit_heads=2)
UNIFORM = probes.mean_attended_distance(torch.ones(1, 1, 256, 256) / 256)


@pytest.fixture(scope="module")
def pixels():
    rng = random.Random("initial")
    return torch.from_numpy(np.stack([preprocess(scenes.draw(scenes.random_scene(rng)), TINY.image_size)
                                      for _ in range(12)]))


@torch.no_grad()
def test_with_the_starts_each_token_knows_its_cell_and_the_adapter_looks_near_it(pixels):
    model = initial.initial_model(TINY.model_config(512), 0, TINY.vit_position_scale, TINY.adapter_locality)
    assert probes.position_r2(model.transformer.visual(pixels)).min() > 0.8
    assert probes.mean_attended_distance(probes.adapter_attention(model, pixels)) < 0.4 * UNIFORM


@torch.no_grad()
def test_without_them_the_tokens_hold_the_pictures_average(pixels):
    model = initial.initial_model(TINY.model_config(512), 0, vit_position_scale=0.0, adapter_locality=0.0)
    assert probes.position_r2(model.transformer.visual(pixels)).max() < 0.5
    assert probes.mean_attended_distance(probes.adapter_attention(model, pixels)) > 0.8 * UNIFORM


def test_each_head_gets_every_quarter_of_its_frequencies():
    order = initial.head_frequency_order(32, 2)
    assert sorted(order) == list(range(32))
    assert order[:16] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]
