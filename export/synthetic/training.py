"""Training a small Qwen-VL on the synthetic tasks with the project's PyTorch reference (reference_model).

The model is the real architecture scaled down (TrainConfig): the ViT with the cross-attention adapter
and its 256 learned queries (at a 224 input: 256 patches), and the Qwen decoder, over a truncated real
vocabulary, started from initial.initial_model.
Each step draws fresh scenes from the seeded stream, asks ``tasks_per_image`` tasks and up to
``boxes_per_image`` boxes about each (raw prompts in the paper's formats, a share in ChatML), encodes
each image once and trains on the answers' tokens only. The adapter's key/query position table
(attn_pool.pos_embed) stays frozen at its sin-cos values, as in the original. Sequences of a batch
are right-padded: under the causal mask a pad after a sequence changes nothing of it, and pads carry
no loss.
"""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import torch
import torch.nn.functional as F

from qwenvl_edge.image import preprocess
from qwenvl_edge.prompts import ChatML, DEFAULT_SYSTEM, picture, raw_ids
from qwenvl_edge.tokenizer import IMAGE_TAGS, Tokenizer

from ..config import QwenVLConfig
from ..reference_decoder import KVCache
from ..reference_model import QwenVL
from ..tiny import tiny_config
from . import scenes, task_text

IGNORE = -100
TRAIN_SEED_BASE = 0  # training scenes are seeded from here; eval_sets.EVAL_SEED_BASE lies far above
IMAGE_REF = "image.png"  # what the prompts name the image (its slots are overwritten by the features)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    n_ranks: int = 16384  # BPE ranks kept from the vocabulary: every caption fits the task's 30 new tokens
    hidden: int = 256
    layers: int = 3
    heads: int = 4
    ffn: int = 768  # the decoder's MLP width (config intermediate_size is twice it, docs/model.md 12.2)
    vit_width: int = 64
    vit_layers: int = 2
    vit_heads: int = 4
    image_size: int = 224  # 16x16 patches of 14: the ViT and adapter at a quarter of the real 448's work
    steps: int = 2000
    batch_images: int = 8  # many pictures a step: the gradient that teaches the vision side is their differences
    # Questions about one image share its vision pass and prefix, so more of them cost little: each image
    # gets tasks_per_image of the caption, VQA and text tasks and a box for up to boxes_per_image of its
    # shapes (the boxes learn slowest: benchmarks/NOTES_quality.md, "Where things are").
    tasks_per_image: int = 2
    boxes_per_image: int = 3
    chat_fraction: float = 0.15
    # Adam moves each weight ~lr a step whatever its gradient's size: at the start, before the decoder reads
    # the picture, that makes every picture's features alike within tens of steps (the collapse in
    # benchmarks/NOTES_quality.md). A slower vision side survives until the decoder starts reading.
    lr: float = 1e-3
    vision_lr_scale: float = 0.3  # the ViT's and adapter's learning rate over lr (the decoder's)
    warmup: int = 20
    # Where things are (initial.py): the ViT's positions start as the sin-cos table times this, and the
    # adapter's queries start attending near their own cell with this query-key gain (0: random starts).
    vit_position_scale: float = 1.4
    adapter_locality: float = 16.0
    weight_decay: float = 0.01
    seed: int = 0

    def model_config(self, n_ranks: int) -> QwenVLConfig:
        cfg = tiny_config(n_ranks, hidden_size=self.hidden, num_hidden_layers=self.layers,
                          num_attention_heads=self.heads, kv_channels=self.hidden // self.heads,
                          intermediate_size=2 * self.ffn)
        visual = dataclasses.replace(cfg.visual, width=self.vit_width, layers=self.vit_layers, heads=self.vit_heads,
                                     output_dim=self.hidden, image_size=self.image_size)
        return dataclasses.replace(cfg, visual=visual)


@dataclasses.dataclass
class Sequence:
    ids: list[int]
    targets: list[int]  # IGNORE where no loss
    prefix: int  # ids[:prefix] end with the image span: the same for every task about one image
    task: str


def sequence(tok: Tokenizer, chatml: ChatML, scene: scenes.Scene, q: task_text.Question, chat: bool) -> Sequence:
    """The ids of one training example and its targets: the answer's tokens and the stop token. The
    prompt and the answer are encoded apart, as a generation sees them."""
    if chat:
        query, reply = task_text.chat_exchange(scene, q)
        prompt, _ = chatml.context(picture(1, IMAGE_REF) + query, system=DEFAULT_SYSTEM)
        answer = tok.encode(reply, allowed_special=IMAGE_TAGS) + [tok.special.im_end]
    else:
        text, continuation = task_text.raw_prompt(q, IMAGE_REF)
        prompt = raw_ids(tok, text)
        answer = raw_ids(tok, continuation) + [tok.special.endoftext]
    ids = prompt + answer
    # Position i predicts ids[i + 1]: the targets are the answer tokens, placed one position earlier.
    targets = [IGNORE] * (len(prompt) - 1) + answer + [IGNORE]
    return Sequence(ids, targets, prompt.index(tok.special.img_start + 1) + 1, q.task)


def draw_batch(rng: random.Random, cfg: TrainConfig, tok: Tokenizer, chatml: ChatML
               ) -> tuple[torch.Tensor, list[Sequence], list[int]]:
    """(pixels [B, 3, S, S], the sequences, the image index of each sequence) of one step. All the
    questions about one image are raw prompts or all ChatML, so that they share one prefix."""
    pixels, seqs, image_of = [], [], []
    for b in range(cfg.batch_images):
        scene = scenes.random_scene(rng)
        pixels.append(preprocess(scenes.draw(scene), cfg.image_size))
        chat = rng.random() < cfg.chat_fraction
        tasks = [t for t in (task_text.CAPTION, task_text.VQA, task_text.TEXT) if t != task_text.TEXT or scene.word]
        tasks = rng.sample(tasks, min(cfg.tasks_per_image, len(tasks)))
        questions = [task_text.question(scene, t, rng) for t in tasks]
        shapes = rng.sample(scene.shapes, min(cfg.boxes_per_image, len(scene.shapes)))
        for q in questions + [task_text.grounding(scene, s) for s in shapes]:
            assert q is not None  # the text task is only asked about scenes with a word
            seqs.append(sequence(tok, chatml, scene, q, chat))
            image_of.append(b)
    return torch.from_numpy(np.stack(pixels)), seqs, image_of


def padded(rows: list[list[int]], fill: int) -> torch.Tensor:
    length = max(len(r) for r in rows)
    return torch.tensor([r + [fill] * (length - len(r)) for r in rows])


def image_spread(features: torch.Tensor) -> float:
    """How much the image features [B, 256, D] differ between the pictures of a batch, over their
    spread overall: near 0 when the vision side gives every picture the same features (the collapse
    benchmarks/NOTES_quality.md describes), ~0.15-0.3 at the init."""
    features = features.detach()
    return float(features.std(0).mean() / features.std())


def loss_per_sequence(model: QwenVL, features: torch.Tensor, seqs: list[Sequence], image_of: list[int],
                      pad: int) -> torch.Tensor:
    """Mean cross-entropy of each sequence's answer tokens [N], given the features of the batch's
    images. Each distinct (image, prefix) runs through the decoder once: the questions about it
    continue from its KV cache (the same positions and causal mask as the whole sequence,
    reference_decoder). The lm_head runs on the answer rows only."""
    losses = torch.zeros(len(seqs))
    groups: dict[tuple[int, ...], list[int]] = {}
    for n, s in enumerate(seqs):
        groups.setdefault(tuple(s.ids[: s.prefix]), []).append(n)
    for prefix, members in groups.items():
        images = sorted({image_of[n] for n in members})
        _, cache = model.transformer(model.embed(torch.tensor([prefix] * len(images)), features[images]))
        pick = torch.tensor([images.index(image_of[n]) for n in members])
        cache = KVCache([k[pick] for k in cache.keys], [v[pick] for v in cache.values], cache.ntk_alpha)
        ids = padded([seqs[n].ids[len(prefix):] for n in members], pad)
        targets = padded([seqs[n].targets[len(prefix):] for n in members], IGNORE)
        hidden, _ = model.transformer(model.transformer.wte(ids), cache)
        rows, cols = torch.nonzero(targets != IGNORE, as_tuple=True)
        token_losses = F.cross_entropy(model.lm_head(hidden[rows, cols]), targets[rows, cols], reduction="none")
        sums = torch.zeros(len(members)).index_add(0, rows, token_losses)
        losses = losses.index_put((torch.tensor(members),), sums / torch.bincount(rows, minlength=len(members)))
    return losses


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to a tenth."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * t)))


def optimizer(model: QwenVL, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms, biases, embeddings and the learned queries; the vision side's
    learning rate scaled by vision_lr_scale."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decays = p.ndim == 2 and "wte" not in name and "query" not in name
            groups.setdefault((decays, ".visual." in f".{name}"), []).append(p)
    return torch.optim.AdamW([dict(params=params, weight_decay=cfg.weight_decay if decays else 0.0,
                                   lr_scale=cfg.vision_lr_scale if visual else 1.0)
                              for (decays, visual), params in groups.items()], lr=cfg.lr, betas=(0.9, 0.98))


def train_step(model: QwenVL, opt: torch.optim.Optimizer, pixels, seqs: list[Sequence], image_of: list[int],
               pad: int, lr: float) -> dict[str, float]:
    """One optimiser step; the loss per answer token overall, the mean per task, and the image features'
    spread."""
    features = model.transformer.visual(pixels)
    losses = loss_per_sequence(model, features, seqs, image_of, pad)
    # Every answer token weighs the same, as in language-model training: a box's ~20 tokens are not
    # diluted to the weight of a yes/no's two.
    tokens = torch.tensor([sum(t != IGNORE for t in s.targets) for s in seqs], dtype=losses.dtype)
    loss = (losses * tokens).sum() / tokens.sum()
    for group in opt.param_groups:
        group["lr"] = lr * group["lr_scale"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    out = {"loss": loss.item(), "image_spread": image_spread(features)}
    losses = losses.detach()
    for task in task_text.TASKS:
        picked = [float(losses[i]) for i, s in enumerate(seqs) if s.task == task]
        if picked:
            out[f"loss_{task}"] = sum(picked) / len(picked)
    return out
