"""The PyTorch reference of the whole Qwen-VL: vision encoder, image merge, decoder, lm_head.

Loads a Hugging Face checkpoint directory (float or GPTQ Int4, which is dequantised) without running
its remote code, and runs on the CPU at float32 by default. It is the yardstick of the exporters, the
native decoder and the orchestrator. It holds the whole model in RAM in the chosen dtype: at the real
size that is 38.6 GB at float32, so use it on tiny and test models; the exporters stream instead.

Image merge (docs/model.md 5): every ``<img>`` ... ``</img>`` span holds 256 slots; the image's 256 feature rows
overwrite exactly those slots, the tags keep their token embeddings. Deliberate deviation: the original
merges images only on a call without past keys (its generate loop never feeds an image later); here
features are spliced wherever they are given, which is what a multi-turn runtime with a kept KV cache
needs and equals the original on a fresh prefill.

Where the quirks of docs/model.md 12 live: 1, 2, 6, 7, 8 and 14 in reference_decoder; 3, 4 and 5 in
reference_vision; 9 here (image_paths: ids 0..255 are the path's bytes, at most 254 of them) and in
qwenvl_edge.image (no EXIF transpose, alpha dropped, bicubic squash); 15: images are encoded by
encode_images and passed in, so a caller may reuse features (the original re-encodes every turn; the
same per image up to GEMM rounding). 10-13 (prompt text, box scaling, stop words, history window) are
prompt- and generation-level: the orchestrator's, not the model's.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .checkpoint import load_float_state_dict
from .config import QwenVLConfig
from .reference_decoder import Decoder, KVCache
from .reference_vision import VisionTransformer
from qwenvl_edge.vocab import IMAGE_SLOTS


class QwenModel(Decoder):
    """``transformer.*`` of the checkpoint: wte, the decoder blocks h, ln_f, and visual."""

    def __init__(self, cfg: QwenVLConfig):
        super().__init__(cfg)
        self.wte = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.visual = VisionTransformer(cfg.visual)


def image_spans(input_ids: torch.Tensor, img_start: int) -> list[tuple[int, int, int]]:
    """(row, start, end) of every <img> .. </img> pair, row-major, in order of appearance."""
    spans = []
    for row in range(input_ids.shape[0]):
        ids = input_ids[row].tolist()
        starts = [i for i, t in enumerate(ids) if t == img_start]
        ends = [i for i, t in enumerate(ids) if t == img_start + 1]
        if len(starts) != len(ends) or any(e - s != IMAGE_SLOTS + 1 for s, e in zip(starts, ends)):
            raise ValueError(f"row {row}: <img> and </img> do not pair into spans of {IMAGE_SLOTS} slots")
        spans += [(row, s, e) for s, e in zip(starts, ends)]
    return spans


def image_paths(input_ids: torch.Tensor, img_start: int) -> list[str]:
    """The image paths written in the slots (byte values as ids, then <imgpad>), as the original
    recovers them: the first 255 slots, cut at the first <imgpad>, decoded as UTF-8."""
    img_pad = img_start + 2
    paths = []
    for row, s, e in image_spans(input_ids, img_start):
        slots = input_ids[row, s + 1 : e - 1].tolist()
        if img_pad not in slots:
            raise ValueError("image path longer than 254 bytes: the original needs an <imgpad> in the first 255 slots")
        paths.append(bytes(slots[: slots.index(img_pad)]).decode("utf-8"))
    return paths


class QwenVL(nn.Module):
    def __init__(self, cfg: QwenVLConfig):
        super().__init__()
        self.cfg = cfg
        self.transformer = QwenModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, dtype: torch.dtype = torch.float32) -> "QwenVL":
        cfg, state = load_float_state_dict(directory, dtype)
        with torch.device("meta"):
            model = cls(cfg)
        model.load_state_dict(state, strict=True, assign=True)
        return model.eval()

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [N, 3, S, S] float32 (preprocessed) -> features [N, 256, D] in the model dtype."""
        return self.transformer.visual(pixels)

    def embed(self, input_ids: torch.Tensor, image_features: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings [B, T, D] with the image features spliced into the image slots."""
        x = self.transformer.wte(input_ids)
        spans = image_spans(input_ids, self.cfg.visual.image_start_id)
        count = 0 if image_features is None else image_features.shape[0]
        if len(spans) != count:
            raise ValueError(f"the ids hold {len(spans)} image span(s) but {count} image feature set(s) were given")
        for n, (row, s, e) in enumerate(spans):
            x[row, s + 1 : e] = image_features[n].to(x.dtype)
        return x

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, image_features: torch.Tensor | None = None,
                cache: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """input_ids [B, T] -> (logits [B, T, vocab] in the model dtype, the extended KV cache)."""
        hidden, cache = self.transformer(self.embed(input_ids, image_features), cache)
        return self.lm_head(hidden), cache

    @torch.no_grad()
    def greedy(self, input_ids: torch.Tensor, image_features: torch.Tensor | None = None,
               max_new_tokens: int = 32, stop_ids: tuple[int, ...] = ()) -> list[int]:
        """Greedy continuation of one sequence [1, T] with the KV cache: the new token ids."""
        logits, cache = self(input_ids, image_features)
        out: list[int] = []
        for _ in range(max_new_tokens):
            token = int(logits[0, -1].argmax())
            out.append(token)
            if token in stop_ids:
                break
            logits, cache = self(torch.tensor([[token]]), cache=cache)
        return out
