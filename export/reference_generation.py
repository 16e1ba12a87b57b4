"""The PyTorch reference (reference_model) behind the interface the eval harness asks of a model
(``generate``, ``tokenizer``, ``generation``: qwenvl_edge.eval.runner), so that the harness scores the
reference exactly as it scores a bundle, and teacher-forced logits for greedy-agreement checks.

Generation follows the runtime's (qwenvl_edge.model.Model.run): the prompt's ``<img>`` spans filled with
the images in order (``<img>name</img>`` put in front of a prompt without spans), greedy (the harness
asks temperature 0), the stop ids (endoftext and the format's single-token stop words) masked for the
first ``min_new_tokens`` tokens, and the reply assembled by qwenvl_edge.reply.deltas as the runtime's is
(ending at a stop id, at a multi-token stop word or at ``max_new_tokens``). The images go through qwenvl_edge.image.preprocess at the model's input size, as in the runtime.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
import torch

from qwenvl_edge import image
from qwenvl_edge.manifest import Generation
from qwenvl_edge.prompts import raw_ids, with_image_spans
from qwenvl_edge.records import Timings
from qwenvl_edge.reply import Reply, ReplyStream, deltas, stop_tokens
from qwenvl_edge.tokenizer import Tokenizer

from .reference_model import QwenVL


class ReferenceGenerator:
    def __init__(self, checkpoint: str | os.PathLike, generation: Generation):
        """``checkpoint``: a float checkpoint directory; ``generation``: the stop words and format of a
        bundle exported from it (Model.generation)."""
        self.model = QwenVL.from_pretrained(checkpoint)
        self.tokenizer = Tokenizer.from_file(os.path.join(checkpoint, "qwen.tiktoken"))
        self.generation = generation

    def prompt(self, prompt: str, images: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(ids [1, T], image features [N, 256, D] or None) of a base-model prompt."""
        names = [image.reference_name(s, n) for n, s in enumerate(images, 1)]
        ids = raw_ids(self.tokenizer, with_image_spans(self.tokenizer, prompt, names))
        features = None
        if images:
            size = self.model.cfg.visual.image_size
            pixels = torch.from_numpy(np.stack([image.preprocess(s, size) for s in images]))
            features = self.model.encode_images(pixels)
        return torch.tensor([ids]), features

    @torch.no_grad()
    def generate(self, prompt: str, images: Sequence[str] = (), *, temperature: float = 0,
                 max_new_tokens: int = 32, min_new_tokens: int = 0) -> Reply:
        if temperature != 0:
            raise ValueError("the reference generates greedily only (temperature=0)")
        stop_ids, stop_words = stop_tokens(self.tokenizer.special.endoftext, self.generation.stop_words)
        ids, features = self.prompt(prompt, images)

        def tokens() -> Iterator[int]:
            logits, cache = self.model(ids, features)
            for n in range(max_new_tokens):
                row = logits[0, -1].clone()
                if n < min_new_tokens:
                    row[sorted(stop_ids)] = -torch.inf
                token = int(row.argmax())
                yield token
                logits, cache = self.model(torch.tensor([[token]]), cache=cache)

        stream = ReplyStream(lambda owner: deltas(owner, tokens(), self.tokenizer, stop_ids, stop_words, Timings()))
        for _ in stream:
            pass
        return stream.reply

    @torch.no_grad()
    def continuation_logits(self, prompt: str, images: Sequence[str], continuation: Sequence[int]) -> np.ndarray:
        """Rows of logits [len(continuation), vocab] predicting each token of ``continuation`` after the
        prompt (as Session.continuation_logits does on a bundle)."""
        ids, features = self.prompt(prompt, images)
        full = torch.cat([ids, torch.tensor([list(continuation[:-1])], dtype=ids.dtype)], dim=1)
        logits, _ = self.model(full, features)
        return logits[0, ids.shape[1] - 1 :].float().numpy()
