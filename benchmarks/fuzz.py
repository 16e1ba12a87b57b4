"""The large fuzz run: CASES cases of every category of tests/fuzzing.py, each in its own process, and the
table of how they ended (ok, clear error, unclear error, crash, hang). Appends a JSON line to
benchmarks/results/fuzz.jsonl with the cases that were not ok or clear.

    python benchmarks/fuzz.py [--cases 150] [--bundle BUNDLE]   (default: a tiny bundle made on the spot)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import fuzzing  # noqa: E402 (the harness lives beside the test that samples it)

RESULTS = os.path.join(os.path.dirname(__file__), "results", "fuzz.jsonl")


def tiny_bundle(workdir: str) -> str:
    checkpoint, bundle = os.path.join(workdir, "tiny"), os.path.join(workdir, "bundle")
    subprocess.run(["qwenvl-edge", "tiny", checkpoint], check=True, capture_output=True)
    subprocess.run(["qwenvl-edge", "export", checkpoint, "-o", bundle, "--method", "rtn", "--quiet"], check=True,
                   capture_output=True)
    return bundle


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=150, help="cases per category")
    p.add_argument("--bundle", help="a (small) bundle to damage copies of")
    p.add_argument("--timeout", type=float, default=fuzzing.TIMEOUT_S, help="seconds before a case is a hang")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as work:
        bundle = args.bundle or tiny_bundle(work)
        outcomes = []
        start = time.perf_counter()
        for category in fuzzing.CATEGORIES:
            for seed in range(args.cases):
                outcomes.append(fuzzing.run_case(category, seed, bundle, work, args.timeout))
            print(f"{category}: {fuzzing.tally(outcomes)[category]}", file=sys.stderr, flush=True)
    table = fuzzing.tally(outcomes)
    kinds = ("cases", "ok", "clear", "unclear", "crash", "hang")
    print(f"| category | {' | '.join(kinds)} |\n|---|{'---|' * len(kinds)}")
    for category, row in table.items():
        print(f"| {category} | {' | '.join(str(row[k]) for k in kinds)} |")
    total = {k: sum(row[k] for row in table.values()) for k in kinds}
    print(f"| all | {' | '.join(str(total[k]) for k in kinds)} |")
    failures = [o.__dict__ for o in outcomes if o.kind not in ("ok", "clear")]
    for f in failures:
        print(f"{f['category']} seed {f['seed']}: {f['kind']}: {f['detail'][-300:]}", file=sys.stderr)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "cases_per_category": args.cases,
                            "seconds": time.perf_counter() - start, "table": table, "failures": failures}) + "\n")


if __name__ == "__main__":
    main()
