"""The ``qwenvl-edge`` command."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

import qwenvl_edge


def _needs_export_extra() -> None:
    if importlib.util.find_spec("torch") is None:  # checked, not imported: the runtime never loads torch
        sys.exit("this command needs the exporters: pip install torch==2.13.0 'qwenvl-edge[export]'")


def cmd_info(args: argparse.Namespace) -> None:
    info = {"version": qwenvl_edge.__version__, "format_version": qwenvl_edge.FORMAT_VERSION,
            "cpu": qwenvl_edge.cpu_info()}
    print(json.dumps(info, indent=2))


def cmd_demo(args: argparse.Namespace) -> None:
    _needs_export_extra()
    from qwenvl_edge.export.demo import run

    run(workdir=args.workdir, vocab=args.vocab)


def cmd_tiny(args: argparse.Namespace, rest: list[str]) -> None:
    _needs_export_extra()
    from qwenvl_edge.export.tiny import main

    main(rest)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="qwenvl-edge", description="Run Qwen-VL fast on laptop CPUs.")
    parser.add_argument("--version", action="version", version=qwenvl_edge.__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="version, bundle format version and the CPU features the core sees")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("demo", help="build a tiny random Qwen-VL and run it end to end (seconds)")
    p.add_argument("--workdir", help="where to write the tiny checkpoint (default: a temporary directory)")
    p.add_argument("--vocab", help="a qwen.tiktoken whose first ranks form the tiny vocabulary")
    p.set_defaults(run=cmd_demo)

    sub.add_parser("tiny", help="write a random tiny checkpoint in the Hugging Face layout (see tiny -h)",
                   add_help=False)

    args, rest = parser.parse_known_args(argv)
    if args.command == "tiny":
        cmd_tiny(args, rest)
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    else:
        args.run(args)


if __name__ == "__main__":
    main()
