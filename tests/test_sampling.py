"""Next-token choice: HF's repetition penalty, top-k, top-p semantics, seeded sampling, greedy."""

import numpy as np
import pytest

from qwenvl_edge.sampling import Sampling, choose, filter_top_k, filter_top_p, penalize_repetition


def test_greedy_is_argmax_and_ignores_the_rng():
    logits = np.array([0.1, 3.0, -1.0, 2.9], np.float32)
    for s in (Sampling(temperature=0), Sampling(do_sample=False, temperature=5)):
        assert choose(logits, [], s, np.random.default_rng(0)) == 1


def test_repetition_penalty_like_hf():
    logits = np.array([2.0, -2.0, 1.0], np.float32)
    out = penalize_repetition(logits, [0, 1, 1], 2.0)
    np.testing.assert_array_equal(out, [1.0, -4.0, 1.0])
    assert choose(np.array([2.0, 1.5], np.float32), [0], Sampling(temperature=0, repetition_penalty=2.0),
                  np.random.default_rng()) == 1


def test_top_p_keeps_the_smallest_head_reaching_p():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = np.log(probs).astype(np.float32)
    kept = lambda p: np.flatnonzero(np.isfinite(filter_top_p(logits, p))).tolist()
    assert kept(0.6) == [0, 1]  # HF drops only tokens whose ascending cumulative mass is <= 1 - p
    assert kept(0.3) == [0]
    assert kept(0.81) == [0, 1, 2]
    assert kept(1.0) == [0, 1, 2, 3]
    assert kept(1e-6) == [0]  # the top token always stays


def test_top_k():
    logits = np.array([1, 5, 3, 4], np.float32)
    assert np.isfinite(filter_top_k(logits, 2)).tolist() == [False, True, False, True]
    assert np.isfinite(filter_top_k(logits, 0)).all()


def test_seeded_sampling_is_reproducible_and_follows_the_distribution():
    logits = np.log(np.array([0.6, 0.3, 0.1])).astype(np.float32)
    s = Sampling(temperature=1.0)
    draws = [choose(logits, [], s, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(draws)) == 1
    rng = np.random.default_rng(1)
    counts = np.bincount([choose(logits, [], s, rng) for _ in range(4000)], minlength=3) / 4000
    np.testing.assert_allclose(counts, [0.6, 0.3, 0.1], atol=0.03)
    rng = np.random.default_rng(1)
    assert {choose(logits, [], Sampling(top_k=1), rng) for _ in range(50)} == {0}


@pytest.mark.parametrize("kwargs", [dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(top_k=-1),
                                    dict(repetition_penalty=0)])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        Sampling(**kwargs)


@pytest.mark.parametrize("options, message", [
    (dict(temperature=1e-45), "temperature must be 0 \\(greedy\\) or at least"),
    (dict(temperature=float("nan")), "temperature must be a finite number"),
    (dict(top_k=2.5), "top_k must be a whole number"),
    (dict(top_k=True), "top_k must be a whole number"),
    (dict(top_p="0.5"), "top_p must be a finite number"),
    (dict(repetition_penalty=float("inf")), "repetition_penalty must be a finite number"),
])
def test_settings_that_would_give_numpy_errors_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        Sampling(**options)
