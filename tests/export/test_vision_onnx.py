"""The vision export step: streamed from the checkpoint and checked against the streamed reference."""

import os

import numpy as np
import pytest
import torch

from qwenvl_edge.export.checkpoint import CheckpointReader
from qwenvl_edge.export.manifest_builder import preprocess
from qwenvl_edge.export.vision_graph import FILE
from qwenvl_edge.export.vision_onnx import check_images, export_vision, reference_features


def test_streamed_reference_is_the_reference_and_releases_the_checkpoint_per_block(tiny_fp, tiny_fp_model,
                                                                                   monkeypatch):
    reader = CheckpointReader(tiny_fp)
    released = []
    monkeypatch.setattr(reader, "release", lambda: released.append(True))
    pixels = check_images(448)[:2]
    blocks = []
    got = reference_features(reader, pixels, blocks.append)
    want = tiny_fp_model.encode_images(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert blocks == [0, 1] and len(released) == 2


@pytest.mark.parametrize("variant", ["int8", "fp32"])
def test_export_records_parity_against_the_reference(tiny_int4, tmp_path, variant, int8_vision_cosine_floor):
    reader = CheckpointReader(tiny_int4)
    info = export_vision(reader, str(tmp_path), preprocess(reader.config), variant=variant)
    assert os.listdir(tmp_path) == [FILE]  # nothing else left behind
    p = info.parity
    if variant == "fp32":
        assert p["max_rel_err_vs_reference"] < 1e-4
    assert p["cosine_min_vs_reference"] > int8_vision_cosine_floor, p  # 0.9997 with VNNI, 0.993 on AVX2 alone
    assert info.variant == variant and info.input == "pixels" and info.output_shape == [None, 256, 256]
    assert info.data_file is None and info.parity_images == 4
