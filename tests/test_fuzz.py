"""A bounded sample of the fuzz cases (tests/fuzzing.py), each in its own process: every damaged file,
odd input, option and native argument is answered or refused with a clear error; never a crash, a hang
or a traceback the user cannot act on. `python benchmarks/fuzz.py` runs the large sample."""

import pytest

import fuzzing

SEEDS = range(3)


@pytest.mark.slow
@pytest.mark.parametrize("category", fuzzing.CATEGORIES)
def test_fuzz_sample_is_answered_or_clearly_refused(category, tiny_bundle, tmp_path):
    outcomes = [fuzzing.run_case(category, seed, str(tiny_bundle), str(tmp_path), timeout=90) for seed in SEEDS]
    bad = [o for o in outcomes if o.kind not in ("ok", "clear")]
    assert not bad, "\n".join(f"{o.category} seed {o.seed}: {o.kind}: {o.detail}" for o in bad)
