"""Write random tiny Qwen-VL checkpoints in the exact Hugging Face layout, float or GPTQ Int4.

    python -m qwenvl_edge.export.tiny OUT [--vocab qwen.tiktoken] [--int4] [--format bin --shards 2]
    (also: qwenvl-edge tiny OUT ...; with --dims release, the release's real size: release_checkpoint.py)

The files are those of the release: config.json (real schema, tiny dims), generation_config.json,
tokenizer_config.json, qwen.tiktoken, and the weights as model.safetensors (or sharded with
model.safetensors.index.json, or pytorch_model*.bin). The Int4 variant follows the AutoGPTQ v1 layout
of Qwen-VL-Chat-Int4: qweight/qzeros/scales/g_idx/bias on the five Linears of every block (zeros stored
minus one, a zero bias on the four bias-free ones), everything else float16, quantization_config in
config.json and quantize_config.json.

The vocabulary is the first N ranks of a given qwen.tiktoken (a valid smaller BPE) or, with no file,
the 256 single bytes. Special-token ids follow from N as in the original tokenizer, and
visual.image_start_id agrees. The 448 input and 14 patch keep the real 1024-patch, 256-query path.

Weights are scaled so that a forward pass gives distinctive logits (std ~3 across the vocabulary), not
the near-flat output of a 0.02-std init, so that greedy comparisons mean something.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import numpy as np
import torch

from qwenvl_edge.vocab import SpecialIds, read_ranks

from . import gptq_format, names
from .checkpoint_files import gptq_config, write_json, write_side_files
from .config import QwenVLConfig, VisualConfig
from .reference_vision import sincos_2d_table

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def tiny_config(n_ranks: int, **overrides) -> QwenVLConfig:
    """Tiny dims with the real schema: hidden 256 = 4 heads of 64, FFN 384, 2 layers; ViT width 64,
    2 blocks of 4 heads, 448 input. ``overrides`` replace top-level fields (e.g. seq_length)."""
    special = SpecialIds(n_ranks)
    vocab_size = -(-special.n_vocab // 128) * 128  # padded like the release (151860 -> 151936)
    visual = VisualConfig(width=64, layers=2, heads=4, output_dim=256, image_start_id=special.img_start)
    fields = dict(vocab_size=vocab_size, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                  kv_channels=64, intermediate_size=768, visual=visual)
    fields.update(overrides)
    return QwenVLConfig(**fields)


def random_weights(cfg: QwenVLConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A float32 state dict with every tensor of names.float_shapes."""
    gen = torch.Generator().manual_seed(seed)
    v = cfg.visual

    def normal(shape, std):
        return torch.randn(shape, generator=gen) * std

    state = {}
    for name, shape in names.float_shapes(cfg).items():
        leaf = name.rsplit(".", 1)[-1]
        if name.endswith("attn_pool.pos_embed"):
            state[name] = torch.from_numpy(sincos_2d_table(v.output_dim, v.query_grid))
        elif name == "lm_head.weight":
            state[name] = normal(shape, 3.0 / cfg.hidden_size**0.5)
        elif name.endswith(("wte.weight", "attn_pool.query", "positional_embedding")):
            state[name] = normal(shape, 1.0)
        elif len(shape) == 1 and leaf == "weight":  # LayerNorm / RMSNorm scales
            state[name] = 1.0 + normal(shape, 0.1)
        elif len(shape) == 1:  # biases
            state[name] = normal(shape, 0.1)
        else:  # projections: unit-variance outputs for unit-variance inputs
            fan_in = int(np.prod(shape[1:])) if not name.endswith(".proj") else shape[0]
            state[name] = normal(shape, fan_in**-0.5)
    return state


def quantize_decoder(cfg: QwenVLConfig, state: dict[str, torch.Tensor], group_size: int = 128,
                     sym: bool = True, act_order: bool = False, v1: bool = True, seed: int = 0
                     ) -> dict[str, torch.Tensor]:
    """The GPTQ tensors of a state dict: round-to-nearest on the five Linears of each block; with
    ``act_order`` a random input permutation gives a non-trivial g_idx, as desc_act=True would."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(cfg.num_hidden_layers):
        for module in names.QUANTIZED_LINEARS:
            p = names.block(i) + module + "."
            weight = state[p + "weight"].float().numpy()
            g_idx = None
            if act_order:
                g_idx = np.empty(weight.shape[1], dtype=np.int32)
                g_idx[rng.permutation(weight.shape[1])] = np.arange(weight.shape[1]) // group_size
            layer = gptq_format.quantize_linear(weight, group_size, sym, g_idx, v1)
            bias = state.get(p + "bias", torch.zeros(weight.shape[0]))
            out[p + "qweight"] = torch.from_numpy(layer.qweight)
            out[p + "qzeros"] = torch.from_numpy(layer.qzeros)
            out[p + "scales"] = torch.from_numpy(layer.scales)
            out[p + "g_idx"] = torch.from_numpy(layer.g_idx)
            out[p + "bias"] = bias.to(torch.float16)
    return out


def write_weights(directory: str, tensors: dict[str, torch.Tensor], fmt: str = "safetensors", shards: int = 1) -> None:
    """Save tensors like transformers' save_pretrained: one file, or N shards plus an index."""
    ordered = sorted(tensors)
    groups = [ordered[k::shards] for k in range(shards)] if shards > 1 else [ordered]
    ext, stem = (".safetensors", "model") if fmt == "safetensors" else (".bin", "pytorch_model")
    weight_map, total = {}, 0
    for k, group in enumerate(groups, start=1):
        file = f"{stem}{ext}" if shards == 1 else f"{stem}-{k:05d}-of-{shards:05d}{ext}"
        part = {n: tensors[n].contiguous() for n in group}
        if fmt == "safetensors":
            from safetensors.torch import save_file

            save_file(part, os.path.join(directory, file), metadata={"format": "pt"})
        else:
            torch.save(part, os.path.join(directory, file))
        for n in group:
            weight_map[n] = file
            total += part[n].numel() * part[n].element_size()
    if shards > 1:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        write_json(os.path.join(directory, f"{stem}{ext}.index.json"), index)


def write_checkpoint(directory: str, cfg: QwenVLConfig, state: dict[str, torch.Tensor],
                     ranks: dict[bytes, int], *, dtype: str = "bfloat16", chat: bool = True,
                     fmt: str = "safetensors", shards: int = 1, gptq: dict | None = None) -> None:
    """Write a complete checkpoint directory. With ``gptq`` (group_size, sym, act_order, v1), the
    decoder Linears are quantized and everything else is stored in float16, like the Int4 release."""
    os.makedirs(directory, exist_ok=True)
    quant = None
    if gptq is not None:
        group_size, sym = gptq.get("group_size", 128), gptq.get("sym", True)
        act_order, v1 = gptq.get("act_order", False), gptq.get("v1", True)
        quant = gptq_config(group_size, sym, act_order, v1)
        cfg = dataclasses.replace(cfg, torch_dtype="float16", quantization={**quant, "quant_method": "gptq"})
        kept = names.gptq_shapes(cfg, group_size)
        tensors = {n: t.to(torch.float16) for n, t in state.items() if n in kept}
        tensors.update(quantize_decoder(cfg, state, group_size, sym, act_order, v1))
    else:
        cfg = dataclasses.replace(cfg, torch_dtype=dtype)
        tensors = {n: t.to(DTYPES[dtype]) for n, t in state.items()}
    write_side_files(directory, cfg, ranks, chat, quant)
    write_weights(directory, tensors, fmt, shards)


def tiny_ranks(vocab: str | os.PathLike | None = None, n_ranks: int = 4096) -> dict[bytes, int]:
    """The first n_ranks ranks of a tiktoken file, or the 256 single bytes when no file is given."""
    if vocab is None:
        return {bytes([b]): b for b in range(256)}
    return {token: rank for token, rank in read_ranks(vocab).items() if rank < n_ranks}


def make_tiny(directory: str | os.PathLike, *, vocab: str | os.PathLike | None = None, n_ranks: int = 4096,
              seed: int = 0, int4: bool = False, **options) -> QwenVLConfig:
    """Write one random tiny checkpoint; returns its config. ``options`` go to write_checkpoint
    (dtype, chat, fmt, shards) and, for int4, the gptq settings (group_size, sym, act_order, v1)."""
    ranks = tiny_ranks(vocab, n_ranks)
    config_overrides = options.pop("config", {})
    cfg = tiny_config(len(ranks), **config_overrides)
    gptq_keys = {"group_size", "sym", "act_order", "v1"}
    gptq = {k: options.pop(k) for k in list(options) if k in gptq_keys} if int4 else None
    write_checkpoint(os.fspath(directory), cfg, random_weights(cfg, seed), ranks, gptq=gptq, **options)
    return cfg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="qwenvl-edge tiny", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="directory to write the checkpoint into")
    parser.add_argument("--dims", choices=["tiny", "release"], default="tiny",
                        help="release: the real Qwen-VL size and shard layout, streamed (19.3 GB bf16, 9.7 GB "
                             "--int4; for benchmarks), with a synthetic vocabulary unless --vocab is given")
    parser.add_argument("--vocab", help="a qwen.tiktoken to truncate (default: the 256 single bytes)")
    parser.add_argument("--ranks", type=int, default=4096, help="BPE ranks kept from --vocab")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--int4", action="store_true", help="write the GPTQ Int4 variant")
    parser.add_argument("--act-order", action="store_true", help="Int4 with a non-trivial g_idx")
    parser.add_argument("--asym", action="store_true", help="Int4 with asymmetric zero points")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16", help="float checkpoint dtype")
    parser.add_argument("--base", action="store_true", help="generation_config of the base model (raw)")
    parser.add_argument("--format", choices=["safetensors", "bin"],
                        help="weight files (default: safetensors; with --dims release, bin as Qwen-VL and "
                             "Qwen-VL-Chat ship, safetensors for --int4)")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in OUT")
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        # Like export: never write into a directory that holds something else, and replace only a checkpoint.
        if not args.overwrite:
            parser.error(f"{args.out} exists and is not empty (pass --overwrite to replace the checkpoint in it)")
        if not os.path.isfile(os.path.join(args.out, "config.json")):
            parser.error(f"{args.out} holds no config.json: not a checkpoint, not replacing it")
        import shutil

        shutil.rmtree(args.out)
    if args.dims == "release":
        _release(parser, args)
        return
    args.format = args.format or "safetensors"
    options = dict(dtype=args.dtype, chat=not args.base, fmt=args.format, shards=args.shards)
    if args.int4:
        options.update(act_order=args.act_order, sym=not args.asym)
    cfg = make_tiny(args.out, vocab=args.vocab, n_ranks=args.ranks, seed=args.seed, int4=args.int4, **options)
    kind = "GPTQ Int4" if args.int4 else args.dtype
    print(f"wrote a tiny Qwen-VL ({kind}, vocab_size {cfg.vocab_size}, hidden {cfg.hidden_size}) to {args.out}")


def _release(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from .progress import bar
    from .release_checkpoint import write_release

    for flag, given in (("--act-order", args.act_order), ("--asym", args.asym), ("--shards", args.shards != 1),
                        ("--dtype", args.dtype != "bfloat16"), ("--ranks", args.ranks != 4096)):
        if given:
            parser.error(f"{flag} does not apply to --dims release (the release's own layout is written)")
    fmt = args.format or ("safetensors" if args.int4 else "bin")
    with bar(None, "weights", True, unit="B", unit_scale=True) as progress:
        files = write_release(args.out, int4=args.int4, chat=not args.base, fmt=fmt, vocab=args.vocab,
                              seed=args.seed, progress=progress.update)
    kind = "Qwen-VL-Chat-Int4" if args.int4 else ("Qwen-VL" if args.base else "Qwen-VL-Chat")
    print(f"wrote a random {kind} of the release's size ({len(files)} {fmt} shards) to {args.out}")


if __name__ == "__main__":
    main()
