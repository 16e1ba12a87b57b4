"""The release-layout writer: the plan at the real dims (no weights written), the files at tiny dims."""

import json

import numpy as np
import pytest
import torch

from qwenvl_edge.export import names
from qwenvl_edge.export.checkpoint import CheckpointReader, iter_float_tensors
from qwenvl_edge.export.config import QwenVLConfig
from qwenvl_edge.export.release_checkpoint import plan_shards, state_dict_order, write_release
from qwenvl_edge.export.tiny import tiny_config
from qwenvl_edge.vocab import RELEASE_RANKS


@pytest.mark.parametrize("int4, total, shards", [(False, 19_313_870_336, 10), (True, 9_731_786_240, 5)])
def test_release_plan_has_the_published_byte_totals_and_shard_counts(int4, total, shards):
    entries = state_dict_order(QwenVLConfig(), int4)
    assert len(entries) == (1461 if int4 else 853)
    assert sum(e.nbytes for e in entries) == total  # the totals of the releases' index files (docs/model.md 8.3, 10)
    plan = plan_shards(entries)
    assert len(plan) == shards and all(sum(e.nbytes for e in s) <= 2 * 10**9 for s in plan)
    assert entries[0].name == "transformer.wte.weight" and entries[-1].name == "lm_head.weight"


def small():
    return tiny_config(RELEASE_RANKS, vocab_size=151936)


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_float_release_layout_reads_back(tmp_path, fmt):
    files = write_release(tmp_path, fmt=fmt, cfg=small())
    stem = "pytorch_model" if fmt == "bin" else "model"
    index = json.loads((tmp_path / f"{stem}.{'bin' if fmt == 'bin' else 'safetensors'}.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == files
    assert files[0] == f"{stem}-00001-of-{len(files):05d}.{fmt}"
    reader = CheckpointReader(tmp_path)
    assert reader.quantization is None and reader.config.torch_dtype == "bfloat16"
    assert reader.get("transformer.h.0.mlp.w1.weight").dtype == torch.bfloat16
    tensors = dict(iter_float_tensors(reader))
    assert set(tensors) == set(names.float_shapes(reader.config))
    w = tensors["transformer.h.1.attn.c_proj.weight"]
    assert abs(float(w.std()) * w.shape[1] ** 0.5 - 1) < 0.05
    assert json.loads((tmp_path / "generation_config.json").read_text())["chat_format"] == "chatml"


def test_int4_release_layout_reads_back_as_gptq_v1(tmp_path):
    write_release(tmp_path, int4=True, fmt="safetensors", cfg=small(), chat=True)
    reader = CheckpointReader(tmp_path)
    assert reader.quantization["bits"] == 4 and reader.quantization["_source"] == "quantize_config.json"
    assert reader.config.quantization["quant_method"] == "gptq" and reader.config.torch_dtype == "float16"
    assert reader.get("transformer.h.0.attn.c_attn.qzeros").flatten()[0] == 0x77777777
    np.testing.assert_array_equal(reader.get("transformer.h.0.mlp.c_proj.g_idx").numpy(),
                                  np.arange(reader.config.ffn_dim) // 128)
    assert reader.get("transformer.visual.proj").dtype == torch.float16
    tensors = dict(iter_float_tensors(reader))  # dequantised: finite, of the planned scale
    w = tensors["transformer.h.1.mlp.w1.weight"]
    assert torch.isfinite(w).all() and 0.5 < float(w.std()) * w.shape[1] ** 0.5 < 2


def test_int4_release_is_safetensors_only(tmp_path):
    with pytest.raises(ValueError, match="safetensors only"):
        write_release(tmp_path, int4=True, fmt="bin", cfg=small())
