"""Random decoder weights at a given shape, for speed measurements (speed does not depend on values):
our decoder file (Q4Block tiles, fp16 or int8 lm_head) and a llama.cpp GGUF of the same shape (qwen
architecture, random Q4_0 blocks, Q8_0 output). Neither file is meaningful as a model."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from qwenvl_edge import _core
from qwenvl_edge.export.config import QwenVLConfig
from qwenvl_edge.export.decoder_file import NUMPY_DTYPES, decoder_config, write_decoder_file
from qwenvl_edge.export.q4_repack import BLOCK_DTYPE, GROUP, TILE
from qwenvl_edge.manifest import DecoderConfig

QWEN_7B = decoder_config(QwenVLConfig(), max_context=4096)
FILLS = {"ln_1": 1.0, "ln_2": 1.0, "ln_f": 1.0, "bias": 0.0, "scale": 1e-3}  # the float32 vectors, by last name


def linears(c: DecoderConfig) -> list[tuple[str, int, int]]:
    """(name, k inputs, n outputs) of one block's five linears, from the core's table of the decoder file."""
    return [(name[len("h.0."):], shape[1] * GROUP, shape[0] * TILE)
            for name, dtype, shape, _ in _core.decoder_tensors(c.as_dict()) if dtype == "q4block" and name.startswith("h.0.")]


class Lazy:
    """An array that is made only when written, so a multi-GB file never sits in RAM whole."""

    def __init__(self, shape, dtype, make):
        self.shape, self.dtype, self._make = tuple(shape), np.dtype(dtype), make
        self.ndim = len(self.shape)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize

    def __array__(self, dtype=None, copy=None):
        return self._make()


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, *name.encode()])


def random_f16(rng, shape) -> np.ndarray:
    """Small finite halves from random bits: exponents 0x2000..0x33ff (about 1e-3..0.25), random sign."""
    bits = rng.integers(0x2000, 0x3400, size=shape, dtype=np.uint16) | (rng.integers(0, 2, size=shape, dtype=np.uint16) << 15)
    return bits.view(np.float16)


def random_blocks(rng, shape) -> np.ndarray:
    """Q4Block tiles uint8 [n/16, k/128, 1072] of random nibbles, scale 0.01, zero 8."""
    blocks = np.zeros(shape[:2], dtype=BLOCK_DTYPE)
    blocks["q"] = rng.integers(0, 2**32, size=blocks["q"].shape, dtype=np.uint32)
    blocks["scale"] = np.float16(0.01)
    blocks["zero"] = 8
    return blocks.view(np.uint8).reshape(shape)


def write_ours(path: str, dims: DecoderConfig, lm_head: str = "f16", seed: int = 0,
               made: Callable[[], None] | None = None) -> None:
    """Every required tensor of the core's table, random where it is big (generated lazily, one at a time),
    ones and zeros for the norms and biases. ``made()`` is called as each big tensor (embedding, a block's
    linears, the head) is generated."""
    random = {"f16": random_f16, "q4block": random_blocks,
              "i8": lambda rng, shape: rng.integers(-127, 128, shape, dtype=np.int8)}

    def big(name: str, dtype: str, shape: tuple[int, ...]) -> Lazy:
        def make():
            array = random[dtype](_rng(seed, name), shape)
            if made is not None:
                made()
            return array
        return Lazy(shape, NUMPY_DTYPES[dtype], make)

    tensors: list[tuple[str, Any]] = []
    for name, dtype, shape, required in _core.decoder_tensors(dims.as_dict(), lm_head):
        if required:
            small = dtype == "f32"
            tensors.append((name, np.full(shape, FILLS[name.rsplit(".", 1)[-1]], np.float32) if small
                            else big(name, dtype, tuple(shape))))
    write_decoder_file(path, dims, tensors, lm_head)


def write_gguf(path: str, dims: DecoderConfig, seed: int = 0) -> None:
    """llama.cpp's qwen architecture: fused attn_qkv with bias, ffn_gate/up/down, and its
    feed_forward_length key holds 2 x the FFN width (as Qwen's config does)."""
    from gguf import GGMLQuantizationType, GGUFWriter

    rng = np.random.default_rng(seed)
    v, d, f = dims.vocab_size, dims.hidden_size, dims.ffn_dim

    def q4_0(rows, cols):  # 18-byte blocks: fp16 scale + 32 nibbles
        blocks = rng.integers(0, 256, size=(rows, cols // 32, 18), dtype=np.uint8)
        blocks[..., :2] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)
        return blocks.reshape(rows, -1)

    def q8_0(rows, cols):  # 34-byte blocks: fp16 scale + 32 int8
        blocks = rng.integers(0, 256, size=(rows, cols // 32, 34), dtype=np.uint8)
        blocks[..., :2] = np.frombuffer(np.float16(0.001).tobytes(), np.uint8)
        return blocks.reshape(rows, -1)

    w = GGUFWriter(path, "qwen")
    w.add_context_length(8192)
    w.add_embedding_length(d)
    w.add_block_count(dims.num_layers)
    w.add_feed_forward_length(2 * f)
    w.add_rope_dimension_count(dims.head_dim)
    w.add_head_count(dims.num_heads)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    # llama.cpp wants a vocabulary: bytes as tokens, one merge, placeholders for the rest.
    tokens = [bytes([b]).decode("latin-1") for b in range(256)] + ["ab"] + [f"<t{i}>" for i in range(257, v)]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types([1] * v)
    w.add_token_merges(["a b"])
    q4, q8 = GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q8_0
    w.add_tensor("token_embd.weight", q4_0(v, d), raw_dtype=q4)
    w.add_tensor("output_norm.weight", np.ones(d, np.float32))
    w.add_tensor("output.weight", q8_0(v, d), raw_dtype=q8)
    for i in range(dims.num_layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(p + "attn_qkv.weight", q4_0(3 * d, d), raw_dtype=q4)
        w.add_tensor(p + "attn_qkv.bias", np.zeros(3 * d, np.float32))
        w.add_tensor(p + "attn_output.weight", q4_0(d, d), raw_dtype=q4)
        w.add_tensor(p + "ffn_gate.weight", q4_0(f, d), raw_dtype=q4)
        w.add_tensor(p + "ffn_up.weight", q4_0(f, d), raw_dtype=q4)
        w.add_tensor(p + "ffn_down.weight", q4_0(d, f), raw_dtype=q4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def decode_bytes_ours(dims: DecoderConfig, lm_head: str) -> int:
    """Bytes read per decoded token: every tile, the head, one embedding row."""
    tiles = sum(k * n // 2048 * BLOCK_DTYPE.itemsize for _, k, n in linears(dims)) * dims.num_layers
    head = dims.vocab_size * dims.hidden_size * (1 if lm_head == "int8" else 2)
    return tiles + head + 2 * dims.hidden_size


def decode_bytes_gguf(dims: DecoderConfig) -> int:
    per_block = sum(k * n // 32 * 18 for _, k, n in linears(dims)) * dims.num_layers
    return per_block + dims.vocab_size * dims.hidden_size // 32 * 34


def ensure(path: str, writer, *args) -> str:
    if not os.path.exists(path):
        tmp = path + ".partial"
        writer(tmp, *args)
        os.replace(tmp, path)  # an interrupted build leaves no file that looks complete
    return path
