"""Fuzzing the runtime's inputs, one case per subprocess, so that a crash or a hang is observed from outside.

A case is (category, seed): the child builds its input from the seed alone (a damaged copy of a bundle,
an odd image, prompt or option, a bad argument to the native core), uses it the way a user would and
reports how it ended. The parent classes the ending:

    ok       the input was accepted and answered
    clear    refused with an error meant for the user (FormatError, ValueError, TypeError, RuntimeError,
             OSError), one line naming the problem
    unclear  any other exception: a traceback the user cannot act on (KeyError, IndexError, numpy's ...)
    crash    the process died from a signal (SIGSEGV, SIGABRT, SIGBUS ...)
    hang     it did not end within the time bound

tests/test_fuzz.py runs a bounded sample of every category in CI; benchmarks/fuzz.py a large run with a
table of the outcomes.

    python tests/fuzzing.py CATEGORY SEED BUNDLE WORKDIR     (the child)
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import time

CATEGORIES = ("decoder_file", "manifest", "vision_file", "tokenizer_file", "image", "prompt", "options", "native")
CLEAR = ("FormatError", "ValueError", "TypeError", "RuntimeError", "OSError", "FileNotFoundError",
         "FileExistsError", "IsADirectoryError", "PermissionError", "NotADirectoryError")
TIMEOUT_S = 120


@dataclasses.dataclass(frozen=True)
class Outcome:
    category: str
    seed: int
    kind: str  # ok, clear, unclear, crash, hang
    detail: str
    seconds: float


def run_case(category: str, seed: int, bundle: str, workdir: str, timeout: float = TIMEOUT_S) -> Outcome:
    """Run one case in a child process and class how it ended."""
    folder = os.path.join(workdir, f"{category}-{seed}")
    os.makedirs(folder, exist_ok=True)
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, __file__, category, str(seed), bundle, folder],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(category, seed, "hang", f"no end within {timeout:.0f} s", time.perf_counter() - start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - start
    last = (done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode < 0:
        return Outcome(category, seed, "crash", f"signal {-done.returncode}: {done.stderr[-300:]}", seconds)
    if done.returncode == 0 and last.startswith("OK"):
        return Outcome(category, seed, "ok", last, seconds)
    if done.returncode == 3 and last.startswith("CLEAR "):
        return Outcome(category, seed, "clear", last[len("CLEAR "):], seconds)
    return Outcome(category, seed, "unclear", (done.stderr or done.stdout)[-500:], seconds)


def tally(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for o in outcomes:
        row = table.setdefault(o.category, {k: 0 for k in ("cases", "ok", "clear", "unclear", "crash", "hang")})
        row["cases"] += 1
        row[o.kind] += 1
    return table


# --- the child: build the input from the seed, use it, report -------------------------------------------

def _copy_bundle(bundle: str, folder: str) -> str:
    out = os.path.join(folder, "bundle")
    shutil.copytree(bundle, out)
    return out


def _damage_file(path: str, rng: random.Random) -> str:
    """Truncate, flip bytes in, or overwrite a stretch of ``path``; returns what was done."""
    data = bytearray(open(path, "rb").read())
    how = rng.choice(["truncate", "flip", "flip_header", "stretch"])
    if how == "truncate":
        data = data[: rng.randrange(len(data))]
    elif how in ("flip", "flip_header"):
        limit = min(len(data), 4096) if how == "flip_header" else len(data)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(limit)] ^= 1 << rng.randrange(8)
    else:
        at = rng.randrange(len(data))
        data[at : at + 64] = bytes(rng.randrange(256) for _ in range(64))
    open(path, "wb").write(data)
    return how


def _odd_value(rng: random.Random, value):
    choices = [None, -1, 0, 2**62 + 1, -(2**63), 1e308, float("nan"), "x", [], {}, True, "", 3.5,
               value * 1000 if isinstance(value, (int, float)) and not isinstance(value, bool) else 7]
    return rng.choice(choices)


def _mutate_manifest(path: str, rng: random.Random) -> str:
    raw = json.load(open(path))
    leaves = []

    def walk(node, trail):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, trail + [k])
        elif isinstance(node, list) and node and rng.random() < 0.5:
            walk(node[0], trail + [0])
        else:
            leaves.append(trail)

    walk(raw, [])
    trail = rng.choice(leaves)
    node = raw
    for key in trail[:-1]:
        node = node[key]
    if rng.random() < 0.15 and isinstance(node, dict):
        del node[trail[-1]]
        what = f"deleted {trail}"
    else:
        node[trail[-1]] = _odd_value(rng, node[trail[-1]])
        what = f"{trail} = {node[trail[-1]]!r:.40}"
    json.dump(raw, open(path, "w"))
    return what


def _odd_image(rng: random.Random, folder: str):
    import numpy as np
    from PIL import Image

    kind = rng.choice(["random_bytes", "truncated_png", "tiny", "huge_header", "gray16", "cmyk", "array", "gif",
                       "empty_file", "directory"])
    path = os.path.join(folder, "img")
    if kind == "random_bytes":
        open(path, "wb").write(bytes(rng.randrange(256) for _ in range(rng.randint(0, 4000))))
    elif kind in ("truncated_png", "tiny", "gray16", "cmyk", "gif"):
        size = (1, 1) if kind == "tiny" else (rng.randint(1, 300), rng.randint(1, 300))
        mode = {"gray16": "I;16", "cmyk": "CMYK"}.get(kind, "RGB")
        image = Image.new(mode, size)
        fmt = {"gif": "GIF", "cmyk": "JPEG"}.get(kind, "PNG")
        image.save(path, format=fmt)
        if kind == "truncated_png":
            data = open(path, "rb").read()
            open(path, "wb").write(data[: rng.randrange(1, len(data))])
    elif kind == "huge_header":  # a PNG whose header claims 60000 x 60000
        import struct
        import zlib

        ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
        chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
        open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk)
    elif kind == "array":
        shape = rng.choice([(0, 4, 3), (5, 5), (3, 3, 2), (8, 8, 3), (2, 2, 4)])
        dtype = rng.choice([np.uint8, np.float32, np.int64])
        return kind, np.zeros(shape, dtype)
    elif kind == "empty_file":
        open(path, "wb").close()
    else:
        os.mkdir(path)
    return kind, path


def _odd_prompt(rng: random.Random) -> str:
    pieces = ["<img>", "</img>", "<ref>", "</ref>", "<box>", "(1,2),(3,4)", "</box>", "<|im_start|>", "<|im_end|>",
              "<|endoftext|>", "Picture 1:", "\x00", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
              "é", "中文", "🙂", "\n", " ", "<imgpad>", "<quad>"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) + "x" * rng.choice([0, 1, 5000])


def child(category: str, seed: int, bundle: str, folder: str) -> str:
    """Build case (category, seed) and use it; returns a line saying what ran."""
    import numpy as np

    import qwenvl_edge

    rng = random.Random(seed * 1000 + CATEGORIES.index(category))
    picture = np.random.default_rng(seed).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    if category in ("decoder_file", "vision_file", "tokenizer_file", "manifest"):
        copy = _copy_bundle(bundle, folder)
        target = {"decoder_file": "decoder.qvw", "vision_file": "vision.onnx", "tokenizer_file": "qwen.tiktoken",
                  "manifest": "manifest.json"}[category]
        what = (_mutate_manifest if category == "manifest" else _damage_file)(os.path.join(copy, target), rng)
        model = qwenvl_edge.load(copy, threads=1)
        model.chat().ask("What is it?", [picture], max_new_tokens=2)
        return f"{target}: {what}"
    if category == "image":
        kind, source = _odd_image(rng, folder)
        model = qwenvl_edge.load(bundle, threads=1)
        model.chat().ask("What is it?", [source], max_new_tokens=2)
        return f"image: {kind}"
    if category == "prompt":
        model = qwenvl_edge.load(bundle, threads=1)
        text = _odd_prompt(rng)
        if rng.random() < 0.5:
            model.chat().ask(text, [picture] * rng.randint(0, 2), max_new_tokens=2)
        else:
            model.generate(text, [picture] * rng.randint(0, 2), max_new_tokens=2)
        return f"prompt of {len(text)} characters"
    if category == "options":
        names = ["max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed", "min_new_tokens"]
        options = {name: _odd_value(rng, 1) for name in rng.sample(names, rng.randint(1, 3))}
        load_options = {name: _odd_value(rng, 1) for name in rng.sample(["threads", "context", "image_cache"],
                                                                         rng.randint(0, 1))}
        model = qwenvl_edge.load(bundle, **load_options)
        model.chat().ask("Hi", [picture], **options)
        return f"options {options} {load_options}"
    return _native(rng, bundle, seed)


def _native(rng: random.Random, bundle: str, seed: int) -> str:
    import numpy as np

    from qwenvl_edge import _core
    from qwenvl_edge.bundle import Bundle

    b = Bundle.open(bundle)
    config = b.manifest.decoder.config.as_dict()
    kind = rng.choice(["config", "path", "arrays", "ids", "truncate", "threads"])
    if kind == "config":
        key = rng.choice(list(config))
        config[key] = _odd_value(rng, config[key])
        _core.Decoder(b.path("decoder"), config, threads=1).prefill_ids(np.arange(4, dtype=np.int32))
    elif kind == "path":
        _core.Decoder(rng.choice([b.path("decoder") + "\0x", "", "/", "/dev/zero", b.path("vision")]), config)
    elif kind == "arrays":
        dec = _core.Decoder(b.path("decoder"), config, threads=1)
        shape = rng.choice([(0, config["hidden_size"]), (2, 3), (1, config["hidden_size"] + 1), (3,)])
        dec.forward(np.zeros(shape, rng.choice([np.float32, np.float64])))
    elif kind == "ids":
        dec = _core.Decoder(b.path("decoder"), config, threads=1)
        ids = rng.choice([[-1], [config["vocab_size"]], [2**31 - 1], []])
        dec.prefill_ids(np.asarray(ids, dtype=np.int32))
    elif kind == "truncate":
        dec = _core.Decoder(b.path("decoder"), config, threads=1)
        dec.prefill_ids(np.arange(3, dtype=np.int32))
        dec.truncate(rng.choice([-1, 4, 2**40]))
    else:
        _core.Decoder(b.path("decoder"), config, threads=rng.choice([0, -3, 5000]))
    return f"native {kind}"


if __name__ == "__main__":
    category, seed, bundle, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    try:
        print("OK", child(category, seed, bundle, folder))
    except Exception as e:  # noqa: BLE001 (classed by name: the user-facing ones are clear)
        if type(e).__name__ in CLEAR and "\n" not in str(e).strip():
            print(f"CLEAR {type(e).__name__}: {e}")
            sys.exit(3)
        raise
