"""Train the small synthetic-task Qwen-VL and write it as a Hugging Face float checkpoint, or reuse the
copy cached for the same settings.

    python -m qwenvl_edge.export.synthetic.train OUT --vocab qwen.tiktoken [--steps N] [--seed S]
    python -m qwenvl_edge.export.synthetic.train --cache DIR --vocab qwen.tiktoken   (prints the path)

The checkpoint is written like the release by tiny.write_checkpoint (config.json, generation_config.json
of the base model, tokenizer files, model.safetensors) in float32, so that the PyTorch reference runs the
trained weights exactly; ``train_log.jsonl`` (the loss per task every LOG_EVERY steps) and
``train_config.json`` go beside it. The cache key is a hash of the settings, the vocabulary's ranks and
DATA_VERSION (bumped whenever the scenes, the tasks or the training change what is learned).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import shutil
import time

import torch

from qwenvl_edge.prompts import ChatML
from qwenvl_edge.tokenizer import Tokenizer

from ..tiny import tiny_ranks, write_checkpoint
from . import initial, training

DATA_VERSION = 2
LOG_EVERY = 10
LOG_FILE, CONFIG_FILE = "train_log.jsonl", "train_config.json"


def train(out: str, cfg: training.TrainConfig, vocab: str | os.PathLike | None, threads: int | None = None,
          progress: bool = True) -> training.QwenVL:
    """Train from the seed, write the checkpoint, its log and its settings into ``out``; the model."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    ranks = tiny_ranks(vocab, cfg.n_ranks)
    tok = Tokenizer(ranks)
    chatml = ChatML(tok)
    model_cfg = cfg.model_config(len(ranks))
    model = initial.initial_model(model_cfg, cfg.seed, cfg.vit_position_scale, cfg.adapter_locality)
    opt = training.optimizer(model, cfg)
    rng = random.Random(f"{training.TRAIN_SEED_BASE + cfg.seed}")
    os.makedirs(out, exist_ok=True)
    start, window = time.perf_counter(), []
    with open(os.path.join(out, LOG_FILE), "w", encoding="utf-8") as log:
        for step in range(cfg.steps):
            pixels, seqs, image_of = training.draw_batch(rng, cfg, tok, chatml)
            window.append(training.train_step(model, opt, pixels, seqs, image_of, tok.special.endoftext,
                                              training.learning_rate(cfg, step)))
            if (step + 1) % LOG_EVERY == 0 or step + 1 == cfg.steps:
                keys = sorted({k for w in window for k in w})
                record = dict(step=step + 1, lr=training.learning_rate(cfg, step),
                              seconds=round(time.perf_counter() - start, 1),
                              **{k: round(sum(w[k] for w in window if k in w) / sum(k in w for w in window), 4)
                                 for k in keys})
                log.write(json.dumps(record) + "\n")
                log.flush()
                window = []
                if progress:
                    print(" ".join(f"{k} {v}" for k, v in record.items()), flush=True)
    state = {name: p.detach().clone() for name, p in model.state_dict().items()}
    write_checkpoint(out, model_cfg, state, ranks, dtype="float32", chat=False)
    with open(os.path.join(out, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(dict(dataclasses.asdict(cfg), data_version=DATA_VERSION, vocab_ranks=len(ranks),
                       torch=torch.__version__, seconds=round(time.perf_counter() - start, 1)), f, indent=1)
    return model


def cache_key(cfg: training.TrainConfig, vocab: str | os.PathLike | None) -> str:
    ranks = tiny_ranks(vocab, cfg.n_ranks)
    digest = hashlib.sha256(json.dumps([dataclasses.asdict(cfg), DATA_VERSION]).encode())
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        digest.update(token + rank.to_bytes(4, "little"))
    return digest.hexdigest()[:16]


def cached(cache: str | os.PathLike, cfg: training.TrainConfig, vocab: str | os.PathLike | None,
           threads: int | None = None, progress: bool = True) -> str:
    """The checkpoint trained with these settings under ``cache``, trained now if it is not there yet.
    A finished training is renamed into place, so an interrupted one is never reused."""
    path = os.path.join(cache, f"synthetic-{cache_key(cfg, vocab)}")
    if os.path.isfile(os.path.join(path, CONFIG_FILE)):
        return path
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    train(partial, cfg, vocab, threads, progress)
    os.replace(partial, path)
    return path


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """One --flag per TrainConfig field, its default the field's."""
    for field in dataclasses.fields(training.TrainConfig):
        p.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)


def config_from(args: argparse.Namespace) -> training.TrainConfig:
    return training.TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(training.TrainConfig)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", help="write the checkpoint here (default: into --cache)")
    parser.add_argument("--cache", help="reuse or fill the checkpoint cache in this directory")
    parser.add_argument("--vocab", help="a qwen.tiktoken to truncate to --n-ranks (default: the 256 single bytes)")
    parser.add_argument("--threads", type=int)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if (args.out is None) == (args.cache is None):
        parser.error("give OUT or --cache")
    cfg = config_from(args)
    if args.cache:
        print(cached(args.cache, cfg, args.vocab, args.threads))
    else:
        train(args.out, cfg, args.vocab, args.threads)
        print(args.out)


if __name__ == "__main__":
    main()
