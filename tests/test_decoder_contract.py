"""The bundle contract as the native core holds it: the decoder config's keys, the decoder file's tensor
table (every writer held to it), NTK alpha, the one FormatError, and a manifest that contradicts its
decoder file."""

import dataclasses
import json
import math
import shutil
import typing

import numpy as np
import pytest

import qwenvl_edge
from qwenvl_edge import _core
from qwenvl_edge.bench import synthetic_decoder
from qwenvl_edge.errors import FormatError
from qwenvl_edge.export.checkpoint import CheckpointReader
from qwenvl_edge.export.decoder_file import (DecoderFileWriter, decoder_config, decoder_tensors, read_decoder_file,
                                             write_decoder_file)
from qwenvl_edge.export.tiny import make_tiny
from qwenvl_edge.manifest import DecoderConfig

from manifests import TINY_DECODER as TINY


def test_the_manifest_spells_the_decoder_config_as_the_core_does():
    assert list(typing.get_type_hints(DecoderConfig).items()) == list(_core.DECODER_CONFIG_KEYS.items())


def held_to_the_table(path, config: DecoderConfig, lm_head: str) -> None:
    """The file records ``config`` and holds exactly the core's tensors (optional ones allowed), in its order."""
    recorded, tensors = read_decoder_file(path)
    assert recorded == config.as_dict()
    table = _core.decoder_tensors(config.as_dict(), lm_head)
    required = [name for name, _, _, needed in table if needed]
    assert set(required) <= set(tensors)
    expected = [(name, dtype, tuple(shape)) for name, dtype, shape, needed in table if needed or name in tensors]
    dtypes = {"f32": np.float32, "f16": np.float16, "i8": np.int8, "i32": np.int32, "q4block": np.uint8}
    assert [(name, dtype, tuple(tensors[name].shape)) for name, dtype, _ in expected] == expected
    assert all(tensors[name].dtype == dtypes[dtype] for name, dtype, _ in expected)
    assert list(tensors) == [name for name, _, _ in expected]


def test_the_exporter_writes_the_cores_table(tiny_bundle):
    manifest = qwenvl_edge.load(tiny_bundle, threads=1).bundle.manifest
    held_to_the_table(tiny_bundle / "decoder.qvw", manifest.decoder.config, manifest.decoder.lm_head)


@pytest.mark.parametrize("lm_head, act_order", [("int8", False), ("f16", True)])
def test_the_exporters_int8_head_and_act_order_files_follow_the_table(tmp_path, lm_head, act_order):
    make_tiny(tmp_path / "ckpt", seed=5, int4=True, act_order=act_order, sym=not act_order)
    reader = CheckpointReader(tmp_path / "ckpt")
    config = decoder_config(reader.config, max_context=128)
    write_decoder_file(tmp_path / "d.qvw", config, decoder_tensors(reader, lm_head), lm_head)
    held_to_the_table(tmp_path / "d.qvw", config, lm_head)
    _, tensors = read_decoder_file(tmp_path / "d.qvw")
    assert any(name.endswith(".perm") for name in tensors) == act_order
    _core.Decoder(str(tmp_path / "d.qvw"), config.as_dict(), threads=1).prefill_ids(np.arange(4))


@pytest.mark.parametrize("lm_head", ["f16", "int8"])
def test_the_bench_writes_the_cores_table(tmp_path, lm_head):
    synthetic_decoder.write_ours(str(tmp_path / "d.qvw"), TINY, lm_head)
    held_to_the_table(tmp_path / "d.qvw", TINY, lm_head)
    logits = _core.Decoder(str(tmp_path / "d.qvw"), TINY.as_dict(), threads=1).prefill_ids(np.arange(4))
    assert np.isfinite(logits).all()


def test_the_writer_refuses_what_the_core_would_not_read(tmp_path):
    with pytest.raises(ValueError, match="'h.2.ln_1' is not a tensor"):
        with DecoderFileWriter(tmp_path / "d.qvw", TINY) as writer:
            writer.add("h.2.ln_1", np.ones(256, np.float32))
    with pytest.raises(ValueError, match=r"tensor 'ln_f' is float16 \(256,\), the decoder file holds it as f32"):
        with DecoderFileWriter(tmp_path / "d.qvw", TINY) as writer:
            writer.add("ln_f", np.ones(256, np.float16))
    with pytest.raises(ValueError, match="lacks .* tensor"):
        with DecoderFileWriter(tmp_path / "d.qvw", TINY) as writer:
            writer.add("ln_f", np.ones(256, np.float32))
    with pytest.raises(ValueError, match="lm_head must be 'f16' or 'int8'"):
        _core.decoder_tensors(TINY.as_dict(), "q4")
    with pytest.raises(ValueError, match="num_heads x head_dim = 4 x 32 must equal hidden_size = 256"):
        _core.decoder_tensors({**TINY.as_dict(), "head_dim": 32})


def old_python_ntk_alpha(prefill_len: int, seq_length: int) -> float:
    """The formula session.py held before the core became its one source."""
    context = math.log(prefill_len / seq_length, 2) + 1
    return max(2 ** math.ceil(context) - 1, 1)


@pytest.mark.parametrize("prefill, seq", [(1, 2048), (300, 2048), (2048, 2048), (2049, 2048), (4096, 2048),
                                          (4097, 2048), (8193, 2048), (100, 32), (33, 32), (5, 3), (1000, 7)])
def test_ntk_alpha_of_the_core_equals_the_former_python_formula(prefill, seq):
    assert _core.ntk_alpha(prefill, seq) == old_python_ntk_alpha(prefill, seq)


def test_ntk_alpha_refuses_bad_lengths_in_one_line():
    with pytest.raises(ValueError, match="prefill_len = 0 is outside 1"):
        _core.ntk_alpha(0, 2048)
    with pytest.raises(TypeError, match="seq_length must be an int, not float"):
        _core.ntk_alpha(10, 2048.0)


def test_there_is_one_format_error():
    assert _core.FormatError is qwenvl_edge.FormatError is FormatError


def copy_bundle(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_a_corrupt_decoder_file_is_a_qwenvl_edge_format_error(tiny_bundle, tmp_path):
    bundle = copy_bundle(tiny_bundle, tmp_path / "b")
    data = bytearray((bundle / "decoder.qvw").read_bytes())
    data[8:12] = (99).to_bytes(4, "little")  # another format version; the size stays what the manifest says
    (bundle / "decoder.qvw").write_bytes(bytes(data))
    with pytest.raises(qwenvl_edge.FormatError, match=r"decoder.qvw: format version 99, this runtime reads"):
        qwenvl_edge.load(bundle, threads=1)


@pytest.mark.parametrize("change, named", [
    ({"num_layers": 1}, "written for num_layers = 2, but the config given .* says num_layers = 1"),
    ({"num_heads": 8, "head_dim": 32}, "written for num_heads = 4, but the config given .* says num_heads = 8"),
])
def test_a_manifest_that_contradicts_its_decoder_file_is_refused(tiny_bundle, tmp_path, change, named):
    bundle = copy_bundle(tiny_bundle, tmp_path / "b")
    raw = json.loads((bundle / "manifest.json").read_text())
    raw["decoder"]["config"].update(change)
    (bundle / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(qwenvl_edge.FormatError, match="decoder.qvw: " + named):
        qwenvl_edge.load(bundle, threads=1)


def test_the_config_dataclass_round_trips_through_the_file(tmp_path):
    synthetic_decoder.write_ours(str(tmp_path / "d.qvw"), dataclasses.replace(TINY, rms_eps=1e-5, logn_attn=False))
    recorded, _ = read_decoder_file(tmp_path / "d.qvw")
    assert DecoderConfig(**recorded) == dataclasses.replace(TINY, rms_eps=1e-5, logn_attn=False)
