"""The vision + adapter ONNX export against the PyTorch reference."""

import os

import numpy as np
import onnx
import pytest
import torch

from qwenvl_edge.export.checkpoint import CheckpointReader
from qwenvl_edge.export.vision_onnx import (DATA_FILE, FILE, check_images, compare, encode, export_vision,
                                             load_visual, write_fp32)


@pytest.fixture(scope="module")
def fp32_dir(tiny_fp, tmp_path_factory):
    out = tmp_path_factory.mktemp("vision")
    write_fp32(load_visual(CheckpointReader(tiny_fp)), str(out))
    return out


def test_fp32_graph_matches_the_reference_at_any_batch(fp32_dir, tiny_fp_model):
    pixels = check_images(448)
    want = tiny_fp_model.encode_images(torch.from_numpy(pixels)).numpy()
    got = encode(str(fp32_dir / FILE), pixels)
    assert compare(got, want)["max_rel_err"] < 1e-4
    one = encode(str(fp32_dir / FILE), pixels[2:3])
    np.testing.assert_allclose(one, got[2:3], rtol=1e-4, atol=1e-5)


def test_graph_is_valid_and_has_no_resize(fp32_dir):
    model = onnx.load(str(fp32_dir / FILE))
    onnx.checker.check_model(model)
    ops = {node.op_type for node in model.graph.node}
    assert "Resize" not in ops and "Upsample" not in ops
    assert [i.name for i in model.graph.input] == ["pixels"] and [o.name for o in model.graph.output] == ["features"]


def test_external_data_goes_to_one_file(tiny_fp, tmp_path, fp32_dir):
    files = write_fp32(load_visual(CheckpointReader(tiny_fp)), str(tmp_path), external=True)
    assert files == [FILE, DATA_FILE] and sorted(os.listdir(tmp_path)) == [FILE, DATA_FILE]
    assert os.path.getsize(tmp_path / FILE) < 100_000 < os.path.getsize(tmp_path / DATA_FILE)
    pixels = check_images(448)[:2]
    np.testing.assert_array_equal(encode(str(tmp_path / FILE), pixels), encode(str(fp32_dir / FILE), pixels))


def test_int8_variant_stays_close_to_fp32(tiny_int4, tmp_path, int8_vision_cosine_floor):
    info = export_vision(CheckpointReader(tiny_int4), str(tmp_path), variant="int8")
    assert os.listdir(tmp_path) == [FILE]  # no temporary files left
    p = info["parity"]
    assert p["fp32_max_rel_err_vs_reference"] < 1e-4
    assert p["cosine_min_vs_fp32"] > int8_vision_cosine_floor, p  # 0.9997 with VNNI, 0.993 on AVX2 alone
    assert info["variant"] == "int8" and info["input"] == "pixels" and info["output_shape"] == [None, 256, 256]
