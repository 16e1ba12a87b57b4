"""The deep vision graph built from a two-block template must be the exporter's graph at full depth."""

import collections
import dataclasses
import os

import numpy as np
import onnx
import pytest
import torch

from qwenvl_edge.export.random_vision import random_visual, write_vision
from qwenvl_edge.export.tiny import tiny_config
from qwenvl_edge.export.vision_onnx import DATA_FILE, FILE, FrozenVision, check_images, compare
from qwenvl_edge.vision import VisionEncoder


@pytest.fixture(scope="module")
def four_blocks():
    return dataclasses.replace(tiny_config(256).visual, layers=4)


def tied_reference(cfg):
    """The template's float model grown to cfg.layers blocks by repeating its last block's weights."""
    template = random_visual(dataclasses.replace(cfg, layers=2), seed=0)
    state = template.state_dict()
    for k in range(2, cfg.layers):
        state.update({name.replace("resblocks.1.", f"resblocks.{k}."): value for name, value in state.items()
                      if name.startswith("transformer.resblocks.1.")})
    model = random_visual(cfg, seed=1)
    model.load_state_dict(state)
    return model, template


def test_copies_of_the_last_block_compute_the_deeper_model(four_blocks, tmp_path, int8_vision_cosine_floor):
    files = write_vision(four_blocks, str(tmp_path), fill=lambda name, array, block: array)
    assert files == [FILE, DATA_FILE]
    pixels = check_images(four_blocks.image_size)
    got = VisionEncoder(os.path.join(tmp_path, FILE), threads=1).encode(pixels)
    deep, shallow = tied_reference(four_blocks)
    with torch.no_grad():
        want = FrozenVision(deep)(torch.from_numpy(pixels)).numpy()
        two_blocks = FrozenVision(shallow)(torch.from_numpy(pixels)).numpy()
    assert compare(got, want)["cosine_min"] > int8_vision_cosine_floor  # int8 vs float, as the exporter's own graph
    assert compare(two_blocks, want)["cosine_min"] < 0.9  # so the test sees a missing or mis-wired block


def test_every_block_has_its_own_int8_weights_in_the_data_file(four_blocks, tmp_path):
    write_vision(four_blocks, str(tmp_path))
    model = onnx.load(os.path.join(tmp_path, FILE), load_external_data=False)
    ops = collections.Counter(n.op_type for n in model.graph.node)
    assert ops["MatMulInteger"] >= 4 * four_blocks.layers and ops["LayerNormalization"] >= 2 * four_blocks.layers
    blocks = {n.name.split("/")[2] for n in model.graph.node if n.name.startswith("/transformer/resblocks.")}
    assert blocks == {f"resblocks.{k}" for k in range(four_blocks.layers)}
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    int8 = [t for t in external if t.data_type == onnx.TensorProto.INT8]
    assert len({t.name for t in int8}) == len(int8) >= 4 * four_blocks.layers  # + the adapter's
    offsets = [int(next(e.value for e in t.external_data if e.key == "offset")) for t in external]
    assert all(o % 4096 == 0 for o in offsets)
    loaded = onnx.load(os.path.join(tmp_path, FILE))  # the data file holds what the table says
    arrays = {t.name: onnx.numpy_helper.to_array(t) for t in loaded.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    copies = [a for name, a in arrays.items() if name.endswith(".block3")]
    originals = [a for name, a in arrays.items() if name.endswith(".block2")]
    assert copies and all(not np.array_equal(a, b) for a, b in zip(copies, originals))
    features = VisionEncoder(os.path.join(tmp_path, FILE), threads=1).encode(check_images(448)[:1])
    assert features.shape == (1, four_blocks.n_queries, four_blocks.output_dim) and np.isfinite(features).all()
