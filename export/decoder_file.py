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

import numpy as np

from qwenvl_edge import FORMAT_VERSION

from . import gptq_format, names
from .checkpoint import CheckpointReader, gptq_settings
from .config import QwenVLConfig
from .q4_repack import GROUP, repack

MAGIC = b"QVLEDGEW"
HEADER = struct.Struct("<8sIIQQ32x")
ENTRY = struct.Struct("<80sII3QQQ")
F32, F16, I8, I32, Q4BLOCK = 0, 1, 2, 3, 4
_CODES = {np.dtype(np.float32): F32, np.dtype(np.float16): F16, np.dtype(np.int8): I8, np.dtype(np.int32): I32}
ALIGN = 64


def decoder_config(cfg: QwenVLConfig, max_context: int = 8192) -> dict:
    """The hyperparameters the native decoder takes (DecoderConfig)."""
    return {
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "num_layers": cfg.num_hidden_layers,
        "num_heads": cfg.num_attention_heads, "head_dim": cfg.head_dim, "ffn_dim": cfg.ffn_dim,
        "rms_eps": cfg.layer_norm_epsilon, "rope_base": cfg.rotary_emb_base, "seq_length": cfg.seq_length,
        "dynamic_ntk": cfg.use_dynamic_ntk, "logn_attn": cfg.use_logn_attn, "max_context": max_context,
    }


def write_decoder_file(path: str | os.PathLike, tensors: list[tuple[str, np.ndarray, int]]) -> None:
    """tensors: (name, C-contiguous array, dtype code); Q4BLOCK arrays are uint8 [n/16, k/128, 1072]."""
    entries, offset = [], 0
    for name, array, code in tensors:
        if len(name.encode()) >= 80:
            raise ValueError(f"tensor name too long: {name}")
        offset = -(-offset // ALIGN) * ALIGN
        entries.append((name, array, code, offset))
        offset += array.nbytes
    data_offset = -(-(HEADER.size + ENTRY.size * len(entries)) // ALIGN) * ALIGN
    file_size = data_offset + offset
    with open(path, "wb") as f:
        f.write(HEADER.pack(MAGIC, FORMAT_VERSION, len(entries), data_offset, file_size))
        for name, array, code, at in entries:
            shape = list(array.shape) + [0] * (3 - array.ndim)
            f.write(ENTRY.pack(name.encode(), code, array.ndim, *shape, at, array.nbytes))
        for name, array, code, at in entries:
            f.seek(data_offset + at)
            f.write(np.ascontiguousarray(array).tobytes())
        f.truncate(file_size)


def _plain(name: str, array: np.ndarray) -> tuple[str, np.ndarray, int]:
    array = np.ascontiguousarray(array)
    return name, array, _CODES[array.dtype]


def int8_rows(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: weight[r] ~= scale[r] * q[r], scale = max|w[r]| / 127."""
    w = weight.astype(np.float32)
    scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    safe = np.where(scale > 0, scale, 1).astype(np.float32)
    return np.clip(np.rint(w / safe[:, None]), -127, 127).astype(np.int8), scale


def decoder_tensors(reader: CheckpointReader, lm_head: str = "f16") -> list[tuple[str, np.ndarray, int]]:
    """Every tensor of the decoder file, from a float or GPTQ checkpoint. lm_head: "f16" (as released)
    or "int8" (per row, half the bytes read per token)."""
    cfg = reader.config

    def get(name: str, dtype) -> np.ndarray:
        return reader.get(name).float().numpy().astype(dtype)

    gptq = reader.quantization
    v1 = True
    if gptq is not None:
        group_size, v1 = gptq_settings(gptq)
        if group_size != GROUP:
            raise ValueError(f"the native decoder runs GPTQ group size {GROUP}, this checkpoint has {group_size}")
    out = [_plain("wte", get("transformer.wte.weight", np.float16))]
    for i in range(cfg.num_hidden_layers):
        p = names.block(i)
        out.append(_plain(f"h.{i}.ln_1", get(p + "ln_1.weight", np.float32)))
        out.append(_plain(f"h.{i}.ln_2", get(p + "ln_2.weight", np.float32)))
        for module, short in zip(names.QUANTIZED_LINEARS, ("c_attn", "c_proj", "w1", "w2", "mlp.c_proj")):
            if gptq is not None:
                layer = gptq_format.QuantizedLinear(*(reader.get(p + f"{module}.{s}").numpy()
                                                      for s in ("qweight", "qzeros", "scales", "g_idx")))
                layer.scales = layer.scales.astype(np.float16)
            else:
                layer = gptq_format.quantize_linear(get(p + f"{module}.weight", np.float32), GROUP, sym=True)
            blocks, perm = repack(layer, v1)
            out.append((f"h.{i}.{short}", blocks, Q4BLOCK))
            if perm is not None:
                out.append(_plain(f"h.{i}.{short}.perm", perm))
        out.append(_plain(f"h.{i}.c_attn.bias", get(p + "attn.c_attn.bias", np.float32)))
    out.append(_plain("ln_f", get("transformer.ln_f.weight", np.float32)))
    if lm_head == "int8":
        q, scale = int8_rows(get("lm_head.weight", np.float16))
        out += [_plain("lm_head.q8", q), _plain("lm_head.scale", scale)]
    elif lm_head == "f16":
        out.append(_plain("lm_head", get("lm_head.weight", np.float16)))
    else:
        raise ValueError(f"lm_head must be 'f16' or 'int8', not {lm_head!r}")
    return out
