"""A bundle's manifest (qwenvl_edge.manifest) built from what the checkpoint says, never assumed: the one
builder the exporter and the bench's synthetic bundles both call.

Special-token ids come from the checkpoint's own ``qwen.tiktoken`` (they follow from its rank count)
and must agree with config.json's ``visual.image_start_id``; generation defaults come from its
``generation_config.json``; the preprocessing constants are qwenvl_edge.image's.
"""

from __future__ import annotations

import json
import os
from typing import Any

import qwenvl_edge
from qwenvl_edge import image
from qwenvl_edge.errors import FormatError
from qwenvl_edge.manifest import DecoderInfo, Generation, Manifest, ModelInfo, Preprocess, TokenizerInfo, VisionInfo
from qwenvl_edge.tokenizer import Tokenizer

from .config import QwenVLConfig

VOCAB_FILE = "qwen.tiktoken"
GENERATION_FILE = "generation_config.json"
SPECIAL_NAMES = ("endoftext", "im_start", "im_end", "ref_start", "box_start", "img_start", "img_end", "img_pad")
CHATML_SYSTEM = "You are a helpful assistant."


def read_tokenizer(directory: str, cfg: QwenVLConfig) -> Tokenizer:
    path = os.path.join(directory, VOCAB_FILE)
    if not os.path.isfile(path):
        raise FormatError(f"{path}: the vocabulary file is missing")
    tokenizer = Tokenizer.from_file(path)
    sp = tokenizer.special
    if sp.img_start != cfg.visual.image_start_id:
        raise FormatError(f"{path}: its {sp.n_ranks} ranks put <img> at id {sp.img_start}, but config.json's "
                          f"visual.image_start_id is {cfg.visual.image_start_id} (mismatched vocabulary?)")
    if sp.n_vocab > cfg.vocab_size:
        raise FormatError(f"{path}: {sp.n_vocab} token ids do not fit config.json's vocab_size {cfg.vocab_size}")
    return tokenizer


def read_generation_config(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, GENERATION_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise FormatError(f"{path}: missing (it holds chat_format, top_p and the stop ids)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(raw, dict):
        raise FormatError(f"{path}: not a JSON object")
    return raw


def generation_defaults(raw: dict[str, Any], tokenizer: Tokenizer, where: str = GENERATION_FILE) -> Generation:
    """The generation defaults of a generation_config.json and the stop words of its prompt format
    (docs/model.md 7.2, 7.3)."""
    chat_format = raw.get("chat_format", "raw")
    if chat_format not in ("chatml", "raw"):
        raise FormatError(f"{where}: chat_format {chat_format!r} is not one of 'chatml', 'raw'")
    sp = tokenizer.special
    eos = raw.get("eos_token_id", sp.endoftext)
    if eos != sp.endoftext:
        raise FormatError(f"{where}: eos_token_id {eos} is not <|endoftext|> ({sp.endoftext}) of qwen.tiktoken")
    stop_words = [[sp.im_end], [sp.im_start]] if chat_format == "chatml" else [tokenizer.encode("Human:")]
    try:
        return Generation(
            chat_format=chat_format, do_sample=bool(raw.get("do_sample", False)), top_p=float(raw.get("top_p", 1.0)),
            top_k=int(raw.get("top_k", 0)), temperature=float(raw.get("temperature", 1.0)),
            repetition_penalty=float(raw.get("repetition_penalty", 1.0)),
            max_new_tokens=int(raw.get("max_new_tokens", 512)), max_window_size=int(raw.get("max_window_size", 6144)),
            eos_token_id=eos, pad_token_id=int(raw.get("pad_token_id", eos)), stop_words=stop_words,
            system=CHATML_SYSTEM if chat_format == "chatml" else "")
    except (TypeError, ValueError) as e:
        raise FormatError(f"{where}: a generation default is not a number ({e})") from e


def build(cfg: QwenVLConfig, tokenizer: Tokenizer, generation: Generation, vision: VisionInfo, decoder: DecoderInfo,
          source: str, note: str = "", export: dict[str, Any] | None = None) -> Manifest:
    """The manifest of a bundle of ``cfg`` (its files are listed and hashed by the bundle writer)."""
    sp = tokenizer.special
    manifest = Manifest(
        created_by=f"qwenvl-edge {qwenvl_edge.__version__}{note}",
        model=ModelInfo(source=source, config=cfg.to_json()),
        tokenizer=TokenizerInfo(file=VOCAB_FILE, n_ranks=sp.n_ranks, n_vocab=sp.n_vocab,
                                special_ids={name: getattr(sp, name) for name in SPECIAL_NAMES}),
        vision=vision, decoder=decoder, generation=generation, export=export)
    for record in (manifest.tokenizer, manifest.vision, manifest.decoder, manifest.decoder.config, manifest.generation):
        record.check(f"{source} manifest")
    return manifest


def preprocess(cfg: QwenVLConfig) -> Preprocess:
    return Preprocess(version=image.PREPROCESS_VERSION, image_size=cfg.visual.image_size,
                      resize="pillow-bicubic-squash", rescale="1/255", mean=[float(x) for x in image.MEAN],
                      std=[float(x) for x in image.STD], channels="RGB")
