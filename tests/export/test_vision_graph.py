"""The vision graph written node by node against the PyTorch reference and against onnxruntime's own
int8 quantizer."""

import collections
import os

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from qwenvl_edge.export.checkpoint import CheckpointReader
from qwenvl_edge.export.vision_graph import DATA_FILE, FILE, quantize_per_channel, write_graph
from qwenvl_edge.export.vision_onnx import check_images, checkpoint_tensors, compare, encode


@pytest.fixture(scope="module")
def reader(tiny_fp):
    return CheckpointReader(tiny_fp)


@pytest.fixture(scope="module")
def graphs(reader, tmp_path_factory):
    """The tiny checkpoint's graph in both variants: {variant: directory}."""
    out = {}
    for variant in ("fp32", "int8"):
        out[variant] = tmp_path_factory.mktemp(variant)
        write_graph(reader.config.visual, checkpoint_tensors(reader), str(out[variant]), variant)
    return out


def test_fp32_graph_matches_the_reference_at_any_batch(graphs, tiny_fp_model):
    pixels = check_images(448)
    want = tiny_fp_model.encode_images(torch.from_numpy(pixels)).numpy()
    got = encode(str(graphs["fp32"] / FILE), pixels)
    assert compare(got, want)["max_rel_err"] < 1e-4
    one = encode(str(graphs["fp32"] / FILE), pixels[2:3])
    np.testing.assert_allclose(one, got[2:3], rtol=1e-4, atol=1e-5)


def test_int8_graph_stays_close_to_the_reference(graphs, tiny_fp_model, int8_vision_cosine_floor):
    pixels = check_images(448)
    want = tiny_fp_model.encode_images(torch.from_numpy(pixels)).numpy()
    assert compare(encode(str(graphs["int8"] / FILE), pixels), want)["cosine_min"] > int8_vision_cosine_floor


def test_graph_is_valid_small_and_has_no_resize(graphs):
    for directory in graphs.values():
        assert os.listdir(directory) == [FILE]  # tiny: no data file
        model = onnx.load(str(directory / FILE))
        onnx.checker.check_model(model)
        ops = {node.op_type for node in model.graph.node}
        assert "Resize" not in ops and "Upsample" not in ops
        assert [i.name for i in model.graph.input] == ["pixels"]
        assert [o.name for o in model.graph.output] == ["features"]


def test_int8_weights_are_what_onnxruntime_quantize_dynamic_makes_of_the_fp32_graph(graphs, tmp_path):
    """The same int8 weight bytes and scales: the streamed quantizer reproduces onnxruntime's."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    theirs_path = str(tmp_path / "theirs.onnx")
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs advice to the root logger
    quantize_dynamic(str(graphs["fp32"] / FILE), theirs_path, weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=False, op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True})
    ours = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(graphs["int8"] / FILE)).graph.initializer}
    theirs = {t.name: numpy_helper.to_array(t) for t in onnx.load(theirs_path).graph.initializer}
    weights = [name[: -len(".weight_q8")] for name in ours if name.endswith(".weight_q8")]
    assert len(weights) == 4 * 2 + 5  # two blocks, the adapter's kv/k/v/out projections, proj
    for w in weights:
        np.testing.assert_array_equal(ours[w + ".weight_q8"], theirs[w + ".weight_t_quantized"])
        np.testing.assert_array_equal(ours[w + ".weight_scale"], theirs[w + ".weight_t_scale"])


def test_int8_graph_runs_every_vit_product_in_integer_after_onnxruntime_fuses_it(graphs, reader, tmp_path):
    """After onnxruntime's optimizer: each weight MatMul is one DynamicQuantizeMatMul, each of a ViT
    block's two attention products one MatMulIntegerToFloat; only the adapter's two attention products
    stay float."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(graphs["int8"] / FILE), options, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)
    layers = reader.config.visual.layers
    assert ops["DynamicQuantizeMatMul"] == 4 * layers + 5
    assert ops["MatMulIntegerToFloat"] == 2 * layers
    assert ops["MatMul"] + ops["FusedMatMul"] == 2 and ops["MatMulInteger"] == 0


def test_quantize_per_channel_matches_onnxruntime_on_edge_cases():
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import quantize_data

    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 6)).astype(np.float32)
    w[:, 1] = 0  # all-zero column: scale 1
    w[:, 2] = np.linspace(-2.5, 2.5, 64) * (1 / 127)  # many exact halves after scaling
    w[:, 3] = np.abs(w[:, 3])  # one-signed columns
    w[:, 4] = -np.abs(w[:, 4])
    q, scale = quantize_per_channel(w)
    for c in range(w.shape[1]):
        zero, s, want = quantize_data(w[:, c], TensorProto.INT8, symmetric=True)
        assert zero == 0 and scale[c] == s
        np.testing.assert_array_equal(q[:, c], want)


def test_big_weights_go_to_one_page_aligned_data_file_as_they_come(reader, graphs, tmp_path):
    done = []
    files = write_graph(reader.config.visual, checkpoint_tensors(reader), str(tmp_path), "int8", external=True,
                        after_block=done.append)
    assert files == [FILE, DATA_FILE] and sorted(os.listdir(tmp_path)) == [FILE, DATA_FILE]
    assert done == [0, 1]
    model = onnx.load(str(tmp_path / FILE), load_external_data=False)
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and all(t.raw_data == b"" for t in external)
    offsets = [int(next(e.value for e in t.external_data if e.key == "offset")) for t in external]
    assert all(o % 4096 == 0 for o in offsets) and offsets == sorted(offsets)
    pixels = check_images(448)[:2]
    np.testing.assert_array_equal(encode(str(tmp_path / FILE), pixels), encode(str(graphs["int8"] / FILE), pixels))


def test_unknown_variant_is_refused(reader, tmp_path):
    with pytest.raises(ValueError, match="vision variant must be one of int8, fp32"):
        write_graph(reader.config.visual, checkpoint_tensors(reader), str(tmp_path), "int4")
