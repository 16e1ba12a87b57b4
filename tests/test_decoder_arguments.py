"""qwenvl_edge._core.Decoder's arguments (issue 19): every wrong type, dtype or value is one line naming the
argument; sizes computed from a config are checked; a path is taken whole. The cases that could crash
run in a subprocess whose exit status is observed."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from qwenvl_edge import _core
from qwenvl_edge.bench import synthetic_decoder
from qwenvl_edge.limits import MAX_THREADS

from manifests import TINY_DECODER as TINY


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("args") / "d.qvw"
    synthetic_decoder.write_ours(str(path), TINY)
    return str(path)


def one_line(kind, call, *named):
    with pytest.raises(kind) as e:
        call()
    message = str(e.value)
    assert "\n" not in message and all(n in message for n in named), message


def isolated(code: str, **values) -> str:
    """Run ``code`` in a fresh interpreter; it must end normally (no signal), and prints what it saw."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code).format(**values)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-800:]}"
    return done.stdout.strip()


@pytest.mark.parametrize("threads, kind", [(0, ValueError), (MAX_THREADS + 1, ValueError), (-3, ValueError),
                                           (3.5, TypeError), ("2", TypeError), (True, TypeError)])
def test_threads_must_be_a_whole_number_within_the_limit(decoder_file, threads, kind):
    one_line(kind, lambda: _core.Decoder(decoder_file, TINY.as_dict(), threads=threads), "threads")


def test_threads_in_range_and_numpy_integers_are_taken(decoder_file):
    assert _core.Decoder(decoder_file, TINY.as_dict(), threads=np.int64(2)).threads == 2


@pytest.mark.parametrize("key, value, kind", [
    ("num_layers", "2", TypeError), ("num_layers", 2.0, TypeError), ("dynamic_ntk", 1, TypeError),
    ("rms_eps", "x", TypeError), ("num_layers", 0, ValueError), ("max_context", 4611686018427387905, ValueError),
    ("rms_eps", float("nan"), ValueError), ("num_layers", 2**70, ValueError),
])
def test_each_config_value_is_checked_for_its_kind_and_range(decoder_file, key, value, kind):
    one_line(kind, lambda: _core.Decoder(decoder_file, {**TINY.as_dict(), key: value}, threads=1), key)


def test_config_must_be_a_dict_of_the_known_keys(decoder_file):
    one_line(TypeError, lambda: _core.Decoder(decoder_file, [1, 2]), "config must be a dict")
    one_line(ValueError, lambda: _core.Decoder(decoder_file, {**TINY.as_dict(), "layers": 2}), "unknown key 'layers'")


def test_arrays_of_any_real_dtype_are_converted_and_others_refused_in_one_line(decoder_file):
    dec = _core.Decoder(decoder_file, TINY.as_dict(), threads=1)
    x = dec.embed(np.arange(5))
    want = dec.forward(x)
    dec.reset()
    np.testing.assert_array_equal(dec.forward(x.astype(np.float64)), want)  # converted, same values
    dec.reset()
    np.testing.assert_array_equal(dec.prefill_ids([0, 1, 2, 3, 4]), want)  # a list of ids, int64 internally
    dec.reset()
    one_line(TypeError, lambda: dec.forward(x.astype(np.complex64)), "embeddings", "complex64")
    one_line(TypeError, lambda: dec.forward("x"), "embeddings")
    one_line(ValueError, lambda: dec.forward(np.zeros((0, 256))), "embeddings", "(0, 256)")
    one_line(TypeError, lambda: dec.prefill_ids(np.zeros(3)), "ids", "float64")
    one_line(ValueError, lambda: dec.prefill_ids(np.array([2**40])), "token id 1099511627776")
    one_line(TypeError, lambda: dec.forward(x, all_logits="yes"), "all_logits")
    one_line(TypeError, lambda: dec.step(1.5), "token id")
    one_line(ValueError, lambda: dec.step(512), "token id = 512 is outside 0..511")
    one_line(TypeError, lambda: dec.truncate("1"), "length")
    one_line(TypeError, lambda: _core.Decoder(decoder_file, TINY.as_dict(), isa=3), "isa")
    one_line(TypeError, lambda: _core.Decoder(decoder_file, TINY.as_dict(), exact=None), "exact")
    one_line(ValueError, lambda: _core.Decoder(decoder_file, TINY.as_dict(), context=-1), "context")
    one_line(TypeError, lambda: _core.Decoder(7, TINY.as_dict()), "path")


def test_a_path_with_a_nul_byte_is_refused_not_cut_short(decoder_file):
    """"/dir/d.qvw\\0x" must not open /dir/d.qvw (as C's open() would, stopping at the NUL)."""
    seen = isolated("""
        from qwenvl_edge import _core
        try:
            _core.Decoder({path!r} + "\\0x", {config!r}, threads=1)
            print("opened")
        except ValueError as e:
            print(type(e).__name__, e)
        """, path=decoder_file, config=TINY.as_dict())
    assert seen == "ValueError decoder file path contains a NUL byte"


def test_a_path_like_and_bytes_path_open_the_file(decoder_file):
    import pathlib

    assert _core.Decoder(pathlib.Path(decoder_file), TINY.as_dict(), threads=1).capacity == 96
    assert _core.Decoder(os.fsencode(decoder_file), TINY.as_dict(), threads=1).capacity == 96


def test_a_fifo_or_directory_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    for path in (tmp_path / "fifo", tmp_path):
        one_line(_core.FormatError, lambda: _core.Decoder(str(path), TINY.as_dict()), "not a regular file")


def rewritten(decoder_file, tmp_path, **config):
    """A copy of the file whose recorded config has the given int values (its tensors stay TINY's)."""
    from qwenvl_edge.export.decoder_file import CONFIG_ENTRY, HEADER

    with open(decoder_file, "rb") as f:
        data = bytearray(f.read())
    for i in range(HEADER.unpack_from(data)[5]):
        at = HEADER.size + i * CONFIG_ENTRY.size
        key = CONFIG_ENTRY.unpack_from(data, at)[0].rstrip(b"\0").decode()
        if key in config:
            data[at + 56 : at + 64] = int(config[key]).to_bytes(8, "little", signed=True)
    out = tmp_path / "crafted.qvw"
    out.write_bytes(bytes(data))
    return str(out), {**TINY.as_dict(), **config}


def test_a_kv_cache_size_that_overflows_is_a_clear_error(decoder_file, tmp_path):
    """layers x heads x context x head_dim past int64 used to wrap to a small buffer written past its end."""
    path, config = rewritten(decoder_file, tmp_path, num_layers=2**30, max_context=2**40)
    seen = isolated("""
        from qwenvl_edge import _core
        try:
            _core.Decoder({path!r}, {config!r}, threads=1)
        except ValueError as e:
            print(e)
        """, path=path, config=config)
    assert seen == "the KV cache (num_layers x num_heads x context x head_dim) overflows a 64-bit size"


def test_a_kv_cache_too_big_to_reserve_is_a_clear_error(decoder_file, tmp_path):
    path, config = rewritten(decoder_file, tmp_path, max_context=2**40)  # 2 x 4 x 2^40 x 64 fp16: 2 PiB
    one_line(ValueError, lambda: _core.Decoder(path, config, threads=1), "cannot reserve a KV cache of 1099511627776")
