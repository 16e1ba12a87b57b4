"""``qwenvl-edge chat``: a conversation at the terminal, streamed. Line editing and a history kept
across sessions (readline) when the input is a terminal; the prompt goes to stderr when the output is
not one, so that piped output holds only the replies."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import sys
from typing import Callable, Iterator

from qwenvl_edge import image, user_data
from qwenvl_edge.chat import Chat
from qwenvl_edge.commands import flag_message, generation_options, open_model, show, source
from qwenvl_edge.reply import Reply

HELP = """commands:
  /image PATH   add an image (a path or URL) to the next question
  /retry        answer the last question again
  /save FILE    write the conversation to FILE as JSON
  /reset        start a new conversation
  /help         this list
  /quit         end (also /exit, Ctrl-D)
Ctrl-C stops a reply; a line that starts with /word is a command."""
COMMAND = re.compile(r"/[A-Za-z]+(?=\s|$)")
_Picture = tuple[tuple[int, int] | None, str]
HISTORY_LENGTH = 1000


def run(args: argparse.Namespace) -> None:
    model = open_model(args)
    if model.generation.chat_format == "raw":
        raise ValueError(f"{args.bundle} is a base model (Qwen-VL): chat needs Qwen-VL-Chat; ask a base model "
                         f"with `qwenvl-edge ask --raw`")
    model.preload_vision()  # ready by the time the first question is typed
    conversation = _Conversation(model.chat(system=args.system), args, generation_options(args, model))
    print("qwenvl-edge chat: /help lists the commands, /quit ends", file=sys.stderr)
    for path in args.image:
        conversation.add_image(path)
    with _line_editing():
        for line in _lines():
            if not conversation.handle(line):
                return


class _Conversation:
    """The conversation, the images waiting for the next question, and the latest picture's size (the
    one the model's boxes refer to)."""

    def __init__(self, chat: Chat, args: argparse.Namespace, options: dict):
        self.chat, self.args, self.options = chat, args, options
        self.pending: list[image.ImageLike] = []
        self.latest: _Picture = (None, "")  # (size, name) of the latest picture
        self._pending_latest: _Picture = self.latest  # the same once the pending images go with a question

    def handle(self, line: str) -> bool:
        """Act on one line; False to end."""
        command = COMMAND.match(line)
        if command is None:
            self.answer(lambda: show(self.chat.stream(line, self.pending, **self.options),
                                     self.args, *self._pending_latest), asks=True)
            return True
        name, rest = command.group(), line[command.end():].strip()
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            print(HELP, file=sys.stderr)
        elif name == "/reset":
            self.chat.reset()
            self.pending.clear()
            self.latest = self._pending_latest = (None, "")
            print("(conversation reset)", file=sys.stderr)
        elif name == "/image" and rest:
            self.add_image(rest)
        elif name == "/retry":
            self.answer(lambda: show(self.chat.regenerate(**self.options), self.args, *self.latest),
                        asks=False)
        elif name == "/save" and rest:
            self.save(rest)
        elif name in ("/image", "/save"):
            print(f"{name} needs an argument: /help", file=sys.stderr)
        else:
            print(f"unknown command {name}: /help lists the commands", file=sys.stderr)
        return True

    def add_image(self, path: str) -> None:
        picture = source(path, self.args)
        try:
            size = image.to_rgb(picture).size  # a bad image is refused now, not with every later question
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return
        self.pending.append(picture)
        self._pending_latest = (size, path)
        print(f"(image {path} goes with the next question)", file=sys.stderr)

    def answer(self, reply_of: Callable[[], Reply], asks: bool) -> None:
        """Print the reply ``reply_of()`` gives; ``asks``: a new question, which takes the pending images."""
        try:
            reply = reply_of()
        except KeyboardInterrupt:
            print("\n(interrupted)", file=sys.stderr)
            return
        except BrokenPipeError:
            raise  # the reader is gone: the command ends (cli.py)
        except (ValueError, OSError) as e:  # bad image, prompt too long: the conversation is unchanged
            dropped = asks and bool(self.pending)
            note = " (the question's images were dropped)" if dropped else ""
            print(f"error: {flag_message(str(e))}{note}", file=sys.stderr)
            if dropped:
                self.pending.clear()
                self._pending_latest = self.latest
            return
        if asks and self.pending:
            self.pending.clear()
            self.latest = self._pending_latest
        t = reply.timings
        print(f"({t.prefill_tokens} prompt tokens in {t.prefill_s:.2f} s, {t.decode_tokens} tokens at "
              f"{t.decode_tok_s:.1f} tok/s, vision {t.vision_s:.2f} s)", file=sys.stderr)

    def save(self, path: str) -> None:
        turns = [{"query": t.query, "reply": t.reply} for t in self.chat.turns]
        try:
            with open(path, "w", encoding="utf-8") as f:
                json.dump({"system": self.chat.system, "turns": turns}, f, ensure_ascii=False, indent=2)
                f.write("\n")
        except OSError as e:
            print(f"error: cannot write {path}: {e.strerror}", file=sys.stderr)
            return
        print(f"(saved {len(turns)} turn{'s' if len(turns) != 1 else ''} to {path})", file=sys.stderr)


def _lines() -> Iterator[str]:
    """The user's lines, stripped and not blank, until end of input or Ctrl-C at the prompt."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    while True:
        if not interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        try:
            line = input("> " if interactive else "").strip()
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return
        if line:
            yield line


@contextlib.contextmanager
def _line_editing() -> Iterator[None]:
    """readline for input() when the input is a terminal, with the history of earlier sessions."""
    # Windows' Python has no readline: the console's own line editing remains there.
    if not sys.stdin.isatty() or importlib.util.find_spec("readline") is None:
        yield
        return
    import readline

    path = user_data.directory("chat_history")
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(HISTORY_LENGTH)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            readline.write_history_file(path)
