"""Read a Qwen-VL checkpoint directory in the Hugging Face layout without running its remote code.

Weights come from ``model.safetensors``, sharded ``model-0000N-of-0000M.safetensors`` with
``model.safetensors.index.json``, or ``pytorch_model.bin`` (sharded with
``pytorch_model.bin.index.json``). Tensors are read one at a time (safetensors by mmap, ``.bin`` shards
with ``torch.load(mmap=True)``), so a caller can stream a checkpoint larger than RAM.

A GPTQ checkpoint (``quantization_config`` in config.json, or a ``quantize_config.json``) is read in the
AutoGPTQ v1 layout and its five decoder Linears per block are dequantised to float (docs/model.md 8.4).
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Iterator

import torch

from . import gptq_format, names
from .config import QwenVLConfig
from qwenvl_edge.errors import FormatError

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"
BIN_INDEX = "pytorch_model.bin.index.json"
BIN_SINGLE = "pytorch_model.bin"
QUANTIZE_CONFIGS = ("quantize_config.json", "quant_config.json")  # AutoGPTQ's lookup order, then config.json


class CheckpointReader:
    """Lazy access to the tensors of one checkpoint directory, by name."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = os.fspath(directory)
        if not os.path.isdir(self.directory):
            raise FormatError(f"{self.directory}: not a directory")
        self.config = QwenVLConfig.from_dir(self.directory)
        self.quantization = self._read_quantization()
        self._open: dict[str, object] = {}  # file name -> open safetensors handle or loaded .bin dict
        self._where = self._index()  # tensor name -> file name

    def release(self) -> None:
        """Close the open weight files. Pages of a memory-mapped file count in the process's RSS while
        it stays mapped; a streaming exporter releases after each block so that RSS stays flat."""
        self._open.clear()

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def file_of(self, name: str) -> str:
        return self._where[name]

    def get(self, name: str) -> torch.Tensor:
        """The stored tensor, in its stored dtype."""
        if name not in self._where:
            raise FormatError(f"{self.directory}: tensor '{name}' is missing from the checkpoint")
        file = self._where[name]
        handle = self._handle(file)
        if file.endswith(".safetensors"):
            return handle.get_tensor(name)
        if name not in handle:
            raise FormatError(f"{file}: the index lists '{name}' but the shard does not hold it")
        return handle[name]

    def _handle(self, file: str):
        if file not in self._open:
            path = os.path.join(self.directory, file)
            if not os.path.isfile(path):
                raise FormatError(f"{path}: weight file listed by the index is missing")
            try:
                if file.endswith(".safetensors"):
                    from safetensors import safe_open

                    self._open[file] = safe_open(path, framework="pt")
                else:
                    self._open[file] = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
            except Exception as e:  # corrupt or truncated file: name it
                raise FormatError(f"{path}: cannot read weights ({e})") from e
        return self._open[file]

    def _index(self) -> dict[str, str]:
        d = self.directory
        for index_file in (SAFETENSORS_INDEX, BIN_INDEX):
            path = os.path.join(d, index_file)
            if os.path.isfile(path):
                try:
                    with open(path, encoding="utf-8") as f:
                        weight_map = json.load(f)["weight_map"]
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise FormatError(f"{path}: not a valid index ('weight_map' expected)") from e
                return dict(weight_map)
        path = os.path.join(d, SAFETENSORS_SINGLE)
        if os.path.isfile(path):
            from safetensors import safe_open

            try:
                with safe_open(path, framework="pt") as f:
                    return {k: SAFETENSORS_SINGLE for k in f.keys()}
            except Exception as e:
                raise FormatError(f"{path}: cannot read weights ({e})") from e
        if os.path.isfile(os.path.join(d, BIN_SINGLE)):
            return {k: BIN_SINGLE for k in self._handle(BIN_SINGLE)}
        raise FormatError(
            f"{d}: no weights found (expected {SAFETENSORS_SINGLE}, {SAFETENSORS_INDEX}, "
            f"{BIN_SINGLE} or {BIN_INDEX})"
        )

    def _read_quantization(self) -> dict | None:
        """quantize_config.json, quant_config.json, then config.json's quantization_config (docs/model.md
        8.7), with AutoGPTQ's synonyms w_bit -> bits and q_group_size -> group_size."""
        found, source = self.config.quantization, "config.json"
        for file in QUANTIZE_CONFIGS:
            path = os.path.join(self.directory, file)
            if os.path.isfile(path):
                try:
                    with open(path, encoding="utf-8") as f:
                        found, source = json.load(f), file
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise FormatError(f"{path}: not valid JSON ({e})") from e
                break
        if found is None:
            return None
        if not isinstance(found, dict):
            raise FormatError(f"{os.path.join(self.directory, source)}: the quantization config is not an object")
        found = dict(found)
        for synonym, key in (("w_bit", "bits"), ("q_group_size", "group_size")):
            if synonym in found and key not in found:
                found[key] = found.pop(synonym)
        found["_source"] = source
        return found


def check_shape(reader: CheckpointReader, name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != tuple(shape):
        raise FormatError(
            f"{reader.file_of(name)}: tensor '{name}' has shape {list(tensor.shape)}, "
            f"expected {list(shape)} from config.json"
        )


def gptq_settings(quantization: dict) -> tuple[int, bool]:
    """(group_size, v1) of a supported GPTQ config; refuses what we cannot decode (docs/model.md 8.7):
    other methods (AWQ packs along N in another nibble order), other bit widths, marlin's layout,
    packing words other than int32, and per-module overrides."""
    where = quantization.get("_source", "the quantization config")
    method = quantization.get("quant_method", quantization.get("method", "gptq"))
    if method != "gptq":
        raise FormatError(f"{where}: quantization method '{method}' is not supported (only GPTQ)")
    bits = quantization.get("bits")
    if bits != gptq_format.BITS:
        raise FormatError(f"{where}: GPTQ with bits={bits} is not supported (only 4-bit)")
    fmt = quantization.get("checkpoint_format", quantization.get("format", "gptq"))
    if fmt not in ("gptq", "gptq_v2") or quantization.get("is_marlin_format"):
        fmt = "marlin" if quantization.get("is_marlin_format") else fmt
        raise FormatError(f"{where}: GPTQ checkpoint_format '{fmt}' is not supported (gptq or gptq_v2)")
    pack = quantization.get("pack_dtype", "int32")
    if pack not in ("int32", "torch.int32"):
        raise FormatError(f"{where}: pack_dtype '{pack}' is not supported (only int32 words)")
    if quantization.get("dynamic"):
        raise FormatError(f"{where}: per-module overrides ('dynamic') are not supported")
    group_size = int(quantization.get("group_size", 128))
    return group_size, fmt == "gptq"


def iter_float_tensors(reader: CheckpointReader, dtype: torch.dtype = torch.float32) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of the float model (names.float_shapes), checked and cast to ``dtype``.

    A GPTQ checkpoint's quantized Linears come out dequantised; the bias AutoGPTQ stores on the four
    bias-free Linears is dropped (it should be zero: a warning says when it is not).
    """
    cfg = reader.config
    expected = names.float_shapes(cfg)
    if reader.quantization is None:
        for name, shape in expected.items():
            tensor = reader.get(name)
            check_shape(reader, name, tensor, shape)
            yield name, tensor.to(dtype)
        return

    group_size, v1 = gptq_settings(reader.quantization)
    stored = names.gptq_shapes(cfg, group_size)
    for name, shape in expected.items():
        if name in stored:
            tensor = reader.get(name)
            check_shape(reader, name, tensor, shape)
            yield name, tensor.to(dtype)
            continue
        prefix = name.rsplit(".", 1)[0]  # ...attn.c_attn
        if name.endswith(".bias"):  # only attn.c_attn has a real bias
            tensor = reader.get(name)
            check_shape(reader, name, tensor, stored[name])
            yield name, tensor.to(dtype)
            continue
        layer = read_gptq_linear(reader, prefix, group_size)
        yield name, torch.from_numpy(gptq_format.dequantize(layer, v1)).to(dtype)


def read_gptq_linear(reader: CheckpointReader, prefix: str, group_size: int) -> gptq_format.QuantizedLinear:
    """One stored GPTQ Linear (``prefix`` = "transformer.h.N.attn.c_attn"), checked against config.json's
    shapes: int32 words, float scales, g_idx within the groups. The bias AutoGPTQ keeps on the four
    bias-free Linears should be zero and is ignored like the original loader does (a warning says
    when it is not zero)."""
    stored = names.gptq_shapes(reader.config, group_size)
    parts = {}
    for suffix in names.GPTQ_SUFFIXES:
        name = f"{prefix}.{suffix}"
        tensor = reader.get(name)
        check_shape(reader, name, tensor, stored[name])
        if suffix == "scales" and not tensor.is_floating_point():
            raise FormatError(f"{reader.file_of(name)}: '{name}' must be float16, found {tensor.dtype}")
        if suffix in ("qweight", "qzeros", "g_idx") and tensor.dtype != torch.int32:
            raise FormatError(f"{reader.file_of(name)}: '{name}' must be int32, found {tensor.dtype}")
        parts[suffix] = tensor
    groups = stored[f"{prefix}.scales"][0]
    g_idx = parts["g_idx"].numpy()
    if g_idx.min() < 0 or g_idx.max() >= groups:
        raise FormatError(f"{reader.file_of(prefix + '.g_idx')}: '{prefix}.g_idx' points outside 0..{groups - 1}")
    if not prefix.endswith("attn.c_attn") and torch.any(parts["bias"] != 0):
        warnings.warn(f"'{prefix}.bias' is not all zeros; ignored like the original loader does "
                      f"(the float layer has no bias)", stacklevel=3)
    return gptq_format.QuantizedLinear(parts["qweight"].numpy(), parts["qzeros"].numpy(),
                                       parts["scales"].to(torch.float16).numpy(), g_idx)


def load_float_state_dict(directory: str | os.PathLike, dtype: torch.dtype = torch.float32
                          ) -> tuple[QwenVLConfig, dict[str, torch.Tensor]]:
    """The whole float state dict (names of names.float_shapes), validated. Holds it all in RAM: for
    tiny and test models; exporters stream with iter_float_tensors instead."""
    reader = CheckpointReader(directory)
    return reader.config, dict(iter_float_tensors(reader, dtype))
