"""``qwenvl-edge eval``: the arguments and the command (the parser itself lives in cli.py)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from qwenvl_edge.eval.tasks import TASKS


def add_arguments(p: argparse.ArgumentParser) -> None:
    from qwenvl_edge.commands import add_model_arguments

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


def run(args: argparse.Namespace) -> None:
    needed = ["tqdm"] + (["pycocoevalcap"] if args.task == "caption" else [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"qwenvl-edge eval needs {', '.join(missing)}: pip install 'qwenvl-edge[eval]'")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.few_shot < 0:
        raise ValueError(f"--few-shot must be >= 0, got {args.few_shot}")
    from qwenvl_edge.eval.runner import evaluate
    from qwenvl_edge.model import load

    model = load(args.bundle, threads=args.threads, exact=args.exact)
    if model.generation.chat_format != "raw":
        print(f"qwenvl-edge eval: warning: {args.bundle} is a chat model, and the tasks' prompts are the base "
              f"model's (docs/eval.md): its scores are not comparable with the paper's Qwen-VL figures",
              file=sys.stderr)
    summary = evaluate(model, args.task, args.data, out=args.out, limit=args.limit, few_shot=args.few_shot,
                       shots_path=args.shots, seed=args.seed, progress=not args.quiet)
    print(summary.table())
