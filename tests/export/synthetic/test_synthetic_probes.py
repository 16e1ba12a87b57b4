"""The position probes read what they should: a cell written linearly into the features is read back,
noise is not; an attention on its own cell is at distance 0, a uniform one has entropy ln n."""

from __future__ import annotations

import math

import torch

from qwenvl_edge.export.synthetic import probes


def test_a_linear_code_of_the_cell_is_read_back_and_noise_is_not():
    gen = torch.Generator().manual_seed(0)
    code = torch.from_numpy(probes.cells(256)).float() @ torch.randn(2, 32, generator=gen)
    noise = torch.randn(9, 256, 32, generator=gen)
    assert probes.position_r2(code + 0.1 * noise).min() > 0.95
    assert probes.position_r2(noise).max() < 0.05


def test_attention_on_its_own_cell_is_at_distance_zero_and_uniform_attention_is_spread():
    own = torch.eye(256)[None, None]
    uniform = torch.full((1, 1, 256, 256), 1 / 256)
    assert probes.mean_attended_distance(own) == 0.0
    assert 8.0 < probes.mean_attended_distance(uniform) < 8.6
    assert math.isclose(probes.attention_entropy(uniform), math.log(256), rel_tol=1e-5)
    assert probes.attention_entropy(own) < 1e-6
