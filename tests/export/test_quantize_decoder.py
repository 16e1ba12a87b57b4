"""Block-by-block decoder quantization: streaming, true-sequential GPTQ, RTN, refusals."""

import numpy as np
import pytest
import torch

from qwenvl_edge.export import gptq_format, names
from qwenvl_edge.export.checkpoint import CheckpointReader
from qwenvl_edge.export.quantize_decoder import quantize_decoder


def calibration(hidden, seed=0, n=4, length=200):
    """Correlated embeddings (low rank plus noise): the tiny model's own random embeddings are close to
    isotropic, where GPTQ has nothing to gain over round-to-nearest."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(24, hidden, generator=g)
    return [torch.randn(1, length, 24, generator=g) @ basis + 0.1 * torch.randn(1, length, hidden, generator=g)
            for _ in range(n)]


class CountingReader(CheckpointReader):
    def __init__(self, directory):
        super().__init__(directory)
        self.asked: list[str] = []

    def get(self, name):
        self.asked.append(name)
        return super().get(name)


def test_blocks_are_read_one_at_a_time(tiny_fp):
    reader = CountingReader(tiny_fp)
    seen = []
    for result in quantize_decoder(reader, calibration(reader.config.hidden_size), method="gptq"):
        blocks = {n.split(".")[2] for n in reader.asked if n.startswith("transformer.h.")}
        assert blocks == {str(i) for i in range(result.index + 1)}  # nothing of later blocks yet
        assert set(result.linears) == set(names.QUANTIZED_LINEARS)
        seen.append(result.index)
    assert seen == list(range(reader.config.num_hidden_layers))
    assert not any(n.startswith(("transformer.visual", "transformer.wte", "lm_head")) for n in reader.asked)


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_beats_rtn_on_every_layer_and_halves_the_median(tiny_fp, act_order):
    reader = CheckpointReader(tiny_fp)
    ratios = [layer["gptq_over_rtn"] for r in quantize_decoder(reader, calibration(256), act_order=act_order)
              for layer in r.stats["layers"]]
    assert len(ratios) == 10 and max(ratios) < 1 and np.median(ratios) <= 0.5, ratios


def test_rtn_equals_round_to_nearest(tiny_fp):
    reader = CheckpointReader(tiny_fp)
    first = next(quantize_decoder(reader, None, method="rtn", sym=False))
    w = reader.get(names.block(0) + "mlp.w1.weight").float().numpy()
    want = gptq_format.quantize_linear(w, 128, sym=False)
    np.testing.assert_array_equal(first.linears["mlp.w1"].qweight, want.qweight)


def test_refusals(tiny_fp, tiny_int4):
    with pytest.raises(ValueError, match="already GPTQ-quantized"):
        next(quantize_decoder(CheckpointReader(tiny_int4), None, method="rtn"))
    with pytest.raises(ValueError, match="needs calibration"):
        next(quantize_decoder(CheckpointReader(tiny_fp), [], method="gptq"))
