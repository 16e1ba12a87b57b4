"""A complete bundle of a given shape with random weights, built once and cached, for speed runs.

Speed does not depend on the weight values, so a bundle of the real Qwen-VL-Chat shape (ViT-bigG +
adapter as the exporter's int8 ONNX graph, the Qwen-7B decoder as int4 Q4Block tiles with an fp16
lm_head, a vocabulary of 151,643 ranks) measures what a user of the real model will see, without the
weights. The vocabulary is the 256 single bytes plus filler ranks no text can produce (they start
with 0xF8, never in UTF-8), so the tokenizer runs the real code at the real size.

Presets: ``qwen-vl-7b`` (the release's dims), ``tiny`` (the test suite's dims), ``custom`` (the
release's widths with other depths, for quick runs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil

from qwenvl_edge.export.config import QwenVLConfig
from qwenvl_edge.manifest import Manifest
from qwenvl_edge.vocab import RELEASE_RANKS, synthetic_ranks

PRESETS = ("qwen-vl-7b", "tiny", "custom")
# Bumped when the files built here change, so a cache built by an older version is rebuilt.
SYNTHETIC_VERSION = 3  # 3: the int8 vision graph with the int8 attention (benchmarks/NOTES_vision.md)
TINY_RANKS = 4096
# The greedy-leaning defaults a chat bundle of random weights is given (no checkpoint to read them from).
GENERATION_CONFIG = {"chat_format": "chatml", "max_window_size": 6144, "max_new_tokens": 512, "do_sample": False,
                     "top_k": 0, "top_p": 0.3}


def preset_config(dims: str, layers: int | None = None, vision_layers: int | None = None) -> QwenVLConfig:
    """The model config of a preset; ``layers`` / ``vision_layers`` override the depths (``custom``)."""
    from qwenvl_edge.export.tiny import tiny_config

    if dims not in PRESETS:
        raise ValueError(f"--dims must be one of {', '.join(PRESETS)}, not {dims!r}")
    if dims != "custom" and (layers or vision_layers):
        raise ValueError("--layers / --vision-layers need --dims custom")
    if dims == "custom" and not (layers or vision_layers):
        raise ValueError("--dims custom needs --layers and/or --vision-layers (the release's depths are --dims "
                         "qwen-vl-7b)")
    cfg = tiny_config(TINY_RANKS) if dims == "tiny" else QwenVLConfig()
    if layers is not None:
        if layers < 1:
            raise ValueError(f"--layers must be >= 1, got {layers}")
        cfg = dataclasses.replace(cfg, num_hidden_layers=layers)
    if vision_layers is not None:
        if vision_layers < 2:
            raise ValueError(f"--vision-layers must be >= 2, got {vision_layers}")
        cfg = dataclasses.replace(cfg, visual=dataclasses.replace(cfg.visual, layers=vision_layers))
    return cfg


def n_ranks(cfg: QwenVLConfig) -> int:
    return RELEASE_RANKS if cfg.vocab_size > TINY_RANKS + 1024 else TINY_RANKS


def cache_key(cfg: QwenVLConfig) -> str:
    blob = json.dumps({"config": cfg.to_json(), "version": SYNTHETIC_VERSION}, sort_keys=True)
    return (f"qwenvl-L{cfg.num_hidden_layers}-h{cfg.hidden_size}-vit{cfg.visual.layers}x{cfg.visual.width}-"
            f"{hashlib.sha256(blob.encode()).hexdigest()[:10]}")


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("QWENVL_EDGE_CACHE") or os.path.join(base, "qwenvl-edge", "bench")


def ensure_bundle(cfg: QwenVLConfig, cache_dir: str, progress: bool = True) -> str:
    """The cached bundle of ``cfg``'s shape, built first if absent (atomic: a killed build leaves none)."""
    from qwenvl_edge.bundle import Bundle
    from qwenvl_edge.errors import FormatError

    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, cache_key(cfg))
    if os.path.isdir(path):
        try:
            Bundle.open(path)
            return path
        except FormatError:
            shutil.rmtree(path)  # a damaged entry of this cache (its own name): rebuilt below
    need = bundle_bytes(cfg)
    free = shutil.disk_usage(cache_dir).free
    if free < need * 1.05:
        raise OSError(f"the bench's bundle of this shape needs {need / 1e9:.1f} GB in {cache_dir}, which has "
                      f"{free / 1e9:.1f} GB free (--cache DIR puts it elsewhere)")
    build_bundle(cfg, path, progress)
    return path


def bundle_bytes(cfg: QwenVLConfig) -> int:
    """About what build_bundle writes: the int8 vision weights, the decoder's tiles, embedding and head."""
    from qwenvl_edge.export.decoder_file import decoder_config
    from qwenvl_edge.export.vision_graph import weight_bytes

    from .synthetic_decoder import decode_bytes_ours

    decoder = decoder_config(cfg)
    return weight_bytes(cfg.visual, "int8") + decode_bytes_ours(decoder, "f16") + 2 * cfg.vocab_size * cfg.hidden_size


def build_bundle(cfg: QwenVLConfig, out: str, progress: bool = True) -> Manifest:
    """Write the bundle (vocabulary, vision graph, decoder file, manifest); returns the manifest."""
    from tqdm import tqdm

    from qwenvl_edge.export import manifest_builder, random_vision
    from qwenvl_edge.export.bundle_writer import BundleWriter
    from qwenvl_edge.export.decoder_file import decoder_config
    from qwenvl_edge.export.export_model import DECODER_FILE
    from qwenvl_edge.export.vision_graph import vision_info
    from qwenvl_edge.manifest import DecoderInfo
    from qwenvl_edge.tokenizer import Tokenizer
    from qwenvl_edge.vocab import SpecialIds, write_ranks

    from . import synthetic_decoder

    ranks = n_ranks(cfg)
    special = SpecialIds(ranks)
    if special.img_start != cfg.visual.image_start_id or special.n_vocab > cfg.vocab_size:
        raise ValueError(f"{ranks} ranks do not fit the config (image_start_id {cfg.visual.image_start_id}, "
                         f"vocab {cfg.vocab_size})")
    decoder = decoder_config(cfg)
    with BundleWriter(out, overwrite=True) as bundle, \
            tqdm(total=3, desc="synthetic bundle", unit="step", disable=not progress) as bar:
        write_ranks(bundle.path(manifest_builder.VOCAB_FILE), synthetic_ranks(ranks))
        tokenizer = Tokenizer.from_file(bundle.path(manifest_builder.VOCAB_FILE))
        generation = manifest_builder.generation_defaults(GENERATION_CONFIG, tokenizer, "synthetic generation config")
        bar.set_postfix_str(f"vision graph ({cfg.visual.layers} blocks of width {cfg.visual.width})")
        vision = vision_info(cfg.visual, random_vision.write_vision(cfg.visual, bundle.staging), "int8",
                             manifest_builder.preprocess(cfg))
        bar.update()
        bar.set_postfix_str(f"decoder ({decoder.num_layers} layers, hidden {decoder.hidden_size})")
        with tqdm(total=2 + 5 * decoder.num_layers, desc="decoder tensors", leave=False, disable=not progress) as inner:
            synthetic_decoder.write_ours(bundle.path(DECODER_FILE), decoder, "f16", made=inner.update)
        bar.update()
        bar.set_postfix_str("hashing")
        manifest = bundle.finish(manifest_builder.build(
            cfg, tokenizer, generation, vision,
            DecoderInfo(file=DECODER_FILE, config=decoder, lm_head="f16",
                        quantization={"method": "random", "bits": 4, "group_size": 128}),
            source="synthetic", note=" (synthetic, random weights)"))
        bar.update()
    return manifest
