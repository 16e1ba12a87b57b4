"""The export command's options: bounded before any work, each error naming its flag."""

import pytest

from qwenvl_edge.export.options import ExportOptions


@pytest.mark.parametrize("options, message", [
    (dict(max_context=4611686018427387905), "--max-context must be a whole number in 1..1048576"),
    (dict(max_context=0), "--max-context"),
    (dict(threads=2000), "--threads must be a whole number in 1..256"),
    (dict(calibration_tokens=2), "--calibration-tokens"),
    (dict(damp_percent=1.5), "--damp must be in"),
    (dict(vision="int4"), "--vision must be one of int8, fp32"),
    (dict(lm_head="int4"), "--lm-head must be one of f16, int8"),
])
def test_export_options_are_bounded_before_any_work(options, message):
    with pytest.raises(ValueError, match=message):
        ExportOptions(**options)
