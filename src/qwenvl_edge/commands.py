"""The commands that run a bundle: ``ask`` and ``ground`` (``chat`` is in chat_command.py; parsing lives in
cli.py), and what they share: the model and generation flags, a reply as a person reads it."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from typing import Sequence

from PIL import Image

from qwenvl_edge import boxes, image
from qwenvl_edge.model import Model, load
from qwenvl_edge.prompts import raw_ids, with_image_spans
from qwenvl_edge.readable import TagFree, box_lines
from qwenvl_edge.reply import Reply, ReplyStream

# Each generation flag's destination and the API option it sets. API errors name the option
# ("max_new_tokens must be ..."); flag_message rewords them with the flag a user typed.
GENERATION_OPTIONS = {"max_tokens": "max_new_tokens", "temperature": "temperature", "top_p": "top_p",
                      "top_k": "top_k", "repetition_penalty": "repetition_penalty", "seed": "seed", "stop": "stop"}
MODEL_OPTIONS = {"threads": "threads"}
SAMPLING_OPTIONS = ("temperature", "top_p", "top_k", "repetition_penalty")


def flag_message(message: str) -> str:
    """An API error as the command line says it: "--max-tokens must be ...", not "max_new_tokens must be ..."."""
    for dest, option in {**GENERATION_OPTIONS, **MODEL_OPTIONS}.items():
        if message.startswith(option + " "):
            return "--" + dest.replace("_", "-") + message[len(option):]
    return message


def whole(low: int):
    """An argparse type: a whole number >= low (argparse names the flag in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="a bundle directory written by `qwenvl-edge export`")
    p.add_argument("--threads", type=whole(1), help="threads (default: physical cores)")
    p.add_argument("--exact", action="store_true",
                   help="fp32 activations in the decoder (slower; token-for-token checks against a reference)")


def add_orientation_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-orientation", action="store_true",
                   help="take images as stored, ignoring their EXIF orientation (as the reference does)")


def add_generation_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-tokens", type=whole(1), help="most new tokens (default: the bundle's, 512)")
    p.add_argument("--temperature", type=float, help="0 = greedy; default: the model's sampling defaults")
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=whole(0))
    p.add_argument("--repetition-penalty", type=float)
    p.add_argument("--seed", type=whole(0), help="seed for sampling")
    p.add_argument("--stop", action="append", metavar="TEXT", help="end the reply where it would say TEXT (repeatable)")


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print the reply as one JSON line: text, boxes, generated token ids, timings")
    out.add_argument("--raw-text", action="store_true", help="print the reply's text as the model wrote it, "
                                                             "<ref>/<box> tags included")


def open_model(args: argparse.Namespace, keep_vision: bool = True) -> Model:
    return load(args.bundle, threads=args.threads, exact=args.exact, keep_vision=keep_vision)


def generation_options(args: argparse.Namespace, model: Model) -> dict:
    """The generation flags given, as the API's options; the sampling ones are checked now, before any
    image is encoded."""
    options = {option: getattr(args, dest) for dest, option in GENERATION_OPTIONS.items()
               if getattr(args, dest) is not None}
    model.sampling(**{k: v for k, v in options.items() if k in SAMPLING_OPTIONS})
    return options


def source(path: str, args: argparse.Namespace) -> image.ImageLike:
    return image.AsStored(path) if args.keep_orientation else path


def show(reply: ReplyStream | Reply, args: argparse.Namespace, size: tuple[int, int] | None, name: str = "") -> Reply:
    """Print a reply as it streams (or, given a Reply, whole) without its tags, its boxes listed after it
    with the pixels of the picture of ``size`` (``--raw-text``: the text as written)."""
    tags = None if args.raw_text else TagFree()
    # closing(): a loop left early (Ctrl-C, a closed pipe) ends the generation there
    with contextlib.closing(reply) if isinstance(reply, ReplyStream) else contextlib.nullcontext():
        for delta in [reply.text] if isinstance(reply, Reply) else reply:
            print(delta if tags is None else tags.push(delta), end="", flush=True)
    print("" if tags is None else tags.finish())
    done = reply if isinstance(reply, Reply) else reply.reply
    if done.boxes and tags is not None:
        print(f"boxes (x,y of 1000{f'; pixels of {name}, {size[0]}x{size[1]}' if size else ''}):")
        for line in box_lines(done.boxes, size):
            print("  " + line)
    return done


def ask(args: argparse.Namespace) -> None:
    if args.raw and args.system is not None:
        raise ValueError("--system does not apply to --raw: a base-model prompt has no system part")
    names = args.image
    pictures = [image.to_rgb(source(p, args)) for p in names]  # each read once, refused before the model loads
    model = open_model(args, keep_vision=False)  # one question: the fastest start, the least memory
    options = generation_options(args, model)
    if args.raw:
        spans = model.tokenizer.image_refs(raw_ids(model.tokenizer, args.question))
        if spans and not names:  # the images are the files the spans name, as in the reference
            names, pictures = spans, [image.to_rgb(source(p, args)) for p in spans]
        elif spans and spans != names:  # never the features of one image in a span that names another
            raise ValueError(f"the prompt's image spans name {', '.join(spans)} but --image gives {', '.join(names)}: "
                             f"name each --image in an <img></img> span, in order, or leave the spans out (one per "
                             f"image is put in front)")
        prepared = model.prepare_raw(with_image_spans(model.tokenizer, args.question, names), pictures)
        with model.session.lock:
            stream = model.run(model.session, prepared, **options)
            reply = stream.wait() if args.json else show(stream, args, *_latest(names, pictures))
    else:
        if model.generation.chat_format == "raw":
            raise ValueError(f"{args.bundle} is a base model (Qwen-VL), not a chat model: ask it with --raw and a "
                             f"base-model prompt, e.g. --raw --image dog.jpg \"Describe the image in English:\"")
        stream = model.chat(system=args.system).stream(args.question, pictures, **options)
        reply = stream.wait() if args.json else show(stream, args, *_latest(names, pictures))
    if args.json:
        print(json.dumps(reply.as_dict(), ensure_ascii=False))


def _latest(names: Sequence[str], pictures: Sequence[Image.Image]) -> tuple[tuple[int, int] | None, str]:
    """The size and name of the latest picture, the one the model's boxes refer to (as in the reference)."""
    return (pictures[-1].size, names[-1]) if pictures else (None, "")


def ground(args: argparse.Namespace) -> None:
    picture = image.to_rgb(source(args.image, args))  # read once (a URL once), refused before the model loads
    model = open_model(args, keep_vision=False)
    found = model.ground(picture, args.expression)
    if args.json:
        print(json.dumps({"image": args.image, "width": picture.width, "height": picture.height,
                          "expression": args.expression,
                          "boxes": [dict(dataclasses.asdict(b), pixels=b.pixels(*picture.size)) for b in found]},
                         ensure_ascii=False))
    else:
        print("\n".join(box_lines(found, picture.size, args.expression)) if found else "no box found")
    if args.output:
        boxes.draw(picture, found).save(args.output)
        print(f"wrote {args.output}", file=sys.stderr if args.json else sys.stdout)
