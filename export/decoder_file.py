"""Write the native decoder's weight file (cpp/include/qwenvl_edge/weights_file.h) from a checkpoint.

Layout: a 64-byte header (magic, format version, tensor count, data offset, file size), a 128-byte
entry per tensor (name, dtype, shape, offset, size), then the tensors, each 64-byte aligned.
Tensors: ``wte`` and ``lm_head`` float16 [vocab, hidden]; ``ln_f`` and per layer ``h.N.ln_1``,
``h.N.ln_2`` float32; ``h.N.c_attn`` (+ ``.bias`` float32), ``h.N.c_proj``, ``h.N.w1``, ``h.N.w2``,
``h.N.mlp.c_proj`` as Q4Block tiles (+ ``.perm`` int32 for act-order weights).

From a GPTQ checkpoint the quantized tensors are imported as they are (repacked, not requantized); from
a float checkpoint this module quantizes by round-to-nearest (the GPTQ algorithm is the exporter's).
"""

from __future__ import annotations

import os
import struct
from typing import Iterable, Iterator

import numpy as np
import torch

from qwenvl_edge import FORMAT_VERSION
from qwenvl_edge.errors import FormatError
from qwenvl_edge.manifest import DecoderConfig

from . import gptq_format, names
from .checkpoint import CheckpointReader, gptq_settings, read_gptq_linear
from .config import QwenVLConfig
from .q4_repack import GROUP, repack

MAGIC = b"QVLEDGEW"
HEADER = struct.Struct("<8sIIQQ32x")
ENTRY = struct.Struct("<80sII3QQQ")
F32, F16, I8, I32, Q4BLOCK = 0, 1, 2, 3, 4
_CODES = {np.dtype(np.float32): F32, np.dtype(np.float16): F16, np.dtype(np.int8): I8, np.dtype(np.int32): I32}
ALIGN = 64
TORCH_DTYPES = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32}


def decoder_config(cfg: QwenVLConfig, max_context: int = 8192) -> DecoderConfig:
    """The native decoder's hyperparameters from config.json's (the one place the two spellings meet)."""
    return DecoderConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_layers=cfg.num_hidden_layers,
        num_heads=cfg.num_attention_heads, head_dim=cfg.head_dim, ffn_dim=cfg.ffn_dim,
        rms_eps=cfg.layer_norm_epsilon, rope_base=cfg.rotary_emb_base, seq_length=cfg.seq_length,
        dynamic_ntk=cfg.use_dynamic_ntk, logn_attn=cfg.use_logn_attn, max_context=max_context)


class DecoderFileWriter:
    """Writes tensors as they come (a decoder is exported block by block, never whole in RAM); the
    header and the tensor table, reserved for up to ``capacity`` entries, are written on close()."""

    def __init__(self, path: str | os.PathLike, capacity: int):
        self._file = open(path, "wb")
        self._capacity = capacity
        self._data_offset = -(-(HEADER.size + ENTRY.size * capacity) // ALIGN) * ALIGN
        self._entries: list[tuple[str, int, tuple[int, ...], int, int]] = []
        self._offset = 0  # relative to the data offset

    def add(self, name: str, array: np.ndarray, code: int) -> None:
        """Append one tensor (any object numpy can turn into a C-contiguous array of it)."""
        if len(name.encode()) >= 80:
            raise ValueError(f"tensor name too long: {name}")
        if len(self._entries) == self._capacity:
            raise ValueError(f"more than the {self._capacity} tensors reserved")
        self._offset = -(-self._offset // ALIGN) * ALIGN
        data = np.ascontiguousarray(array)
        self._file.seek(self._data_offset + self._offset)
        self._file.write(memoryview(data).cast("B"))
        self._entries.append((name, code, tuple(array.shape), self._offset, data.nbytes))
        self._offset += data.nbytes

    def close(self) -> None:
        file_size = self._data_offset + self._offset
        self._file.seek(0)
        self._file.write(HEADER.pack(MAGIC, FORMAT_VERSION, len(self._entries), self._data_offset, file_size))
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


def write_decoder_file(path: str | os.PathLike, tensors: Iterable[tuple[str, np.ndarray, int]],
                       capacity: int | None = None) -> None:
    """tensors: (name, array, dtype code); Q4BLOCK arrays are uint8 [n/16, k/128, 1072]. ``capacity``
    bounds the tensor count when ``tensors`` is a generator (default: its length)."""
    if capacity is None:
        tensors = list(tensors)
        capacity = len(tensors)
    with DecoderFileWriter(path, capacity) as writer:
        for name, array, code in tensors:
            writer.add(name, array, code)


def tensor_capacity(cfg: QwenVLConfig) -> int:
    """The most tensors a decoder file of this config holds: wte, ln_f, a two-tensor int8 head, and per
    block two norms, the c_attn bias and five linears each with a possible act-order permutation."""
    return 4 + cfg.num_hidden_layers * (3 + 2 * len(names.QUANTIZED_LINEARS))


def _plain(name: str, array: np.ndarray) -> tuple[str, np.ndarray, int]:
    array = np.ascontiguousarray(array)
    return name, array, _CODES[array.dtype]


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
                    ) -> Iterator[tuple[str, np.ndarray, int]]:
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
    yield _plain("wte", get("transformer.wte.weight", np.float16))
    reader.release()
    for i in range(cfg.num_hidden_layers):
        p = names.block(i)
        yield _plain(f"h.{i}.ln_1", get(p + "ln_1.weight", np.float32))
        yield _plain(f"h.{i}.ln_2", get(p + "ln_2.weight", np.float32))
        quantized = next(blocks) if blocks is not None else None
        for module, short in zip(names.QUANTIZED_LINEARS, SHORT_NAMES):
            if gptq is not None:
                layer = read_gptq_linear(reader, p + module, GROUP)
            elif quantized is not None:
                layer = quantized[module]
            else:
                layer = gptq_format.quantize_linear(get(p + f"{module}.weight", np.float32), GROUP, sym=True)
            packed, perm = repack(layer, v1)
            yield f"h.{i}.{short}", packed, Q4BLOCK
            if perm is not None:
                yield _plain(f"h.{i}.{short}.perm", perm)
        yield _plain(f"h.{i}.c_attn.bias", get(p + "attn.c_attn.bias", np.float32))
        reader.release()
    yield _plain("ln_f", get("transformer.ln_f.weight", np.float32))
    if lm_head == "int8":
        q, scale = int8_rows(reader.get("lm_head.weight"))
        yield _plain("lm_head.q8", q)
        yield _plain("lm_head.scale", scale)
    else:
        yield _plain("lm_head", get("lm_head.weight", np.float16))


SHORT_NAMES = ("c_attn", "c_proj", "w1", "w2", "mlp.c_proj")  # names.QUANTIZED_LINEARS in the decoder file


def read_decoder_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a decoder file as read-only memory maps, by name (for checks and tools; the
    runtime opens the file natively). Q4BLOCK tensors come back as uint8 [n/16, k/128, 1072]."""
    dtypes = {F32: np.float32, F16: np.float16, I8: np.int8, I32: np.int32, Q4BLOCK: np.uint8}
    data = np.memmap(path, dtype=np.uint8, mode="r")
    magic, version, count, data_offset, size = HEADER.unpack_from(data, 0)
    if magic != MAGIC or size != len(data):
        raise FormatError(f"{path}: not a decoder file of {len(data)} bytes (magic {magic!r}, size {size})")
    out = {}
    for i in range(count):
        name, code, ndim, d0, d1, d2, offset, nbytes = ENTRY.unpack_from(data, HEADER.size + i * ENTRY.size)
        shape = (d0, d1, d2)[:ndim]
        start = data_offset + offset
        out[name.rstrip(b"\0").decode()] = data[start : start + nbytes].view(dtypes[code]).reshape(shape)
    return out
