"""Everything of a Hugging Face checkpoint directory but its weights, as the releases have them:
config.json, generation_config.json (chat or base), tokenizer_config.json, qwen.tiktoken and, for the
GPTQ model, quantize_config.json. Written by the random-checkpoint writers (tiny.py, release_checkpoint.py)."""

from __future__ import annotations

import json
import os

from qwenvl_edge.vocab import SpecialIds, write_ranks

from .config import QwenVLConfig


def gptq_config(group_size: int = 128, sym: bool = True, act_order: bool = False, v1: bool = True) -> dict:
    """quantize_config.json of Qwen-VL-Chat-Int4 (docs/model.md 8.1) with the given settings."""
    quant = {"bits": 4, "group_size": group_size, "damp_percent": 0.01, "desc_act": act_order, "static_groups": False,
             "sym": sym, "true_sequential": True, "model_name_or_path": None, "model_file_base_name": "model"}
    if not v1:
        quant["checkpoint_format"] = "gptq_v2"
    return quant


def write_side_files(directory: str, cfg: QwenVLConfig, ranks: dict[bytes, int], chat: bool,
                     quant: dict | None = None) -> None:
    """Everything of a checkpoint directory but the weights: config.json, generation_config.json (chat
    or base), tokenizer_config.json, qwen.tiktoken and, for a GPTQ model, quantize_config.json."""
    special = SpecialIds(len(ranks))
    if cfg.visual.image_start_id != special.img_start:
        raise ValueError("visual.image_start_id does not follow from the vocabulary size")
    if quant is not None:
        write_json(os.path.join(directory, "quantize_config.json"), quant)
    write_json(os.path.join(directory, "config.json"), cfg.to_json())
    write_json(os.path.join(directory, "generation_config.json"), {
        "chat_format": "chatml" if chat else "raw",
        "eos_token_id": special.endoftext,
        "pad_token_id": special.endoftext,
        "max_window_size": 6144,
        "max_new_tokens": 512,
        "do_sample": True,
        "top_k": 0,
        "top_p": 0.3 if chat else 0.5,
        "transformers_version": "4.31.0",
    })
    write_json(os.path.join(directory, "tokenizer_config.json"), {
        "model_max_length": 8192,
        "tokenizer_class": "QWenTokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_qwen.QWenTokenizer", None]},
    })
    write_ranks(os.path.join(directory, "qwen.tiktoken"), ranks)


def write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
