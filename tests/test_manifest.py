"""The manifest's one validator: every field typed and in range, the bad one named."""

import dataclasses

import pytest

from qwenvl_edge import FORMAT_VERSION
from qwenvl_edge.errors import FormatError
from qwenvl_edge.manifest import Manifest

from manifests import small_manifest


def listed(manifest: Manifest) -> dict:
    raw = manifest.to_json()
    raw["files"] = {name: {"bytes": 1, "sha256": "ab" * 32} for name in ("vision.onnx", "decoder.qvw", "qwen.tiktoken")}
    return raw


def test_json_round_trip_is_exact():
    raw = listed(small_manifest())
    manifest = Manifest.from_json(raw, "m.json")
    assert manifest.to_json() == raw and manifest.format_version == FORMAT_VERSION
    assert manifest.decoder.config.num_layers == 2 and manifest.generation.stop_words == [[258], [257]]
    assert "export" not in raw  # absent for bundles not made by the exporter
    assert manifest.decoder.config.as_dict()["max_context"] == 1024


def _set(raw: dict, path: str, value) -> dict:
    *parents, leaf = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    ("decoder.config.num_layers", "32", "'decoder.config.num_layers' must be int, not str"),
    ("decoder.config.num_layers", True, "must be int, not bool"),
    ("decoder.config.max_context", 4611686018427387905, "'max_context' must be in 1..1048576"),
    ("decoder.config.head_dim", 17, "'num_heads' x head_dim must equal hidden_size"),
    ("decoder.config.rms_eps", _DELETE, "lacks 'decoder.config.rms_eps'"),
    ("decoder.lm_head", "int4", "'lm_head' must be 'f16' or 'int8'"),
    ("generation.chat_format", "alpaca", "'chat_format' must be 'chatml' or 'raw'"),
    ("generation.stop_words", [[1], "2"], "'generation.stop_words\\[1\\]' must be a list"),
    ("vision.variant", "int4", "'variant' must be 'int8' or 'fp32'"),
    ("vision.data_file", 3, "'vision.data_file' has a value of the wrong type"),
    ("tokenizer.n_vocab", 10, "'n_ranks' and n_vocab are out of range"),
    ("files.vision.onnx", None, "must be an object"),
    ("decoder.file", "other.qvw", "decoder.file = 'other.qvw' is not among the listed files"),
    ("vision.preprocess.image_size", 0, "'image_size' is out of range"),
])
def test_a_bad_field_is_named(path, value, message):
    raw = listed(small_manifest())
    if path.startswith("files."):
        raw["files"]["vision.onnx"] = value
    else:
        _set(raw, path, value)
    with pytest.raises(FormatError, match=message):
        Manifest.from_json(raw, "m.json")


def test_other_formats_and_versions_are_refused_first():
    raw = listed(small_manifest())
    with pytest.raises(FormatError, match=f"bundle format version {FORMAT_VERSION + 1}; this qwenvl-edge reads version "
                                          f"{FORMAT_VERSION}"):
        Manifest.from_json({**raw, "format_version": FORMAT_VERSION + 1}, "m.json")
    with pytest.raises(FormatError, match="not a qwenvl-edge bundle manifest"):
        Manifest.from_json([], "m.json")


def test_records_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        small_manifest().decoder.config.num_layers = 3
