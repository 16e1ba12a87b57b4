"""The PyTorch reference behind the eval harness's model interface answers like the runtime does."""

from __future__ import annotations

import numpy as np
import pytest

import qwenvl_edge
from qwenvl_edge.eval import runner, tasks
from qwenvl_edge.eval.data import Item


@pytest.fixture(scope="module")
def pair(tiny_bundle, tiny_int4):
    from qwenvl_edge.export.reference_generation import ReferenceGenerator

    model = qwenvl_edge.load(tiny_bundle, exact=True)
    return model, ReferenceGenerator(tiny_int4, model.generation)


@pytest.mark.slow
def test_greedy_replies_equal_the_exact_runtime(pair, pictures):
    model, reference = pair
    for picture, (min_new, max_new) in zip(pictures, ((0, 24), (8, 16), (3, 5))):
        prompt = f"<img>{picture}</img>What is in the image? Answer:"
        want = model.generate(prompt, [picture], temperature=0, max_new_tokens=max_new, min_new_tokens=min_new)
        got = reference.generate(prompt, [picture], max_new_tokens=max_new, min_new_tokens=min_new)
        assert (got.token_ids, got.finish_reason, got.text) == (want.token_ids, want.finish_reason, want.text)


def test_teacher_forced_rows_predict_the_greedy_continuation(pair, pictures):
    _, reference = pair
    prompt = "Describe the image in English:"
    reply = reference.generate(prompt, pictures[:1], max_new_tokens=6)
    rows = reference.continuation_logits(prompt, pictures[:1], reply.token_ids)
    assert rows.shape[0] == len(reply.token_ids)
    assert list(np.argmax(rows, axis=1)) == reply.token_ids


def test_the_harness_scores_the_reference_like_a_bundle(pair, pictures):
    _, reference = pair
    item = Item(id=0, line=1, image=pictures[0], image_ref=pictures[0], question="What?", answers=("x",))
    record = runner.run_item(reference, tasks.TASKS["vqa"], item)
    assert record["score"] in (0.0, 1.0) and isinstance(record["prediction"], str)


def test_sampling_is_refused(pair):
    with pytest.raises(ValueError, match="greedily"):
        pair[1].generate("Hello", temperature=0.7)
