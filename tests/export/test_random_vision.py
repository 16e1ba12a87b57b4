"""Random vision weights: the graph and the reference module built from one seed are the same model."""

import dataclasses
import os

import numpy as np
import onnx
import pytest
import torch

from qwenvl_edge.export.random_vision import random_tensors, random_visual, write_vision
from qwenvl_edge.export.tiny import tiny_config
from qwenvl_edge.export.vision_graph import DATA_FILE, FILE
from qwenvl_edge.export.vision_onnx import check_images, compare
from qwenvl_edge.vision import VisionEncoder


@pytest.fixture(scope="module")
def four_blocks():
    return dataclasses.replace(tiny_config(256).visual, layers=4)


def test_graph_of_random_weights_computes_the_reference_module_of_the_same_seed(four_blocks, tmp_path):
    assert write_vision(four_blocks, str(tmp_path), variant="fp32", seed=3) == [FILE]
    pixels = check_images(four_blocks.image_size)
    got = VisionEncoder(os.path.join(tmp_path, FILE), threads=1).encode(pixels)
    with torch.no_grad():
        want = random_visual(four_blocks, seed=3)(torch.from_numpy(pixels)).numpy()
        shallow = random_visual(dataclasses.replace(four_blocks, layers=2), seed=3)(torch.from_numpy(pixels)).numpy()
    assert compare(got, want)["max_rel_err"] < 1e-4
    assert compare(shallow, want)["cosine_min"] < 0.9  # so the comparison sees a missing block


def test_every_block_has_weights_of_its_own(four_blocks):
    tensor = random_tensors(four_blocks, seed=0)
    blocks = [tensor(f"transformer.resblocks.{k}.mlp.c_fc.weight") for k in range(4)]
    assert all(not np.array_equal(a, b) for a, b in zip(blocks, blocks[1:]))
    np.testing.assert_array_equal(blocks[2], random_tensors(four_blocks, seed=0)("transformer.resblocks.2.mlp.c_fc.weight"))
    assert not np.array_equal(blocks[2], random_tensors(four_blocks, seed=1)("transformer.resblocks.2.mlp.c_fc.weight"))
    weight = blocks[0]
    assert abs(weight.std() * weight.shape[1] ** 0.5 - 1) < 0.05  # unit-variance outputs


def test_int8_graph_is_external_at_real_width():
    """At ViT-bigG width even two blocks exceed the inline limit, so the bench's graphs map their weights."""
    from qwenvl_edge.export.config import VisualConfig
    from qwenvl_edge.export.vision_graph import EXTERNAL_ABOVE, weight_bytes

    assert weight_bytes(dataclasses.replace(VisualConfig(), layers=2), "int8") > EXTERNAL_ABOVE
    assert weight_bytes(tiny_config(256).visual, "fp32") < EXTERNAL_ABOVE


def test_graph_loads_with_its_data_file(four_blocks, tmp_path):
    import qwenvl_edge.export.vision_graph as vg

    files = vg.write_graph(four_blocks, random_tensors(four_blocks), str(tmp_path), "int8", external=True)
    assert files == [FILE, DATA_FILE]
    model = onnx.load(os.path.join(tmp_path, FILE), load_external_data=False)
    integer = sum(n.op_type == "MatMulInteger" for n in model.graph.node)
    assert integer == (4 + 2) * four_blocks.layers + 5  # the weights', the attention's two products
    features = VisionEncoder(os.path.join(tmp_path, FILE), threads=1).encode(check_images(448)[:1])
    assert features.shape == (1, four_blocks.n_queries, four_blocks.output_dim) and np.isfinite(features).all()
