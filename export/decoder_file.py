"""Write the native decoder's weight file (docs/bundle.md 4, cpp/include/qwenvl_edge/weights_file.h) from a
checkpoint.

Layout: a 64-byte header (magic, format version, tensor count, data offset, file size, config count), a
64-byte entry per config key (the decoder config the file is written for), a 128-byte entry per tensor
(name, dtype, shape, offset, size), then the tensors, each 64-byte aligned. Which tensors, with which
dtypes and shapes, is the native core's table (``qwenvl_edge._core.decoder_tensors``), and so are the
config keys (``_core.DECODER_CONFIG_KEYS``): the writer refuses anything else.

From a GPTQ checkpoint the quantized tensors are imported as they are (repacked, not requantized); from
a float checkpoint this module quantizes by round-to-nearest (the GPTQ algorithm is the exporter's).
"""

from __future__ import annotations

import os
import struct
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from qwenvl_edge import FORMAT_VERSION, _core
from qwenvl_edge.errors import FormatError
from qwenvl_edge.manifest import DecoderConfig

from . import gptq_format, names
from .checkpoint import CheckpointReader, gptq_settings, read_gptq_linear
from .config import QwenVLConfig
from .q4_repack import GROUP, repack

HEADER = struct.Struct("<8sIIQQI28x")
CONFIG_ENTRY = struct.Struct("<56s8s")
ENTRY = struct.Struct("<80sII3QQQ")
ALIGN = 64
# The numpy form of each dtype of the core's table (q4block tensors are uint8 [n/16, k/128, 1072]).
NUMPY_DTYPES = {"f32": np.dtype(np.float32), "f16": np.dtype(np.float16), "i8": np.dtype(np.int8),
                "i32": np.dtype(np.int32), "q4block": np.dtype(np.uint8)}
TORCH_DTYPES = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32}


def decoder_config(cfg: QwenVLConfig, max_context: int = 8192) -> DecoderConfig:
    """The native decoder's hyperparameters from config.json's (the one place the two spellings meet)."""
    return DecoderConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_layers=cfg.num_hidden_layers,
        num_heads=cfg.num_attention_heads, head_dim=cfg.head_dim, ffn_dim=cfg.ffn_dim,
        rms_eps=cfg.layer_norm_epsilon, rope_base=cfg.rotary_emb_base, seq_length=cfg.seq_length,
        dynamic_ntk=cfg.use_dynamic_ntk, logn_attn=cfg.use_logn_attn, max_context=max_context)


def _config_entries(config: DecoderConfig) -> list[bytes]:
    """The config as the file records it: int and bool keys as int64, float keys as float64."""
    values = config.as_dict()
    out = []
    for key, kind in _core.DECODER_CONFIG_KEYS.items():
        value = struct.pack("<d", values[key]) if kind is float else struct.pack("<q", int(values[key]))
        out.append(CONFIG_ENTRY.pack(key.encode(), value))
    return out


class DecoderFileWriter:
    """Writes tensors as they come (a decoder is exported block by block, never whole in RAM); the
    header, the config and the tensor table are written on close(). Every tensor is checked against the
    core's table for ``config`` and ``lm_head`` ("f16" or "int8"), and close() refuses a file that lacks one
    of its required tensors: what this writes, the core reads."""

    def __init__(self, path: str | os.PathLike, config: DecoderConfig, lm_head: str = "f16"):
        self._expected = {name: (dtype, tuple(shape), required)
                          for name, dtype, shape, required in _core.decoder_tensors(config.as_dict(), lm_head)}
        self._config = _config_entries(config)
        self._file = open(path, "wb")
        table = HEADER.size + CONFIG_ENTRY.size * len(self._config) + ENTRY.size * len(self._expected)
        self._data_offset = -(-table // ALIGN) * ALIGN
        self._entries: list[tuple[str, int, tuple[int, ...], int, int]] = []
        self._offset = 0  # relative to the data offset

    def add(self, name: str, array: Any) -> None:
        """Append one tensor of the core's table: a numpy array, or any object with ``shape`` and ``dtype``
        that numpy can turn into a C-contiguous array of them."""
        if name not in self._expected:
            raise ValueError(f"'{name}' is not a tensor of this decoder file")
        dtype, shape, _ = self._expected[name]
        if tuple(array.shape) != shape or np.dtype(array.dtype) != NUMPY_DTYPES[dtype]:
            raise ValueError(f"tensor '{name}' is {np.dtype(array.dtype)} {tuple(array.shape)}, the decoder file "
                             f"holds it as {dtype} {shape}")
        if any(entry[0] == name for entry in self._entries):
            raise ValueError(f"tensor '{name}' written twice")
        self._offset = -(-self._offset // ALIGN) * ALIGN
        data = np.ascontiguousarray(array)
        self._file.seek(self._data_offset + self._offset)
        self._file.write(memoryview(data).cast("B"))
        self._entries.append((name, _core.DECODER_DTYPES[dtype], shape, self._offset, data.nbytes))
        self._offset += data.nbytes

    def close(self) -> None:
        written = {entry[0] for entry in self._entries}
        missing = [name for name, (_, _, required) in self._expected.items() if required and name not in written]
        if missing:
            self._file.close()
            raise ValueError(f"the decoder file lacks {len(missing)} tensor(s): {', '.join(missing[:5])}")
        file_size = self._data_offset + self._offset
        self._file.seek(0)
        self._file.write(HEADER.pack(_core.DECODER_FILE_MAGIC, FORMAT_VERSION, len(self._entries), self._data_offset,
                                     file_size, len(self._config)))
        self._file.write(b"".join(self._config))
        for name, code, shape, at, nbytes in self._entries:
            dims = list(shape) + [0] * (3 - len(shape))
            self._file.write(ENTRY.pack(name.encode(), code, len(shape), *dims, at, nbytes))
        self._file.truncate(file_size)
        self._file.close()

    def __enter__(self) -> "DecoderFileWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self._file.close()


def write_decoder_file(path: str | os.PathLike, config: DecoderConfig, tensors: Iterable[tuple[str, Any]],
                       lm_head: str = "f16") -> None:
    """tensors: (name, array) in file order."""
    with DecoderFileWriter(path, config, lm_head) as writer:
        for name, array in tensors:
            writer.add(name, array)


def int8_rows(weight, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: weight[r] ~= scale[r] * q[r], scale = max|w[r]| / 127 (rows taken
    ``chunk`` at a time, so a 152k-row head never exists in float32 whole). A torch tensor is rounded
    to float16 first: the values the fp16 head would hold."""
    rows = weight.shape[0]
    q = np.empty(weight.shape, np.int8)
    scale = np.empty(rows, np.float32)
    for start in range(0, rows, chunk):
        part = weight[start : start + chunk]
        w = part.to(torch.float16).float().numpy() if isinstance(part, torch.Tensor) else np.asarray(part, np.float32)
        s = (np.abs(w).max(axis=1) / 127).astype(np.float32)
        safe = np.where(s > 0, s, 1).astype(np.float32)
        q[start : start + chunk] = np.clip(np.rint(w / safe[:, None]), -127, 127)
        scale[start : start + chunk] = s
    return q, scale


def decoder_tensors(reader: CheckpointReader, lm_head: str = "f16",
                    blocks: Iterator[dict[str, gptq_format.QuantizedLinear]] | None = None
                    ) -> Iterator[tuple[str, np.ndarray]]:
    """Every tensor of the decoder file, in file order, one block at a time.

    A GPTQ checkpoint's linears are imported as stored (repacked, never requantized). For a float
    checkpoint, ``blocks`` yields each block's five quantized linears (keyed by
    names.QUANTIZED_LINEARS, e.g. from the GPTQ solver); without it they are rounded to nearest
    (sym, g128). lm_head: "f16" (as released) or "int8" (per row, half the bytes read per token).
    """
    if lm_head not in ("f16", "int8"):
        raise ValueError(f"lm_head must be 'f16' or 'int8', not {lm_head!r}")
    cfg = reader.config

    def get(name: str, dtype) -> np.ndarray:
        # one conversion, no float32 detour: the embedding and the head are 1.2 GB each in float16
        return reader.get(name).to(TORCH_DTYPES[np.dtype(dtype)]).numpy()

    gptq = reader.quantization
    v1 = True
    if gptq is not None:
        if blocks is not None:
            raise ValueError("a GPTQ checkpoint is imported as it is; it takes no requantized blocks")
        group_size, v1 = gptq_settings(gptq)
        if group_size != GROUP:
            raise FormatError(f"{gptq.get('_source')}: group_size {group_size}; the native decoder runs "
                              f"GPTQ with group size {GROUP}")
    yield "wte", get("transformer.wte.weight", np.float16)
    reader.release()
    for i in range(cfg.num_hidden_layers):
        p = names.block(i)
        yield f"h.{i}.ln_1", get(p + "ln_1.weight", np.float32)
        yield f"h.{i}.ln_2", get(p + "ln_2.weight", np.float32)
        quantized = next(blocks) if blocks is not None else None
        for module, short in zip(names.QUANTIZED_LINEARS, SHORT_NAMES):
            if gptq is not None:
                layer = read_gptq_linear(reader, p + module, GROUP)
            elif quantized is not None:
                layer = quantized[module]
            else:
                layer = gptq_format.quantize_linear(get(p + f"{module}.weight", np.float32), GROUP, sym=True)
            packed, perm = repack(layer, v1)
            yield f"h.{i}.{short}", packed
            if perm is not None:
                yield f"h.{i}.{short}.perm", perm
        yield f"h.{i}.c_attn.bias", get(p + "attn.c_attn.bias", np.float32)
        reader.release()
    yield "ln_f", get("transformer.ln_f.weight", np.float32)
    if lm_head == "int8":
        q, scale = int8_rows(reader.get("lm_head.weight"))
        yield "lm_head.q8", q
        yield "lm_head.scale", scale
    else:
        yield "lm_head", get("lm_head.weight", np.float16)


SHORT_NAMES = ("c_attn", "c_proj", "w1", "w2", "mlp.c_proj")  # names.QUANTIZED_LINEARS in the decoder file


def read_decoder_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The config a decoder file records and its tensors as read-only memory maps, by name (for checks and
    tools; the runtime opens the file natively). Q4Block tensors come back as uint8 [n/16, k/128, 1072]."""
    dtypes = {code: NUMPY_DTYPES[name] for name, code in _core.DECODER_DTYPES.items()}
    data = np.memmap(path, dtype=np.uint8, mode="r")
    magic, version, count, data_offset, size, config_count = HEADER.unpack_from(data, 0)
    if magic != _core.DECODER_FILE_MAGIC or size != len(data) or version != FORMAT_VERSION:
        raise FormatError(f"{path}: not a version {FORMAT_VERSION} decoder file of {len(data)} bytes (magic "
                          f"{magic!r}, version {version}, size {size})")
    config: dict[str, Any] = {}
    for i in range(config_count):
        key, value = CONFIG_ENTRY.unpack_from(data, HEADER.size + i * CONFIG_ENTRY.size)
        name = key.rstrip(b"\0").decode()
        kind = _core.DECODER_CONFIG_KEYS.get(name, int)
        config[name] = kind(struct.unpack("<d" if kind is float else "<q", value)[0])
    tensors = {}
    table = HEADER.size + config_count * CONFIG_ENTRY.size
    for i in range(count):
        name, code, ndim, d0, d1, d2, offset, nbytes = ENTRY.unpack_from(data, table + i * ENTRY.size)
        shape = (d0, d1, d2)[:ndim]
        start = data_offset + offset
        tensors[name.rstrip(b"\0").decode()] = data[start : start + nbytes].view(dtypes[code]).reshape(shape)
    return config, tensors
