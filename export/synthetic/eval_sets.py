"""Held-out eval sets of the synthetic tasks in the eval harness's JSONL schema (docs/eval.md), drawn
from a seed: one file per task (caption.jsonl, vqa.jsonl, textvqa.jsonl, refcoco.jsonl) beside an
images/ folder, and prompts.jsonl: raw prompts with their images for the greedy-agreement checks.

    python -m qwenvl_edge.export.synthetic.eval_sets OUT [--items 150] [--seed 1000]

The seeds of the eval scenes are offset from the training stream's (training.TRAIN_SEED_BASE), so no
eval scene is a training scene. VQA answers are written as ten identical annotations, as the VQA
metric needs four agreeing ones for a full score.
"""

from __future__ import annotations

import argparse
import json
import os
import random

from . import scenes, task_text

VQA_ANNOTATORS = 10
EVAL_SEED_BASE = 1 << 40  # training scenes are seeded below it (training.py)


def scene_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"{seed}:{index}")


def _record(task: str, item_id: int, ref: str, scene: scenes.Scene, q: task_text.Question) -> dict:
    if task == task_text.CAPTION:
        return dict(id=item_id, image=ref, captions=task_text.captions(scene))
    if task == task_text.GROUNDING:
        assert q.shape is not None
        return dict(id=item_id, image=ref, expression=q.question, box=list(q.shape.box),
                    width=scene.width, height=scene.height)
    return dict(id=item_id, image=ref, question=q.question, answers=[q.answer] * VQA_ANNOTATORS, kind=q.kind)


def write(out: str | os.PathLike, items: int = 150, seed: int = 0) -> dict[str, str]:
    """Write ``items`` items per task under ``out``; returns {task: path of its JSONL}. Every task gets
    its own scenes; the text task draws scenes until each has a word."""
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    paths = {}
    prompts = []
    for t, task in enumerate(task_text.TASKS):
        path = os.path.join(out, f"{task}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            index, written = 0, 0
            while written < items:
                rng = scene_rng(EVAL_SEED_BASE + seed, t * 1_000_000 + index)
                index += 1
                scene = scenes.random_scene(rng)
                q = task_text.question(scene, task, rng)
                if q is None:
                    continue
                ref = f"images/{task}-{written:04d}.png"
                scenes.draw(scene).save(os.path.join(out, ref))
                f.write(json.dumps(_record(task, written, ref, scene, q)) + "\n")
                prompts.append(dict(task=task, id=written, prompt=task_text.raw_prompt(q, ref)[0], image=ref))
                written += 1
        paths[task] = path
    with open(os.path.join(out, "prompts.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p) + "\n" for p in prompts)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--items", type=int, default=150, help="items per task")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for task, path in write(args.out, args.items, args.seed).items():
        print(f"{task}: {path}")


if __name__ == "__main__":
    main()
