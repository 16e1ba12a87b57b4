"""Where things are in a synthetic-task model's image features (benchmarks/NOTES_quality.md, "Where
things are"): the features' spread across pictures, the adapter's attention (entropy, distance from
each query's own cell) and how well each image token's cell is read back from its feature.

    python benchmarks/probe_positions.py CHECKPOINT [CHECKPOINT ...]
    python benchmarks/probe_positions.py --init [--vit-position-scale 0 --adapter-locality 0 ...]
"""

from __future__ import annotations

import argparse
import math
import random

import numpy as np
import torch

from qwenvl_edge.export.reference_model import QwenVL
from qwenvl_edge.export.synthetic import initial, probes, scenes, train, training
from qwenvl_edge.image import preprocess

PICTURES = 24


def report(name: str, model: QwenVL, image_size: int) -> None:
    rng = random.Random("probe_positions")
    pixels = torch.from_numpy(np.stack([preprocess(scenes.draw(scenes.random_scene(rng)), image_size)
                                        for _ in range(PICTURES)]))
    with torch.no_grad():
        features = model.transformer.visual(pixels)
    attention = probes.adapter_attention(model, pixels)
    r2 = probes.position_r2(features)
    print(f"{name}: spread {training.image_spread(features):.3f}; adapter entropy "
          f"{probes.attention_entropy(attention):.2f} of {math.log(attention.shape[-1]):.2f}, distance "
          f"{probes.mean_attended_distance(attention):.2f} cells; "
          f"cell from feature R^2 row {r2[0]:.2f} col {r2[1]:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="*")
    p.add_argument("--init", action="store_true", help="the training init of TrainConfig's settings")
    train.add_config_arguments(p)
    args = p.parse_args()
    torch.manual_seed(0)
    if args.init:
        cfg = train.config_from(args)
        model = initial.initial_model(cfg.model_config(cfg.n_ranks), cfg.seed, cfg.vit_position_scale,
                                      cfg.adapter_locality)
        report("init", model.eval(), cfg.image_size)
    for path in args.checkpoints:
        model = QwenVL.from_pretrained(path).eval()
        report(path, model, model.cfg.visual.image_size)


if __name__ == "__main__":
    main()
