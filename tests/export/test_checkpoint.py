import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from qwenvl_edge.errors import FormatError
from qwenvl_edge.export import gptq_format, names
from qwenvl_edge.export.checkpoint import CheckpointReader, load_float_state_dict
from qwenvl_edge.export.tiny import make_tiny


def test_bf16_safetensors_loads_every_tensor_as_float32(tiny_fp):
    cfg, state = load_float_state_dict(tiny_fp)
    assert set(state) == set(names.float_shapes(cfg))
    assert all(t.dtype == torch.float32 for t in state.values())
    stored = load_file(tiny_fp / "model.safetensors")
    assert stored["lm_head.weight"].dtype == torch.bfloat16
    assert torch.equal(state["lm_head.weight"], stored["lm_head.weight"].float())


@pytest.mark.parametrize("fmt, shards", [("safetensors", 3), ("bin", 1), ("bin", 2)])
def test_every_layout_reads_the_same_weights(tmp_path, fmt, shards):
    make_tiny(tmp_path, vocab=None, seed=1, fmt=fmt, shards=shards)
    _, a = load_float_state_dict(tmp_path)
    make_tiny(tmp_path / "single", vocab=None, seed=1)
    _, b = load_float_state_dict(tmp_path / "single")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if shards > 1:
        index = json.loads(next(tmp_path.glob("*.index.json")).read_text())
        assert len(set(index["weight_map"].values())) == shards


def test_int4_dequantises_to_exactly_the_gptq_formula(tiny_int4):
    cfg, state = load_float_state_dict(tiny_int4)
    stored = load_file(tiny_int4 / "model.safetensors")
    p = "transformer.h.1.mlp.c_proj."
    assert stored[p + "qweight"].dtype == torch.int32 and stored[p + "scales"].dtype == torch.float16
    layer = gptq_format.QuantizedLinear(*(stored[p + s].numpy() for s in ("qweight", "qzeros", "scales", "g_idx")))
    q = gptq_format.unpack_rows(layer.qweight).astype(np.float32)  # [in, out]
    s = layer.scales.astype(np.float32)[layer.g_idx]
    expected = (s * (q - 8.0)).T  # sym: every stored zero nibble is 7, the zero 8
    np.testing.assert_array_equal(state[p + "weight"].numpy(), expected)
    assert "transformer.h.0.mlp.w1.bias" not in state  # the AutoGPTQ zero bias is dropped
    assert torch.equal(state["transformer.h.0.attn.c_attn.bias"], stored["transformer.h.0.attn.c_attn.bias"].float())


def test_nonzero_bias_on_a_bias_free_gptq_layer_warns(tmp_path, tiny_int4):
    shutil.copytree(tiny_int4, tmp_path, dirs_exist_ok=True)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["transformer.h.0.mlp.w1.bias"] += 1
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.warns(UserWarning, match="transformer.h.0.mlp.w1.bias"):
        load_float_state_dict(tmp_path)


def _edit(directory, tmp_path, edit):
    shutil.copytree(directory, tmp_path, dirs_exist_ok=True)
    tensors = load_file(tmp_path / "model.safetensors")
    edit(tensors)
    save_file(tensors, tmp_path / "model.safetensors")
    return tmp_path


def test_a_wrong_shape_is_refused_naming_the_tensor(tmp_path, tiny_fp):
    def shrink(t):
        t["transformer.h.1.mlp.w2.weight"] = t["transformer.h.1.mlp.w2.weight"][:-1]
    with pytest.raises(FormatError, match=r"'transformer\.h\.1\.mlp\.w2\.weight' has shape \[383, 256\], expected \[384, 256\]"):
        load_float_state_dict(_edit(tiny_fp, tmp_path, shrink))


def test_a_missing_tensor_is_refused_naming_it(tmp_path, tiny_fp):
    with pytest.raises(FormatError, match="'transformer.visual.attn_pool.pos_embed' is missing"):
        load_float_state_dict(_edit(tiny_fp, tmp_path, lambda t: t.pop("transformer.visual.attn_pool.pos_embed")))


def test_a_missing_gptq_part_is_refused_naming_it(tmp_path, tiny_int4):
    with pytest.raises(FormatError, match="'transformer.h.0.attn.c_proj.qzeros' is missing"):
        load_float_state_dict(_edit(tiny_int4, tmp_path, lambda t: t.pop("transformer.h.0.attn.c_proj.qzeros")))


def test_a_float_qweight_is_refused(tmp_path, tiny_int4):
    def to_float(t):
        t["transformer.h.0.mlp.w1.qweight"] = t["transformer.h.0.mlp.w1.qweight"].float()
    with pytest.raises(FormatError, match="qweight' must be int32"):
        load_float_state_dict(_edit(tiny_int4, tmp_path, to_float))


@pytest.mark.parametrize("change, message", [
    ({"bits": 8}, "bits=8"),
    ({"quant_method": "awq"}, "'awq'"),
    ({"checkpoint_format": "marlin"}, "'marlin'"),
    ({"is_marlin_format": True}, "'marlin'"),
    ({"pack_dtype": "int16"}, "pack_dtype 'int16'"),
    ({"dynamic": {"-:.*mlp.*": {}}}, "per-module overrides"),
])
def test_unsupported_quantization_is_refused(tmp_path, tiny_int4, change, message):
    shutil.copytree(tiny_int4, tmp_path, dirs_exist_ok=True)
    qc = json.loads((tmp_path / "quantize_config.json").read_text())
    (tmp_path / "quantize_config.json").write_text(json.dumps({**qc, **change}))
    with pytest.raises(FormatError, match=message):
        load_float_state_dict(tmp_path)


def test_quantize_config_json_is_read_before_config_json(tmp_path, tiny_int4):
    shutil.copytree(tiny_int4, tmp_path, dirs_exist_ok=True)
    (tmp_path / "quantize_config.json").unlink()
    assert CheckpointReader(tmp_path).quantization["group_size"] == 128  # falls back to config.json


def test_quant_config_json_and_its_synonyms(tmp_path, tiny_int4):
    shutil.copytree(tiny_int4, tmp_path, dirs_exist_ok=True)
    qc = json.loads((tmp_path / "quantize_config.json").read_text())
    (tmp_path / "quantize_config.json").unlink()
    qc["w_bit"], qc["q_group_size"] = qc.pop("bits"), qc.pop("group_size")
    (tmp_path / "quant_config.json").write_text(json.dumps(qc))
    q = CheckpointReader(tmp_path).quantization
    assert (q["bits"], q["group_size"], q["_source"]) == (4, 128, "quant_config.json")


def test_missing_weights_and_shards_are_named(tmp_path, tiny_fp):
    shutil.copytree(tiny_fp, tmp_path / "a")
    (tmp_path / "a" / "model.safetensors").unlink()
    with pytest.raises(FormatError, match="no weights found"):
        CheckpointReader(tmp_path / "a")
    make_tiny(tmp_path / "b", seed=1, shards=2)
    (tmp_path / "b" / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FormatError, match="model-00002-of-00002.safetensors: weight file listed by the index is missing"):
        load_float_state_dict(tmp_path / "b")


def test_a_truncated_weight_file_is_a_format_error(tmp_path, tiny_fp):
    shutil.copytree(tiny_fp, tmp_path, dirs_exist_ok=True)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="model.safetensors"):
        load_float_state_dict(tmp_path)
