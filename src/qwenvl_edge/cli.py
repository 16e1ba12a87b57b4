"""The ``qwenvl-edge`` command."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys

import qwenvl_edge
from qwenvl_edge import bundle_store
from qwenvl_edge.export.options import add_arguments as add_export_arguments


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


def cmd_bench(args: argparse.Namespace) -> None:
    from qwenvl_edge.bench.runner import run

    run(args)


def cmd_export(args: argparse.Namespace) -> None:
    from qwenvl_edge.export.export_model import export, summary
    from qwenvl_edge.export.hub import fetch, is_repo_id
    from qwenvl_edge.export.options import from_arguments

    options = from_arguments(args)  # checked before any download
    src, name, output = args.src, None, args.output
    if is_repo_id(src):
        src, name = fetch(args.src, args.revision, progress=options.progress)
        if not output:
            os.makedirs(bundle_store.root(), exist_ok=True)
            output = os.path.join(bundle_store.root(), bundle_store.name_for(args.src))
    elif args.revision:
        raise ValueError(f"--revision applies to a Hugging Face Hub id; {src} is a directory")
    elif not output:
        raise ValueError(f"-o/--output: where to write the bundle of {src}")
    manifest = export(src, output, options, source=name)
    print(summary(manifest, output))


def cmd_list(args: argparse.Namespace) -> None:
    from qwenvl_edge.bundle import Bundle

    names = bundle_store.names()
    print(f"bundles in {bundle_store.root()}:" if names else f"no bundles in {bundle_store.root()} yet "
          "(qwenvl-edge export Qwen/Qwen-VL-Chat-Int4 puts one there)")
    for name in names:
        try:
            bundle = Bundle.open(os.path.join(bundle_store.root(), name))
        except (ValueError, OSError) as e:
            print(f"  {name:<24} unreadable: {e}")
            continue
        m, gib = bundle.manifest, bundle.total_bytes / 2**30
        print(f"  {name:<24} {gib:5.1f} GiB  {m.generation.chat_format:<6} vision {m.vision.variant:<4} "
              f"decoder {m.decoder.quantization.get('method', '?')} lm_head {m.decoder.lm_head} "
              f"context {m.decoder.config.max_context}  from {m.model.source}")


def cmd_verify(args: argparse.Namespace) -> None:
    from qwenvl_edge.bundle import Bundle

    bundle = Bundle.open(args.bundle, check_files=False)  # verify names every missing or resized file
    total, done = bundle.total_bytes, 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if sys.stderr.isatty():
            print(f"\rverifying {done / max(total, 1):6.1%}", end="", file=sys.stderr, flush=True)

    bundle.verify(progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{args.bundle}: {len(bundle.manifest.files)} files, {total / 1e6:.1f} MB, all sha256 match")


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

    from qwenvl_edge.bench.runner import add_arguments as add_bench_arguments

    p = sub.add_parser("bench", help="latency on a random bundle of the real shapes (or --dims tiny), "
                                     "the machine's roof, and with --peers llama.cpp / onnxruntime / PyTorch")
    add_bench_arguments(p)
    p.set_defaults(run=cmd_bench, needs_torch=True)

    p = sub.add_parser("export", help="convert a Qwen-VL checkpoint (a directory or a Hugging Face Hub id) into a bundle")
    add_export_arguments(p)
    p.set_defaults(run=cmd_export, needs_torch=True)

    from qwenvl_edge import chat_command, commands

    p = sub.add_parser("ask", help="one question (with images) to a bundle; streams the answer")
    commands.add_model_arguments(p)
    p.add_argument("question")
    p.add_argument("--image", action="append", default=[], help="an image path or URL (repeatable)")
    commands.add_orientation_argument(p)
    commands.add_output_arguments(p)
    p.add_argument("--system", help="system prompt (chat models; default: the model's)")
    p.add_argument("--raw", action="store_true", help="a base-model prompt, sent as it is (no chat format); "
                                                     "its <img>PATH</img> spans name the --image files")
    commands.add_generation_arguments(p)
    p.set_defaults(run=commands.ask)

    p = sub.add_parser("chat", help="an interactive, streaming conversation (/help lists its commands)")
    commands.add_model_arguments(p)
    p.add_argument("--image", action="append", default=[], help="an image for the first question (repeatable)")
    commands.add_orientation_argument(p)
    p.add_argument("--raw-text", action="store_true", help="print replies as the model wrote them, tags included")
    p.add_argument("--system", help="system prompt (default: the model's)")
    commands.add_generation_arguments(p)
    p.set_defaults(run=chat_command.run)

    p = sub.add_parser("ground", help="find an expression in an image: boxes, and a picture with them drawn")
    commands.add_model_arguments(p)
    p.add_argument("expression", help='what to find, e.g. "the dog"')
    p.add_argument("--image", required=True)
    commands.add_orientation_argument(p)
    p.add_argument("--json", action="store_true", help="print the boxes as one JSON line")
    p.add_argument("-o", "--output", help="write the image with the boxes drawn here")
    p.set_defaults(run=commands.ground)

    from qwenvl_edge.server import command as serve_command

    p = sub.add_parser("serve", help="a local OpenAI-compatible server (chat with images, streaming) and a web page "
                                     "(needs the server extra)")
    serve_command.add_arguments(p)
    p.set_defaults(run=serve_command.run)

    from qwenvl_edge.eval import command as eval_command

    p = sub.add_parser("eval", help="score a bundle on a task of the paper's evaluation (JSONL data, resumable)")
    eval_command.add_arguments(p)
    p.set_defaults(run=eval_command.run)

    p = sub.add_parser("list", help="the bundles kept by name (where `export REPO_ID` writes), with their settings")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("verify", help="re-check every file of a bundle against the manifest's sha256")
    p.add_argument("bundle")
    p.set_defaults(run=cmd_verify)

    sub.add_parser("tiny", help="write a random tiny checkpoint in the Hugging Face layout (see tiny -h)",
                   add_help=False)

    args, rest = parser.parse_known_args(argv)
    if args.command == "tiny":
        cmd_tiny(args, rest)
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    else:
        if getattr(args, "needs_torch", False):
            _needs_export_extra()
        if argv is None:  # the command itself, not a caller in Python
            # `kill` (SIGTERM) ends a command as Ctrl-C does: its cleanups run (an export removes its staging).
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        try:
            args.run(args)
        except KeyboardInterrupt:  # Ctrl-C: the cleanups ran on the way out; no traceback
            print(file=sys.stderr)
            sys.exit(128 + signal.SIGINT)
        except BrokenPipeError:  # the reader left (`| head`): end quietly, like other tools
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush into the pipe
            sys.exit(128 + getattr(signal, "SIGPIPE", 13))  # Windows has no SIGPIPE; 141 as on POSIX
        except (ValueError, OSError) as e:  # FormatError is a ValueError: a clear message, no traceback
            sys.exit(f"qwenvl-edge {args.command}: {commands.flag_message(str(e))}")


if __name__ == "__main__":
    main()
