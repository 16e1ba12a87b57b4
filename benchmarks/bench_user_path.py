"""The whole user path at the real dimensions, as a new user runs it, recorded as one JSON line:

1. write a random checkpoint in the release's exact layout (`qwenvl-edge tiny --dims release`, kept
   in the work directory and reused);
2. `qwenvl-edge export` it (wall time, peak RSS, anonymous and file-backed apart);
3. `qwenvl-edge ask` with a photo-like picture, each run a new process: first after dropping the page
   cache (a laptop after a reboot; needs root, skipped otherwise), then with a warm page cache (the
   wall time of a one-token answer is the TTFT a CLI user waits for; a 32-token answer gives decode
   tok/s); peak RSS of each;
4. the warm TTFT of a process that has answered before (qwenvl_edge.bench.ours, new picture), the
   reference the cold start is held to;
5. `qwenvl-edge verify`.

    python benchmarks/bench_user_path.py --release int4 [--work DIR] [--drop-caches] [--repeats 3] [--reuse-bundle]

Appends to benchmarks/results/user_path.jsonl. A benchmark: it reports, it asserts nothing.
Linux only (it reads /proc/PID/status for the memory figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

RESULTS = os.path.join(os.path.dirname(__file__), "results", "user_path.jsonl")
QUESTION = "What is in this picture? Describe it."
RELEASES = {"int4": ["--int4"], "chat": [], "chat-safetensors": ["--format", "safetensors"], "base": ["--base"]}


def photo_like(path: str) -> None:
    """A 1280x960 JPEG with what photos have: a sky gradient, sun, hills, a house with windows, a tree,
    a sign with text, sensor grain."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    w, h = 1280, 960
    sky = np.linspace([90, 150, 230], [200, 225, 250], h // 2).astype(np.uint8)
    picture = np.zeros((h, w, 3), np.uint8)
    picture[: h // 2] = sky[:, None, :]
    picture[h // 2 :] = (70, 140, 60)
    image = Image.fromarray(picture)
    draw = ImageDraw.Draw(image)
    draw.ellipse((1000, 80, 1120, 200), fill=(255, 230, 120))
    for x0, height, shade in ((-200, 260, (60, 120, 55)), (400, 200, (80, 150, 70)), (800, 240, (55, 110, 50))):
        draw.ellipse((x0, h // 2 - height // 2, x0 + 900, h // 2 + height), fill=shade)
    draw.rectangle((380, 420, 720, 700), fill=(190, 80, 60))
    draw.polygon([(350, 420), (550, 280), (750, 420)], fill=(110, 50, 40))
    for wx in (420, 600):
        draw.rectangle((wx, 480, wx + 80, 560), fill=(180, 210, 240), outline=(250, 250, 250), width=6)
    draw.rectangle((520, 580, 590, 700), fill=(90, 60, 40))
    draw.rectangle((930, 430, 960, 720), fill=(100, 70, 40))
    draw.ellipse((840, 300, 1050, 500), fill=(40, 100, 40))
    draw.rectangle((120, 640, 330, 720), fill=(240, 240, 235), outline=(40, 40, 40), width=4)
    draw.text((140, 665), "FARM SHOP  OPEN", fill=(20, 20, 20))
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    grain = np.random.default_rng(0).normal(0, 6, (h, w, 3))
    noisy = np.clip(np.asarray(image, np.float32) + grain, 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(path, quality=88)


def measured(cmd: list[str], **kwargs) -> dict:
    """Run ``cmd`` and follow its memory: wall seconds, peak RSS (VmHWM), and the largest anonymous and
    file-backed parts seen (sampled every 50 ms), stdout, return code."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    peaks = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    out_parts, err_parts = [], []
    import threading

    readers = [threading.Thread(target=lambda s=s, parts=p: parts.append(s.read()), daemon=True)
               for s, p in ((child.stdout, out_parts), (child.stderr, err_parts))]
    for r in readers:
        r.start()
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status") as f:
                for line in f:
                    key = line.split(":")[0]
                    if key in peaks:
                        peaks[key] = max(peaks[key], int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    for r in readers:
        r.join()
    wall = time.perf_counter() - start
    gib = {k: v / 2**20 for k, v in peaks.items()}
    return {"wall_s": wall, "peak_rss_gib": gib["VmHWM"], "peak_anon_gib": gib["RssAnon"],
            "peak_file_gib": gib["RssFile"], "rc": child.returncode, "stdout": "".join(out_parts),
            "stderr": "".join(err_parts)[-2000:]}


def drop_page_cache() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def ask(bundle: str, picture: str, tokens: int) -> dict:
    run = measured(["qwenvl-edge", "ask", bundle, "--image", picture, QUESTION, "--json", "--temperature", "0",
                    "--max-tokens", str(tokens)])
    if run["rc"] != 0:
        raise RuntimeError(f"ask failed:\n{run['stderr']}")
    timings = json.loads(run.pop("stdout"))["timings"]
    run.pop("stderr")
    return {**run, **{k: timings[k] for k in ("vision_s", "prefill_tokens", "prefill_tok_s", "decode_tok_s")}}


def summary(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0] if isinstance(runs[0][key], float)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--release", choices=sorted(RELEASES), default="int4")
    p.add_argument("--work", default=os.path.join(os.path.dirname(__file__), "cache", "user_path"))
    p.add_argument("--drop-caches", action="store_true", help="also one ask after dropping the page cache (root)")
    p.add_argument("--repeats", type=int, default=3, help="warm-cache ask runs")
    p.add_argument("--threads", type=int)
    p.add_argument("--reuse-bundle", action="store_true",
                   help="skip the export when the work directory holds a complete bundle (measures the asks only)")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    checkpoint = os.path.join(args.work, f"checkpoint-{args.release}")
    bundle = os.path.join(args.work, f"bundle-{args.release}")
    picture = os.path.join(args.work, "photo.jpg")
    photo_like(picture)
    from qwenvl_edge import _core

    record: dict = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "release": args.release,
                    "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                          cwd=os.path.dirname(__file__)).stdout.strip(),
                    "machine": {"platform": platform.platform(), **_core.cpu_info()}}

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.reuse_bundle and os.path.isfile(os.path.join(bundle, "manifest.json")):
        say(f"export: skipped, reusing {bundle}")
        record["export"] = "skipped: --reuse-bundle"
    else:
        if not os.path.isdir(checkpoint):
            say(f"writing the {args.release} checkpoint (release layout, random weights) to {checkpoint}")
            run = measured(["qwenvl-edge", "tiny", checkpoint, "--dims", "release", *RELEASES[args.release]])
            if run["rc"] != 0:
                raise RuntimeError(run["stderr"])
            record["checkpoint_write"] = {k: v for k, v in run.items() if k not in ("stdout", "stderr")}
        record["checkpoint_bytes"] = sum(os.path.getsize(os.path.join(checkpoint, f)) for f in os.listdir(checkpoint))

        say("export")
        threads = ["--threads", str(args.threads)] if args.threads else []
        run = measured(["qwenvl-edge", "export", checkpoint, "-o", bundle, "--overwrite", "--quiet", *threads])
        if run["rc"] != 0:
            raise RuntimeError(f"export failed:\n{run['stderr']}")
        manifest = json.load(open(os.path.join(bundle, "manifest.json")))
        record["export"] = {**{k: v for k, v in run.items() if k not in ("stdout", "stderr")},
                            "steps_s": manifest["export"]["seconds"], "vision_parity": manifest["vision"]["parity"]}
        say(f"export: {run['wall_s']:.0f} s, peak RSS {run['peak_rss_gib']:.2f} GiB")

    if args.drop_caches:
        if drop_page_cache():
            say("ask after dropping the page cache")
            record["ask_cold_cache"] = ask(bundle, picture, 1)
        else:
            record["ask_cold_cache"] = "skipped: cannot write /proc/sys/vm/drop_caches"
    say(f"ask x {args.repeats} (warm page cache), then one 32-token answer")
    runs = [ask(bundle, picture, 1) for _ in range(args.repeats)]
    record["ask"] = {"runs": runs, "median": summary(runs)}
    record["ask_32_tokens"] = ask(bundle, picture, 32)

    say("warm TTFT of a process that has answered before")
    warm = subprocess.run([sys.executable, "-m", "qwenvl_edge.bench.child", "ours",
                           json.dumps({"bundle": bundle, "threads": args.threads or _core.cpu_info()["physical_cores"],
                                       "prompt": 256, "gen": 16, "repeats": 2})], capture_output=True, text=True)
    if warm.returncode != 0:
        raise RuntimeError(warm.stderr[-2000:])
    record["warm"] = json.loads(warm.stdout.strip().splitlines()[-1])
    record["cold_over_warm"] = record["ask"]["median"]["wall_s"] / statistics.median(record["warm"]["ttft_image_s"])

    say("verify")
    run = measured(["qwenvl-edge", "verify", bundle])
    record["verify"] = {"wall_s": run["wall_s"], "ok": run["rc"] == 0, "output": run["stdout"].strip()}

    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    exported = record["export"] if isinstance(record["export"], dict) else {}
    print(json.dumps({"export_s": exported.get("wall_s"), "export_peak_rss_gib": exported.get("peak_rss_gib"),
                      "ask_ttft_s": record["ask"]["median"]["wall_s"],
                      "ask_peak_rss_gib": record["ask"]["median"]["peak_rss_gib"],
                      "warm_ttft_s": statistics.median(record["warm"]["ttft_image_s"]),
                      "cold_over_warm": record["cold_over_warm"]}, indent=1))


if __name__ == "__main__":
    main()
