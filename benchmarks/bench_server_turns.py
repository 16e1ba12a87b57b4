"""Time to the first token through `qwenvl-edge serve` for a resent conversation, at the real shapes: the
first turn (a picture: vision pass + whole prefill) against the second (the conversation resent, as
OpenAI clients do: the prompt cache should leave only the new part to prefill, and no vision pass).

    python benchmarks/bench_server_turns.py BUNDLE [--threads 2] [--repeats 3]

BUNDLE: e.g. the real-shape `qwenvl-edge bench` bundle (random weights: the words mean nothing, the
timings are the real ones). Each request asks for one token (`max_tokens: 1`), so its wall time is the
time to the first token; the server's own `timings` split it. Each repeat uses a new picture (no feature
cache hit in turn 1). Appends a JSON line to benchmarks/results/server_turns.jsonl.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time

import httpx
import numpy as np
from PIL import Image


def picture(seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def ask(url: str, messages: list) -> tuple[float, dict]:
    start = time.perf_counter()
    reply = httpx.post(url + "/v1/chat/completions", json={"messages": messages, "max_tokens": 1, "temperature": 0},
                       timeout=600).json()
    return time.perf_counter() - start, reply


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("bundle")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "qwenvl_edge.cli", "serve", args.bundle, "--port", "0",
                               "--threads", str(args.threads), "--ctx", "2048"], stdout=subprocess.PIPE, text=True)
    try:
        banner = server.stdout.readline() + server.stdout.readline()
        url = banner.split("page ")[1].split()[0].rstrip("/")
        while httpx.get(url + "/health").status_code != 200:
            time.sleep(0.5)
        rows = []
        for seed in range(args.repeats):
            first = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": picture(seed)}},
                                                  {"type": "text", "text": "Describe the picture in detail."}]}]
            t1, r1 = ask(url, first)
            resent = first + [{"role": "assistant", "content": r1["choices"][0]["message"]["content"] or "A picture."},
                              {"role": "user", "content": "What colours stand out?"}]
            t2, r2 = ask(url, resent)
            rows.append({"turn1_s": t1, "turn2_s": t2, "turn1": r1["timings"], "turn2": r2["timings"],
                         "prompt_tokens": [r1["usage"]["prompt_tokens"], r2["usage"]["prompt_tokens"]]})
            print(f"turn 1: {t1:6.2f} s (vision {r1['timings']['vision_s']:.2f} s, prefill "
                  f"{r1['timings']['prefill_tokens']} tok in {r1['timings']['prefill_s']:.2f} s)   turn 2: {t2:5.2f} s "
                  f"(vision {r2['timings']['vision_s']:.2f} s, prefill {r2['timings']['prefill_tokens']} tok, "
                  f"{r2['timings']['cached_tokens']} cached)", flush=True)
        med1, med2 = (statistics.median(r[k] for r in rows) for k in ("turn1_s", "turn2_s"))
        print(f"median time to first token: turn 1 {med1:.2f} s, turn 2 {med2:.2f} s ({med1 / med2:.1f}x)")
        os.makedirs("benchmarks/results", exist_ok=True)
        with open("benchmarks/results/server_turns.jsonl", "a") as f:
            f.write(json.dumps({"bundle": args.bundle, "threads": args.threads, "runs": rows,
                                "median_turn1_s": med1, "median_turn2_s": med2}) + "\n")
    finally:
        server.terminate()
        server.communicate(timeout=60)


if __name__ == "__main__":
    main()
