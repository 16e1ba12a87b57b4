"""The native thread pool (cpp/kernels/thread_pool.cpp), through the decoder and the matmul kernel: the
same result at every thread count, under a busy core and from several calling threads; a thread that
cannot start is an error, not a hang; a forked child can drop the parent's pool. The native cases run in
a subprocess and are judged by its exit status and output."""

import json
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

from qwenvl_edge import _core
from qwenvl_edge.bench.synthetic_decoder import random_blocks
from qwenvl_edge.export.checkpoint import CheckpointReader
from qwenvl_edge.export.decoder_file import decoder_config, decoder_tensors, write_decoder_file
from qwenvl_edge.export.q4_repack import BLOCK_DTYPE, GROUP, TILE

kernels = _core.kernels
HANG_S = 120  # far beyond any of these runs: a child still running then is hung


@pytest.fixture(scope="module")
def decoder_file(tiny_int4, tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "decoder.qwd"
    reader = CheckpointReader(tiny_int4)
    config = decoder_config(reader.config, max_context=256)
    write_decoder_file(path, config, decoder_tensors(reader, "f16"), "f16")
    return str(path), config.as_dict()


def run_child(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                          timeout=HANG_S)


def test_decoder_tokens_do_not_depend_on_the_thread_count(decoder_file):
    path, cfg = decoder_file
    ids = np.arange(3, 40, dtype=np.int32)

    def run(threads):
        dec = _core.Decoder(path, cfg, threads=threads)
        logits = [dec.prefill_ids(ids, all_logits=True)]
        token = int(logits[0][-1].argmax())
        for _ in range(8):
            logits.append(dec.step(token)[None])
            token = int(logits[-1].argmax())
        return np.concatenate(logits)

    one = run(1)
    for threads in (2, 3, 5):
        np.testing.assert_array_equal(run(threads), one)


@pytest.mark.parametrize("mode", ["exact", "q8"])
def test_many_uneven_chunks_give_the_single_thread_result(mode):
    rng = np.random.default_rng(1)
    k, n = 256, 16 * 203  # 203 tiles: 26 chunks of 8 and a last one of 3
    blocks = random_blocks(rng, (n // TILE, k // GROUP, BLOCK_DTYPE.itemsize))
    for m in (1, 9):
        x = rng.standard_normal((m, k)).astype(np.float32)
        one = kernels.matmul_q4(x, blocks, k, n, mode=mode)
        for threads in (2, 3, 8):
            np.testing.assert_array_equal(kernels.matmul_q4(x, blocks, k, n, mode=mode, threads=threads), one)


def test_a_busy_core_does_not_change_the_result():
    """With a process spinning on one of the cores, workers are descheduled mid-job: the others must
    take over their chunks and still compute each one once."""
    rng = np.random.default_rng(2)
    k, n = 512, 16 * 100
    blocks = random_blocks(rng, (n // TILE, k // GROUP, BLOCK_DTYPE.itemsize))
    x = rng.standard_normal((1, k)).astype(np.float32)
    want = kernels.matmul_q4(x, blocks, k, n, mode="q8")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for _ in range(300):
            np.testing.assert_array_equal(kernels.matmul_q4(x, blocks, k, n, mode="q8", threads=2), want)
    finally:
        busy.kill()
        busy.wait()


def test_one_pool_serves_several_calling_threads():
    """The kernel binding keeps one pool per thread count for the process: callers that overlap must each
    get their own result (a call arriving while the pool is busy runs on its own thread)."""
    rng = np.random.default_rng(3)
    k, n = 256, 16 * 64
    blocks = random_blocks(rng, (n // TILE, k // GROUP, BLOCK_DTYPE.itemsize))
    xs = [rng.standard_normal((2, k)).astype(np.float32) for _ in range(4)]
    wants = [kernels.matmul_q4(x, blocks, k, n, mode="q8") for x in xs]
    failures = []

    def call(i):
        for _ in range(200):
            got = kernels.matmul_q4(xs[i], blocks, k, n, mode="q8", threads=2)
            if not np.array_equal(got, wants[i]):
                failures.append(i)
                return

    callers = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(len(xs))]
    for t in callers:
        t.start()
    for t in callers:
        t.join(HANG_S)
    assert not any(t.is_alive() for t in callers), "a caller hung"
    assert failures == []


def test_a_thread_that_cannot_start_is_an_error_not_a_hang(decoder_file):
    """With the address space too small for 64 thread stacks the pool fails part-way: it must stop and
    join the threads it started and raise, leaving the process able to build a decoder afterwards."""
    path, cfg = decoder_file
    script = """
        import json, resource, sys
        import numpy as np
        from qwenvl_edge import _core

        path, cfg = sys.argv[1], json.loads(sys.argv[2])
        size = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmSize:"))) * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (size + 160 * 2**20, hard))  # room for a dozen 8 MiB stacks
        try:
            _core.Decoder(path, cfg, threads=64)
        except RuntimeError as e:
            print("error:", e)
        else:
            print("no error")
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        dec = _core.Decoder(path, cfg, threads=2)
        print("after:", dec.prefill_ids(np.arange(3, 9, dtype=np.int32)).shape)
    """
    done = run_child(script, path, json.dumps(cfg))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "error: cannot start thread " in done.stdout and " of 64: " in done.stdout, done.stdout
    assert "after: (1, " in done.stdout, done.stdout


def test_a_forked_child_can_drop_the_pool(decoder_file):
    """The parent's workers sleep on the pool's condition variables when the child is forked; the child
    has none of those threads, and destroying the pool there must not wait for them."""
    path, cfg = decoder_file
    dec = _core.Decoder(path, cfg, threads=2)
    ids = np.arange(3, 20, dtype=np.int32)
    want = dec.prefill_ids(ids)
    dec.reset()
    threading.Event().wait(0.05)  # long past the workers' spin: they are asleep
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python >= 3.12 warns on fork with threads
        pid = os.fork()
    if pid == 0:  # child: exit 0 only if the result matches and the pool is gone; never return into pytest
        ok = False
        try:
            ok = np.array_equal(dec.prefill_ids(ids), want)
            del dec
        finally:
            os._exit(0 if ok else 1)
    for _ in range(HANG_S * 10):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        threading.Event().wait(0.1)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung destroying the pool")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
