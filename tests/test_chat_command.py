"""``qwenvl-edge chat`` driven as a person drives it: lines piped in, or typed at a terminal (a pty)."""

import json
import os
import select
import subprocess
import time

import numpy as np
from PIL import Image

from command_line import COMMAND, qwenvl_edge

ANSWER = ["--temperature", "0", "--max-tokens", "3"]


def test_a_piped_conversation_with_every_command(tiny_bundle, tmp_path):
    picture = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 320, 3), dtype=np.uint8)).save(picture)
    saved = tmp_path / "talk.json"
    lines = ["/help", f"/image {picture}", "hello?", f"/image {tmp_path / 'absent.png'}", "again", "/retry",
             "/frobnicate", "/etc/hosts: what is in this file?", f"/save {saved}", "/reset", "/retry", "/quit"]
    done = qwenvl_edge("chat", str(tiny_bundle), *ANSWER, stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert all(c in err.split("(image")[0] for c in ("/image PATH", "/retry", "/save FILE", "/reset"))  # /help
    assert "> " in err and "> " not in done.stdout  # the prompt goes to stderr: stdout holds the replies
    assert "error: image" in err and "no such file" in err  # refused when added: "again" is answered
    assert "unknown command /frobnicate" in err
    assert err.count("tok/s") == 4  # hello, again, its retry, the question about /etc/hosts (not a command)
    assert "nothing to regenerate" in err  # /retry after /reset
    talk = json.loads(saved.read_text())
    assert talk["system"] == "You are a helpful assistant." and len(talk["turns"]) == 3
    assert talk["turns"][0]["query"] == f"Picture 1: <img>{picture}</img>\nhello?"
    assert [t["query"] for t in talk["turns"][1:]] == ["again", "/etc/hosts: what is in this file?"]


def test_a_base_bundle_is_sent_to_ask_raw(tiny_base_bundle):
    done = qwenvl_edge("chat", str(tiny_base_bundle), stdin="hello\n")
    assert done.returncode == 1 and "ask --raw" in done.stderr


def test_line_editing_and_history_at_a_terminal(tiny_bundle, tmp_path):
    """Typed at a terminal: Ctrl-A moves to the start of the line, Ctrl-P recalls the previous line, and the
    lines are kept for the next session."""
    saved = tmp_path / "talk.json"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "INPUTRC": "/dev/null", "TERM": "xterm"}
    screen = Terminal([*COMMAND, "chat", str(tiny_bundle), *ANSWER], env)
    try:
        screen.expect("> ")
        screen.type("wrld\x01hello \r")  # "wrld", to the start, "hello ": "hello wrld"
        screen.expect("tok/s")
        screen.expect("> ")
        screen.type("\x10\r")  # the previous line again
        screen.expect("tok/s")
        screen.expect("> ")
        screen.type(f"/save {saved}\r")
        screen.expect("saved 2 turns")
        screen.expect("> ")
        screen.type("/quit\r")
        assert screen.wait() == 0
    finally:
        screen.close()
    assert [t["query"] for t in json.loads(saved.read_text())["turns"]] == ["hello wrld", "hello wrld"]
    history = (tmp_path / "data" / "qwenvl-edge" / "chat_history").read_text()
    assert "hello wrld" in history and "/quit" in history


class Terminal:
    """A command on a pseudo-terminal: what it shows, and keys typed into it."""

    def __init__(self, argv, env):
        main, sub = os.openpty()
        self.fd, self.shown = main, ""
        self.process = subprocess.Popen(argv, stdin=sub, stdout=sub, stderr=sub, env=env, start_new_session=True)
        os.close(sub)

    def expect(self, text, timeout=120):
        """Wait until ``text`` appears after what was already matched."""
        deadline = time.monotonic() + timeout
        while text not in self.shown:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"waited {timeout} s for {text!r}; the screen shows {self.shown[-500:]!r}"
            self.shown += os.read(self.fd, 4096).decode("utf-8", errors="replace")
        self.shown = self.shown[self.shown.index(text) + len(text):]

    def type(self, keys):
        os.write(self.fd, keys.encode())

    def wait(self):
        return self.process.wait(timeout=60)

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.fd)
