"""What the eval needs from the model: option losses on a cached prompt, and min_new_tokens."""

import dataclasses

import numpy as np
import pytest
import torch

import qwenvl_edge
from qwenvl_edge.eval.ranking import continuation_losses
from qwenvl_edge.records import Timings
from qwenvl_edge.sampling import Sampling
from qwenvl_edge.session import Session

PROMPT = "<img>{image}</img>Context: N/A\nQuestion: Which colour?\nOptions: A. red\nB. blue\nC. green\nAnswer:"


def reference_losses(ref, model, prompt, image, options):
    """eval_mm's computation: the prompt ids + each option's ids, one forward pass without a cache, the
    cross-entropy of every next token, the mean over the option's tokens."""
    pixels = torch.from_numpy(qwenvl_edge.image.preprocess(image)[None])
    feats = ref.encode_images(pixels)
    ids = model.tokenizer.encode(prompt)
    out = []
    for option in options:
        target = model.tokenizer.encode(option)
        tokens = torch.tensor([ids + target])
        logits, _ = ref(tokens[:, :-1], feats)
        losses = torch.nn.functional.cross_entropy(logits[0].float(), tokens[0, 1:], reduction="none")
        out.append(float(losses[-len(target):].mean()))
    return out


@pytest.mark.slow
def test_continuation_losses_equal_the_reference(eval_model, tiny_bundle, tiny_int4_model, pictures):
    image = pictures[0]
    prompt = PROMPT.format(image=image)
    options = [" A", " B", " C", " no idea"]  # the last one has several tokens in any vocabulary
    losses = continuation_losses(eval_model, prompt, [image], options)
    assert losses == pytest.approx(reference_losses(tiny_int4_model, eval_model, prompt, image, options), rel=1e-3)
    # the prompt's cache is reused and left holding the prompt only: the same losses again, and a
    # generation afterwards equals one on a fresh model
    again = continuation_losses(eval_model, prompt, [image], options)
    assert again == pytest.approx(losses, rel=1e-6)
    after = eval_model.generate(prompt, [image], temperature=0, max_new_tokens=5).token_ids
    fresh = qwenvl_edge.load(tiny_bundle, threads=2, exact=True)
    assert after == fresh.generate(prompt, [image], temperature=0, max_new_tokens=5).token_ids


def test_continuation_losses_refuse_bad_input(eval_model, pictures):
    image = pictures[0]
    with pytest.raises(ValueError, match="at least one token"):
        continuation_losses(eval_model, PROMPT.format(image=image), [image], [" A", ""])
    with pytest.raises(ValueError, match="image span"):
        continuation_losses(eval_model, PROMPT.format(image=image), [], [" A"])


class StopFirst:
    """A decoder whose logits always put the stop id 7 first, then (last id + 1)."""

    capacity, ntk_alpha = 100, 1.0

    def __init__(self):
        self.length = 0

    def truncate(self, n):
        self.length = n

    def embed(self, ids):
        return np.asarray(ids, np.float32)[:, None]

    def forward(self, x):
        self.length += len(x)
        logits = np.zeros(20, np.float32)
        logits[(int(x[-1, 0]) + 1) % 20] = 1
        logits[7] = 2
        return logits

    def step(self, token):
        return self.forward(self.embed([token]))


def test_session_masks_the_stop_ids_for_the_first_tokens(eval_model):
    session = Session(StopFirst(), eval_model.session.config, img_start=-1)
    timings = Timings()

    def run(min_new):
        logits = session.prefill([3], {}, timings)
        tokens = session.generate(logits, max_new_tokens=5, sampling=Sampling(temperature=0), seed=None,
                                  timings=timings, min_new_tokens=min_new, stop_ids={7})
        return list(tokens)

    assert run(0) == [7, 7, 7, 7, 7]
    assert run(3) == [4, 5, 6, 7, 7]  # the stop id is masked for the first three tokens only


def test_generate_min_new_tokens_keeps_stop_ids_out(eval_model, pictures, monkeypatch):
    image = pictures[1]
    prompt = f"<img>{image}</img>What is it? Answer:"
    first = eval_model.generate(prompt, [image], temperature=0, max_new_tokens=4).token_ids[0]
    # make the greedy first token a stop id: the reply stops at once, unless min_new_tokens masks it
    monkeypatch.setattr(eval_model, "generation", dataclasses.replace(eval_model.generation, stop_words=[[first]]))
    stopped = eval_model.generate(prompt, [image], temperature=0, max_new_tokens=4)
    assert stopped.token_ids == [first] and stopped.finish_reason == "stop"
    masked = eval_model.generate(prompt, [image], temperature=0, max_new_tokens=4, min_new_tokens=2)
    assert masked.token_ids[0] != first and first not in masked.token_ids[:2]
    with pytest.raises(ValueError, match="min_new_tokens"):
        eval_model.generate(prompt, [image], temperature=0, max_new_tokens=4, min_new_tokens=-1)
