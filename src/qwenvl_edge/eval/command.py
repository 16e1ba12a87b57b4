"""``qwenvl-edge eval``: the arguments and the command (the parser itself lives in cli.py)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from qwenvl_edge.eval.tasks import TASKS


def add_arguments(p: argparse.ArgumentParser) -> None:
    from qwenvl_edge.commands import add_model_arguments, whole

    add_model_arguments(p)
    p.add_argument("--task", required=True, choices=list(TASKS), help="which prompt, lengths and metric")
    p.add_argument("--data", required=True, help="the items, one JSON object a line (docs/eval.md: fields per task)")
    p.add_argument("--limit", type=int, help="only the first N items of the data")
    p.add_argument("--out", help="write one JSON result a line here; items already in it are skipped")
    p.add_argument("--few-shot", type=int, default=0, metavar="K",
                   help="K examples of the same template before each query (caption and VQA tasks)")
    p.add_argument("--shots", metavar="FILE", help="draw the examples from this JSONL (default: --data, never the "
                                                   "query item itself)")
    p.add_argument("--seed", type=int, default=0, help="seed of the few-shot draws")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    ray = p.add_argument_group("on a Ray cluster (the cluster extra; docs/eval.md)")
    ray.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                     help="answer on Ray workers: the cluster at ADDRESS, or without one the cluster of RAY_ADDRESS "
                          "or of `ray start` on this machine, else a new local Ray; the bundle's path must exist "
                          "on every node")
    ray.add_argument("--workers", type=whole(1), metavar="N", help="workers (default: the cluster's CPUs / K)")
    ray.add_argument("--threads-per-worker", type=whole(1), metavar="K",
                     help="each worker's threads and the CPUs it reserves (default 1)")


def run(args: argparse.Namespace) -> None:
    needed = ["tqdm"] + (["pycocoevalcap"] if args.task == "caption" else [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"qwenvl-edge eval needs {', '.join(missing)}: pip install 'qwenvl-edge[eval]'")
    if args.ray is None and (args.workers or args.threads_per_worker):
        raise ValueError("--workers and --threads-per-worker go with --ray")
    if args.ray is not None and args.threads:
        raise ValueError("with --ray, give each worker's threads with --threads-per-worker")
    if args.ray is not None and importlib.util.find_spec("ray") is None:
        sys.exit("qwenvl-edge eval --ray needs ray: pip install 'qwenvl-edge[cluster]'")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.few_shot < 0:
        raise ValueError(f"--few-shot must be >= 0, got {args.few_shot}")
    from qwenvl_edge.eval.runner import evaluate_with, in_process

    options = dict(out=args.out, limit=args.limit, few_shot=args.few_shot, shots_path=args.shots, seed=args.seed,
                   progress=not args.quiet)
    if args.ray is None:
        from qwenvl_edge.model import load

        model = load(args.bundle, threads=args.threads, exact=args.exact)
        _warn_if_chat(args.bundle, model.generation.chat_format)
        summary = evaluate_with(in_process(model), args.task, args.data, **options)
    else:
        from qwenvl_edge.eval.cluster import Cluster, WorkersLost

        with Cluster(args.bundle, address=args.ray or None, workers=args.workers,
                     threads=args.threads_per_worker or 1, exact=args.exact) as cluster:
            _warn_if_chat(args.bundle, cluster.chat_format)
            try:
                summary = evaluate_with(cluster.answers, args.task, args.data, **options)
            except WorkersLost as e:
                sys.exit(f"qwenvl-edge eval: {e}")
    print(summary.table())


def _warn_if_chat(bundle: str, chat_format: str) -> None:
    if chat_format != "raw":
        print(f"qwenvl-edge eval: warning: {bundle} is a chat model, and the tasks' prompts are the base "
              f"model's (docs/eval.md): its scores are not comparable with the paper's Qwen-VL figures",
              file=sys.stderr)
