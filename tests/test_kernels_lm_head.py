"""lm_head (fp16 and int8-per-row weights) on every ISA path, against numpy."""

import numpy as np
import pytest

from qwenvl_edge._core import kernels
from qwenvl_edge.export.decoder_file import int8_rows

ISAS = kernels.supported_isas()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m, rows, dim", [(1, 1, 16), (1, 37, 128), (3, 130, 256), (5, 7, 384)])
def test_fp16_and_int8_heads_match_numpy(isa, m, rows, dim):
    rng = np.random.default_rng([m, rows, dim])
    x = rng.standard_normal((m, dim)).astype(np.float32)
    w = rng.standard_normal((rows, dim)).astype(np.float16)
    want = x.astype(np.float64) @ w.astype(np.float64).T
    got = kernels.lm_head(x, w, isa=isa)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max() + 1e-6)
    q, scale = int8_rows(w)
    want8 = (x.astype(np.float64) @ q.astype(np.float64).T) * scale
    got8 = kernels.lm_head(x, q, scale=scale, isa=isa)
    np.testing.assert_allclose(got8, want8, rtol=0, atol=1e-5 * np.abs(want8).max() + 1e-6)


def test_int8_rows_error_is_small():
    w = np.random.default_rng(0).standard_normal((64, 512)).astype(np.float16)
    q, scale = int8_rows(w)
    err = np.abs(q * scale[:, None] - w.astype(np.float32)).max(axis=1)
    assert np.all(err <= 0.5 * scale + 1e-6)


def test_bad_lm_head_arguments():
    x = np.zeros((1, 16), np.float32)
    with pytest.raises(ValueError, match="need a scale"):
        kernels.lm_head(x, np.zeros((4, 16), np.int8))
    with pytest.raises(TypeError, match="float16 or int8"):
        kernels.lm_head(x, np.zeros((4, 16), np.float32))
    with pytest.raises(ValueError, match="share dim"):
        kernels.lm_head(x, np.zeros((4, 32), np.float16))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m, rows, dim", [(1, 1, 128), (1, 37, 256), (3, 130, 384)])
def test_int8_head_with_int8_activations_equals_its_integer_formula(isa, m, rows, dim):
    rng = np.random.default_rng([m, rows, dim, 8])
    x = (rng.standard_normal((m, dim)) * rng.uniform(0.1, 10, (m, 1))).astype(np.float32)
    q, scale = int8_rows(rng.standard_normal((rows, dim)).astype(np.float16))
    q[0, :5] = [-127, 127, 0, -1, 1]  # both signs at the extremes
    g = x.reshape(m, dim // 128, 128)
    d = (np.abs(g).max(-1) / np.float32(127)).astype(np.float32)
    xq = np.rint(g * (np.float32(1) / d)[..., None]).astype(np.int64)  # round half to even, like the kernels
    want = np.einsum("mgk,rgk->mrg", xq, q.reshape(rows, dim // 128, 128).astype(np.int64))
    want = (want * d[:, None, :]).sum(-1) * scale
    got = kernels.lm_head(x, q, scale=scale, isa=isa, activations="q8")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    with pytest.raises(ValueError, match="int8 weights"):
        kernels.lm_head(x, q.astype(np.float16), isa=isa, activations="q8")
