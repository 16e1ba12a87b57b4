"""Memory per server session (a decoder and its KV cache) at the real dims (32 layers, hidden 4096, fp16
KV cache), for `qwenvl-edge serve --ctx 2048 / 4096 / 8192`, each in a child process.

    python benchmarks/bench_server_sessions.py BUNDLE [--contexts 2048 4096 8192] [--prompt 256] [--threads 2]

BUNDLE: one of the real shape (`qwenvl-edge bench` builds one: random weights). In each child: load the
bundle with --ctx N (the model's own session opens), then for a second session read /proc/self/status
(RssAnon: memory the process allocated; the mapped weights are file-backed and shared by every
session) after each step:

  open      Model.new_session(): what a pooled session costs before its first request
  prefill   a --prompt token prompt in one forward (Session.prefill, as a request does): KV + scratch
  chunked   a third session, the same prompt in 16-position forwards: KV + the smallest scratch

and VmHWM (the child's peak RSS, file pages included) at the end. Appends a JSON line per context to
benchmarks/results/server_sessions.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np


def status() -> dict[str, float]:
    """VmRSS, RssAnon, RssFile, VmHWM of this process in MiB."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}


def child(bundle: str, context: int, prompt: int, threads: int) -> dict:
    import qwenvl_edge
    from qwenvl_edge.records import Timings

    model = qwenvl_edge.load(bundle, threads=threads, context=context)
    ids = np.random.default_rng(0).integers(0, 151643, prompt).tolist()
    out = {"context": context, "prompt": prompt, "loaded": status()}
    session = model.new_session()
    out["open"] = status()
    session.prefill(ids, {}, Timings())
    out["prefill"] = status()
    chunked = model.new_session()
    out["open_2"] = status()
    for start in range(0, prompt, 16):
        x = chunked.decoder.embed(np.asarray(ids[start : start + 16], dtype=np.int32))
        chunked.decoder.forward(x)
    out["chunked"] = status()
    return out


def grew(r: dict, before: str, after: str) -> float:
    """Anonymous resident MiB added between two steps."""
    return r[after]["RssAnon"] - r[before]["RssAnon"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("bundle")
    p.add_argument("--contexts", type=int, nargs="+", default=[2048, 4096, 8192])
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.bundle, args.child, args.prompt, args.threads)))
        return
    from qwenvl_edge import cpu_info

    os.makedirs("benchmarks/results", exist_ok=True)
    print(f"{'ctx':>5} | {'open (MiB)':>10} | {f'prefill {args.prompt} (MiB)':>18} | {'of it KV+small scratch':>22} | "
          f"{'KV if full (MiB)':>16} | peak RSS (MiB)")
    for context in args.contexts:
        run = subprocess.run([sys.executable, __file__, args.bundle, "--child", str(context), "--prompt",
                              str(args.prompt), "--threads", str(args.threads)], capture_output=True, text=True,
                             check=True)
        r = json.loads(run.stdout.strip().splitlines()[-1])
        r.update(open_mib=grew(r, "loaded", "open"), prefill_mib=grew(r, "open", "prefill"),
                 chunked_mib=grew(r, "open_2", "chunked"), full_kv_mib=32 * 2 * context * 4096 * 2 / 2**20,
                 peak_mib=r["chunked"]["VmHWM"], cpu=cpu_info())
        print(f"{context:5d} | {r['open_mib']:10.1f} | {r['prefill_mib']:18.1f} | {r['chunked_mib']:22.1f} | "
              f"{r['full_kv_mib']:16.0f} | {r['peak_mib']:.0f}")
        with open("benchmarks/results/server_sessions.jsonl", "a") as f:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
