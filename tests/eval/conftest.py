"""The eval tests' model: the tiny bundle with fp32 activations."""

import pytest

import qwenvl_edge


@pytest.fixture(scope="session")
def eval_model(tiny_bundle):
    return qwenvl_edge.load(tiny_bundle, threads=2, exact=True)
