"""Random checkpoints in the exact layout of the three releases, at their real size, streamed to disk.

    qwenvl-edge tiny OUT --dims release [--int4] [--base] [--format bin|safetensors] [--vocab FILE]

- Qwen-VL (``--base``) and Qwen-VL-Chat: bfloat16, sharded like the release (``pytorch_model-000NN-of-00010.bin``
  + ``pytorch_model.bin.index.json``, 19,313,870,336 bytes), or the same tensors as safetensors shards.
- Qwen-VL-Chat-Int4 (``--int4``): GPTQ v1, sym, group 128 on the five Linears of every block, everything
  else float16, ``model-0000N-of-00005.safetensors`` + ``model.safetensors.index.json`` (9,731,786,240
  bytes), quantization_config in config.json and quantize_config.json.

Shards are cut like transformers' save_pretrained(max_shard_size="2GB") cuts them: tensors in the
model's state-dict order, a new shard when the next tensor would pass 2 GB. A safetensors shard is
written tensor by tensor (its header first: every shape is known up front); a .bin shard is built in
memory (torch.save needs the objects), so that writer holds one 2 GB shard; values are drawn in
blocks of rows, so nothing else is ever whole in float32.

The weights are random with realistic scales (unit-variance activations), so every export path runs
as on the real checkpoint; the values mean nothing. A benchmark input, never a test fixture: the test
suite runs this writer at tiny dims only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from typing import Callable, Iterator

import numpy as np
import torch

from qwenvl_edge.vocab import RELEASE_RANKS, SpecialIds, read_ranks, synthetic_ranks

from . import names
from .config import QwenVLConfig
from .random_vision import random_tensors
from .checkpoint_files import gptq_config, write_side_files

MAX_SHARD_BYTES = 2 * 10**9  # transformers' "2GB"
CHUNK_ELEMENTS = 16 << 20  # values drawn at a time
GROUP_SIZE = 128
_SAFETENSORS_DTYPES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32", torch.int32: "I32"}


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * torch.empty((), dtype=self.dtype).element_size()


def state_dict_order(cfg: QwenVLConfig, int4: bool) -> list[Entry]:
    """Every tensor of the release in the order the model registers it (QWenLMHeadModel: wte, the
    blocks, ln_f, visual, lm_head), with the stored dtype."""
    float_dtype = torch.float16 if int4 else torch.bfloat16
    shapes = names.gptq_shapes(cfg, GROUP_SIZE) if int4 else names.float_shapes(cfg)
    decoder = [n for n in shapes if not n.startswith(names.VISUAL) and n != "lm_head.weight"]
    visual = [n for n in shapes if n.startswith(names.VISUAL)]
    ordered = decoder + visual + ["lm_head.weight"]

    def dtype(name: str) -> torch.dtype:
        return torch.int32 if name.endswith((".qweight", ".qzeros", ".g_idx")) else float_dtype

    return [Entry(n, tuple(shapes[n]), dtype(n)) for n in ordered]


def plan_shards(entries: list[Entry], max_bytes: int = MAX_SHARD_BYTES) -> list[list[Entry]]:
    shards: list[list[Entry]] = [[]]
    size = 0
    for e in entries:
        if shards[-1] and size + e.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(e)
        size += e.nbytes
    return shards


def random_values(cfg: QwenVLConfig, seed: int = 0) -> Callable[[Entry], Iterator[torch.Tensor]]:
    """Each tensor's value as consecutive row blocks of at most CHUNK_ELEMENTS (so the 151936-row
    embedding and head are never whole in float32), each block drawn from its own seed: the vision
    side as random_vision draws it; decoder projections fan_in^-1/2, norms near 1, the embedding
    unit-scale, the head giving logits of std ~3; GPTQ tensors of that scale (random nibbles, sym zero
    8 stored as 7, g_idx = i // 128)."""
    visual = random_tensors(cfg.visual, seed)

    def block(e: Entry, rows: slice) -> torch.Tensor:
        shape = (rows.stop - rows.start, *e.shape[1:])
        rng = np.random.default_rng([seed, rows.start, *e.name.encode()])
        if e.name.endswith(".qweight"):
            return torch.from_numpy(rng.integers(-2**31, 2**31, shape, dtype=np.int32))
        if e.name.endswith(".qzeros"):
            return torch.full(shape, 0x77777777, dtype=torch.int32)
        if e.name.endswith(".g_idx"):
            return torch.arange(rows.start, rows.stop, dtype=torch.int32) // GROUP_SIZE
        if e.name.endswith(".scales"):  # uniform nibbles around 8 have std ~4.6 steps
            return torch.full(shape, (e.shape[0] * GROUP_SIZE) ** -0.5 / 4.6, dtype=e.dtype)
        if e.name.endswith(".bias") and not e.name.endswith("c_attn.bias"):
            return torch.zeros(shape, dtype=e.dtype)  # AutoGPTQ's bias on the four bias-free Linears
        x = rng.standard_normal(shape, dtype=np.float32)
        if e.name.endswith(".bias"):
            x *= 0.1
        elif len(e.shape) == 1:
            x = 1 + 0.1 * x
        elif e.name == "lm_head.weight":
            x *= 3.0 / cfg.hidden_size**0.5
        elif e.name != "transformer.wte.weight":
            x *= e.shape[1] ** -0.5
        return torch.from_numpy(x).to(e.dtype)

    def chunks(e: Entry) -> Iterator[torch.Tensor]:
        if e.name.startswith(names.VISUAL):
            yield torch.from_numpy(visual(e.name[len(names.VISUAL):])).to(e.dtype)
            return
        step = max(1, CHUNK_ELEMENTS // max(1, int(np.prod(e.shape[1:]))))
        for start in range(0, e.shape[0], step):
            yield block(e, slice(start, min(start + step, e.shape[0])))

    return chunks


def write_safetensors(path: str, entries: list[Entry], chunks: Callable[[Entry], Iterator[torch.Tensor]]) -> None:
    """A safetensors file written block by block: the header (every shape known up front), then the data."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for e in entries:
        header[e.name] = {"dtype": _SAFETENSORS_DTYPES[e.dtype], "shape": list(e.shape),
                          "data_offsets": [offset, offset + e.nbytes]}
        offset += e.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for e in entries:
            written = 0
            for t in chunks(e):
                if t.dtype != e.dtype:
                    raise ValueError(f"{e.name}: made {t.dtype}, planned {e.dtype}")
                data = t.contiguous().view(torch.uint8).numpy()
                f.write(memoryview(data).cast("B"))
                written += data.nbytes
            if written != e.nbytes:
                raise ValueError(f"{e.name}: made {written} bytes, planned {e.nbytes}")


def write_bin(path: str, entries: list[Entry], chunks: Callable[[Entry], Iterator[torch.Tensor]]) -> None:
    """A torch.save shard: the shard's tensors are whole in memory (at most 2 GB)."""
    torch.save({e.name: torch.cat(list(chunks(e))).reshape(e.shape) for e in entries}, path)


def write_release(directory: str | os.PathLike, *, int4: bool = False, chat: bool = True, fmt: str = "bin",
                  cfg: QwenVLConfig | None = None, vocab: str | os.PathLike | None = None, seed: int = 0,
                  progress: Callable[[int], None] | None = None) -> list[str]:
    """Write the checkpoint directory; returns the weight files. ``cfg`` defaults to the release's;
    ``vocab``: a qwen.tiktoken to copy (default: a synthetic vocabulary of the release's rank count);
    ``progress(nbytes)`` after each tensor."""
    if fmt not in ("bin", "safetensors"):
        raise ValueError(f"format must be 'bin' or 'safetensors', not {fmt!r}")
    if int4 and fmt != "safetensors":
        raise ValueError("the Int4 release is stored as safetensors only")
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    ranks = read_ranks(vocab) if vocab else synthetic_ranks(RELEASE_RANKS)
    cfg = cfg or QwenVLConfig()
    cfg = dataclasses.replace(cfg, visual=dataclasses.replace(cfg.visual, image_start_id=SpecialIds(len(ranks)).img_start))
    quant = gptq_config() if int4 else None
    cfg = dataclasses.replace(cfg, torch_dtype="float16" if int4 else "bfloat16",
                              quantization={**quant, "quant_method": "gptq"} if quant else None)
    write_side_files(directory, cfg, ranks, chat, quant)
    shards = plan_shards(state_dict_order(cfg, int4))
    stem, ext = ("model", ".safetensors") if fmt == "safetensors" else ("pytorch_model", ".bin")
    files = [f"{stem}-{k:05d}-of-{len(shards):05d}{ext}" for k in range(1, len(shards) + 1)]
    base = random_values(cfg, seed)

    def chunks(e: Entry) -> Iterator[torch.Tensor]:
        for t in base(e):
            yield t
            if progress is not None:
                progress(t.numel() * t.element_size())

    write = write_safetensors if fmt == "safetensors" else write_bin
    for file, shard in zip(files, shards):
        write(os.path.join(directory, file), shard, chunks)
    index = {"metadata": {"total_size": sum(e.nbytes for shard in shards for e in shard)},
             "weight_map": {e.name: file for file, shard in zip(files, shards) for e in shard}}
    with open(os.path.join(directory, f"{stem}{ext}.index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")
    return files
