"""Prefix reuse of the KV cache, on a fake decoder that records what it is asked to compute."""

import numpy as np
import pytest

from qwenvl_edge.manifest import DecoderConfig
from qwenvl_edge.sampling import Sampling
from qwenvl_edge.records import ImageFeatures, Timings
from qwenvl_edge._core import ntk_alpha
from qwenvl_edge.session import Session
from qwenvl_edge.vocab import IMAGE_SLOTS

IMG, END, PAD = 1000, 1001, 1002


class FakeDecoder:
    """Logits favour (last input id + 1); records forward lengths; mimics the native NTK rule."""

    capacity, threads = 4096, 1

    def __init__(self, seq_length=2048):
        self.length, self.ntk_alpha, self.calls, self.seq = 0, 1.0, [], seq_length

    def truncate(self, n):
        assert n <= self.length
        self.length = n

    def embed(self, ids):
        x = np.zeros((len(ids), 4), np.float32)
        x[:, 0] = ids
        return x

    def forward(self, x):
        if self.length == 0:
            self.ntk_alpha = ntk_alpha(len(x), self.seq)
        self.calls.append((self.length, len(x), x.copy()))
        self.length += len(x)
        return self._logits(int(x[-1, 0]))

    def step(self, token):
        return self.forward(self.embed([token]))

    @staticmethod
    def _logits(last):
        logits = np.zeros(2000, np.float32)
        logits[(last + 1) % 2000] = 1
        return logits


def config(seq_length=2048, dynamic_ntk=True):
    return DecoderConfig(vocab_size=2000, hidden_size=4, num_layers=1, num_heads=1, head_dim=4, ffn_dim=8,
                         rms_eps=1e-6, rope_base=10000.0, seq_length=seq_length, dynamic_ntk=dynamic_ntk,
                         logn_attn=True, max_context=4096)


def session(seq_length=2048):
    return Session(FakeDecoder(seq_length), config(seq_length), IMG)


def image_ids(prefix):
    return prefix + [IMG] + [PAD] * IMAGE_SLOTS + [END]


def feats(value):
    return ImageFeatures(str(value), np.full((IMAGE_SLOTS, 4), value, np.float32))


def test_a_second_prompt_prefills_only_the_new_part():
    s, t = session(), Timings()
    s.prefill([1, 2, 3, 4], {}, t)
    s.prefill([1, 2, 3, 4, 5, 6], {}, t)
    assert [(past, n) for past, n, _ in s.decoder.calls] == [(0, 4), (4, 2)]
    assert t.reused_tokens == 4 and t.prefill_tokens == 6
    s.prefill([1, 2, 9], {}, t)  # diverges at index 2: rewinds
    assert s.decoder.calls[-1][:2] == (2, 1) and s.ids == [1, 2, 9]
    s.prefill([1, 2, 9], {}, t)  # the same prompt again: the last position is recomputed for its logits
    assert s.decoder.calls[-1][:2] == (2, 1)


def test_image_rows_are_spliced_and_a_different_image_is_not_reused():
    s, t = session(), Timings()
    ids = image_ids([5]) + [7]
    s.prefill(ids, {1: feats(0.5)}, t)
    x = s.decoder.calls[-1][2]
    assert np.all(x[2 : 2 + IMAGE_SLOTS] == 0.5) and x[1, 0] == IMG and x[-1, 0] == 7
    s.prefill(ids + [8], {1: feats(0.5)}, t)
    assert s.decoder.calls[-1][:2] == (len(ids), 1)  # same image: only the new token
    s.prefill(ids + [8], {1: feats(0.25)}, t)  # same ids, other picture: recomputed from the span start
    past, n, x = s.decoder.calls[-1]
    assert past == 1 and np.all(x[1 : 1 + IMAGE_SLOTS] == 0.25)


def test_a_prompt_with_another_ntk_alpha_starts_over():
    s, t = session(seq_length=8), Timings()
    s.prefill(list(range(1, 8)), {}, t)  # 7 tokens: alpha 1
    s.prefill(list(range(1, 12)), {}, t)  # 11 tokens > 8: alpha 3 in the reference -> full prefill
    assert s.decoder.calls[-1][:2] == (0, 11) and s.decoder.ntk_alpha == 3


def test_generate_feeds_tokens_back_and_respects_limits():
    s, t = session(), Timings()
    logits = s.prefill([10, 11], {}, t)
    tokens = list(s.generate(logits, max_new_tokens=5, sampling=Sampling(do_sample=False), seed=None, timings=t))
    assert tokens == [12, 13, 14, 15, 16] and s.ids == [10, 11, 12, 13, 14, 15]  # the last one is not fed
    assert t.decode_tokens == 5


def test_too_long_and_empty_prompts_are_refused_without_touching_the_cache():
    s, t = session(), Timings()
    s.prefill([1, 2], {}, t)
    with pytest.raises(ValueError, match="prompt too long"):
        s.prefill(list(range(5000)), {}, t)
    with pytest.raises(ValueError, match="empty prompt"):
        s.prefill([], {}, t)
    assert s.ids == [1, 2] and s.decoder.length == 2


def test_nan_logits_are_a_clear_error_not_a_numpy_one():
    s = session()
    logits = s.prefill([5, 6, 7], {}, Timings())
    logits[3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite logits"):
        next(s.generate(logits, max_new_tokens=2, sampling=Sampling(temperature=0), seed=None, timings=Timings()))
