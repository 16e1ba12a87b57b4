"""What a bundle's manifest says about the model, read from the checkpoint directory (never assumed).

Special-token ids come from the checkpoint's own ``qwen.tiktoken`` (they follow from its rank count)
and must agree with config.json's ``visual.image_start_id``; generation defaults come from its
``generation_config.json``; the preprocessing constants are qwenvl_edge.image's.
"""

from __future__ import annotations

import json
import os
from typing import Any

from qwenvl_edge import image
from qwenvl_edge.errors import FormatError
from qwenvl_edge.tokenizer import Tokenizer

from .config import QwenVLConfig

VOCAB_FILE = "qwen.tiktoken"
GENERATION_FILE = "generation_config.json"
# Bumped whenever qwenvl_edge.image changes its output: image-feature caches key on it.
PREPROCESS_VERSION = 1
SPECIAL_NAMES = ("endoftext", "im_start", "im_end", "ref_start", "box_start", "img_start", "img_end", "img_pad")


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


def tokenizer_section(tokenizer: Tokenizer) -> dict[str, Any]:
    sp = tokenizer.special
    return {"file": VOCAB_FILE, "n_ranks": sp.n_ranks, "n_vocab": sp.n_vocab,
            "special_ids": {name: getattr(sp, name) for name in SPECIAL_NAMES}}


def generation_section(directory: str, tokenizer: Tokenizer) -> dict[str, Any]:
    """The checkpoint's generation defaults and the stop words of its prompt format (spec 7.2, 7.3)."""
    path = os.path.join(directory, GENERATION_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise FormatError(f"{path}: missing (it holds chat_format, top_p and the stop ids)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from e
    chat_format = raw.get("chat_format", "raw")
    if chat_format not in ("chatml", "raw"):
        raise FormatError(f"{path}: chat_format {chat_format!r} is not one of 'chatml', 'raw'")
    sp = tokenizer.special
    eos = raw.get("eos_token_id", sp.endoftext)
    if eos != sp.endoftext:
        raise FormatError(f"{path}: eos_token_id {eos} is not <|endoftext|> ({sp.endoftext}) of qwen.tiktoken")
    if chat_format == "chatml":
        stop_words = [[sp.im_end], [sp.im_start]]
    else:
        stop_words = [tokenizer.encode("Human:")]
    return {
        "chat_format": chat_format,
        "do_sample": bool(raw.get("do_sample", False)),
        "top_p": float(raw.get("top_p", 1.0)),
        "top_k": int(raw.get("top_k", 0)),
        "temperature": float(raw.get("temperature", 1.0)),
        "repetition_penalty": float(raw.get("repetition_penalty", 1.0)),
        "max_new_tokens": int(raw.get("max_new_tokens", 512)),
        "max_window_size": int(raw.get("max_window_size", 6144)),
        "eos_token_id": eos,
        "pad_token_id": raw.get("pad_token_id", eos),
        "stop_words": stop_words,
        "system": "You are a helpful assistant." if chat_format == "chatml" else "",
    }


def preprocess_section(cfg: QwenVLConfig) -> dict[str, Any]:
    return {"version": PREPROCESS_VERSION, "image_size": cfg.visual.image_size, "resize": "pillow-bicubic-squash",
            "rescale": "1/255", "mean": [float(x) for x in image.MEAN], "std": [float(x) for x in image.STD],
            "channels": "RGB"}
