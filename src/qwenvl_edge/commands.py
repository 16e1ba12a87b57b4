"""The commands that run a bundle: ``ask``, ``chat`` and ``ground`` (parsing lives in cli.py)."""

from __future__ import annotations

import argparse
import json
import sys

from qwenvl_edge import boxes, image
from qwenvl_edge.model import Model, load


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="a bundle directory written by `qwenvl-edge export`")
    p.add_argument("--threads", type=int, help="threads (default: physical cores)")
    p.add_argument("--exact", action="store_true",
                   help="fp32 activations in the decoder (slower; token-for-token checks against a reference)")


def add_generation_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-tokens", type=int, help="most new tokens (default: the bundle's, 512)")
    p.add_argument("--temperature", type=float, help="0 = greedy; default: the model's sampling defaults")
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--repetition-penalty", type=float)
    p.add_argument("--seed", type=int, help="seed for sampling")


def _open(args: argparse.Namespace, keep_vision: bool = True) -> Model:
    return load(args.bundle, threads=args.threads, exact=args.exact, keep_vision=keep_vision)


def _options(args: argparse.Namespace) -> dict:
    return {k: v for k, v in dict(max_new_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                                  top_k=args.top_k, repetition_penalty=args.repetition_penalty,
                                  seed=args.seed).items() if v is not None}


def ask(args: argparse.Namespace) -> None:
    model = _open(args, keep_vision=False)  # one question: the fastest start, the least memory
    if args.raw:
        reply = model.generate(args.question, args.image, **_options(args))
    else:
        chat = model.chat(system=args.system)
        if args.json:
            reply = chat.ask(args.question, args.image, **_options(args))
        else:
            stream = chat.stream(args.question, args.image, **_options(args))
            for delta in stream:
                print(delta, end="", flush=True)
            print()
            reply = stream.reply
    if args.json:
        print(json.dumps(reply.as_dict(), ensure_ascii=False, indent=2))
    elif args.raw:
        print(reply.text)


def ground(args: argparse.Namespace) -> None:
    picture = image.to_rgb(args.image)  # read once (a URL is fetched once), refused before the model loads
    model = _open(args, keep_vision=False)
    found = model.ground(picture, args.expression)
    width, height = picture.size
    for box in found:
        x1, y1, x2, y2 = box.pixels(width, height)
        print(f"{box.ref or args.expression}: ({box.x1:g},{box.y1:g}),({box.x2:g},{box.y2:g}) of 1000 -> pixels "
              f"({x1:.0f},{y1:.0f}),({x2:.0f},{y2:.0f})")
    if not found:
        print("no box found")
    if args.output:
        boxes.draw(picture, found).save(args.output)
        print(f"wrote {args.output}")


def chat(args: argparse.Namespace) -> None:
    model = _open(args)
    model.preload_vision()  # ready by the time the first question is typed
    conversation = model.chat(system=args.system)
    pending = list(args.image or [])
    print("qwenvl-edge chat: /image PATH adds an image to the next question, /reset starts over, /quit ends",
          file=sys.stderr)
    while True:
        try:
            line = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return
        if line == "/reset":
            conversation.reset()
            pending.clear()
            print("(conversation reset)", file=sys.stderr)
            continue
        if line.startswith("/image"):
            path = line[len("/image"):].strip()
            if path:
                try:
                    image.to_rgb(path)  # a bad image is refused now, not with every later question
                except ValueError as e:
                    print(f"error: {e}", file=sys.stderr)
                    continue
                pending.append(path)
                print(f"(image {path} goes with the next question)", file=sys.stderr)
            continue
        try:
            stream = conversation.stream(line, pending, **_options(args))
            for delta in stream:
                print(delta, end="", flush=True)
            print()
            t = stream.reply.timings
            print(f"({t.prefill_tokens} prompt tokens in {t.prefill_s:.2f} s, {t.decode_tokens} tokens at "
                  f"{t.decode_tok_s:.1f} tok/s, vision {t.vision_s:.2f} s)", file=sys.stderr)
            pending.clear()
        except KeyboardInterrupt:
            print("\n(interrupted)", file=sys.stderr)
        except (ValueError, OSError) as e:  # bad image, prompt too long: the conversation is unchanged
            print(f"error: {e} (the question's images were dropped)" if pending else f"error: {e}",
                  file=sys.stderr)
            pending.clear()
