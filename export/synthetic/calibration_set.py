"""A GPTQ calibration file of the synthetic training distribution (export/calibration.py's user format:
JSON lines ``{"text": ...}`` whose ``<img>PATH</img>`` spans name images beside the file): every task about
each scene, prompt and answer, raw and a share in ChatML, as the model was trained on them. Its scenes come
from their own seed range, neither the training stream's nor the eval sets'."""

from __future__ import annotations

import json
import os
import random

from qwenvl_edge.prompts import DEFAULT_SYSTEM, picture

from . import scenes, task_text

CALIBRATION_SEED_BASE = 1 << 36  # between the training stream (0) and the eval sets (eval_sets.EVAL_SEED_BASE)


def _chat_text(scene: scenes.Scene, q: task_text.Question, ref: str) -> str:
    query, reply = task_text.chat_exchange(scene, q)
    return (f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\n{picture(1, ref)}{query}<|im_end|>\n"
            f"<|im_start|>assistant\n{reply}<|im_end|>")


def write(out: str | os.PathLike, images: int = 32, seed: int = 0, chat_fraction: float = 0.15) -> str:
    """Write ``images`` scenes with all their tasks as samples; returns the JSONL's path."""
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    path = os.path.join(out, "calibration.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for n in range(images):
            rng = random.Random(f"{CALIBRATION_SEED_BASE + seed}:{n}")
            scene = scenes.random_scene(rng)
            ref = f"images/calibration-{n:04d}.png"
            scenes.draw(scene).save(os.path.join(out, ref))
            chat = rng.random() < chat_fraction
            for task in task_text.TASKS:
                q = task_text.question(scene, task, rng)
                if q is None:
                    continue
                if chat:
                    text = _chat_text(scene, q, ref)
                else:
                    prompt, continuation = task_text.raw_prompt(q, ref)
                    text = prompt + continuation + "<|endoftext|>"
                f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    return path
