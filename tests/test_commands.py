"""The ask and ground commands on the tiny bundles (chat: test_chat_command.py)."""

import json

import numpy as np
import pytest
from PIL import Image

from command_line import qwenvl_edge, start
from qwenvl_edge.cli import main


def picture(tmp_path, size=(320, 200)):
    path = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return str(path)


def test_ask_json_is_one_line_greedy_and_complete(tiny_bundle, tmp_path):
    args = ["ask", str(tiny_bundle), "--image", picture(tmp_path), "What is it?", "--json", "--temperature", "0",
            "--max-tokens", "6", "--exact"]
    first, second = qwenvl_edge(*args), qwenvl_edge(*args)
    assert first.stdout.count("\n") == 1 and first.stdout.endswith("\n")  # one line: token ids and all
    first, second = json.loads(first.stdout), json.loads(second.stdout)
    assert first["token_ids"] == second["token_ids"] and 1 <= len(first["token_ids"]) <= 6
    assert set(first) == {"text", "boxes", "token_ids", "finish_reason", "timings"}
    assert first["timings"]["images"] == 1 and first["timings"]["prefill_tokens"] > 258


def test_ask_streams_text_and_raw_prompts(tiny_bundle, tmp_path, capsys):
    main(["ask", str(tiny_bundle), "--image", picture(tmp_path), "Describe.", "--max-tokens", "4", "--seed", "1"])
    assert capsys.readouterr().out.endswith("\n")
    main(["ask", str(tiny_bundle), "--raw", "--image", picture(tmp_path), "Describe the image in English:",
          "--max-tokens", "4", "--temperature", "0", "--json"])
    assert json.loads(capsys.readouterr().out)["timings"]["images"] == 1


def test_ground_writes_the_picture(tiny_bundle, tmp_path, capsys):
    main(["ground", str(tiny_bundle), "--image", picture(tmp_path), "the dog", "-o", str(tmp_path / "boxed.png")])
    out = capsys.readouterr().out
    with Image.open(tmp_path / "boxed.png") as boxed:
        assert "wrote" in out and boxed.size == (320, 200)


def test_ground_reads_an_image_url_once(tiny_bundle, tmp_path, capsys):
    import functools
    import http.server
    import threading

    picture(tmp_path)
    served = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            served.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        main(["ground", str(tiny_bundle), "--image", f"http://127.0.0.1:{server.server_address[1]}/p.png", "the dog",
              "-o", str(tmp_path / "boxed.png")])
    finally:
        server.shutdown()
        server.server_close()
    assert served == ["/p.png"] and "wrote" in capsys.readouterr().out
    with Image.open(tmp_path / "boxed.png") as boxed:
        assert boxed.size == (320, 200)


def test_bad_bundle_is_a_message_not_a_traceback(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit, match="not a bundle directory"):
        main(["ask", str(tmp_path / "nope"), "hi"])


LONG = ["--temperature", "0", "--max-tokens", "1500"]  # the tiny models answer greedily for seconds


def test_ctrl_c_ends_ask_quietly_with_status_130(tiny_bundle):
    import signal

    with start("ask", str(tiny_bundle), "Hello?", *LONG) as child:
        child.stdout.read(1)  # it is answering
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 130 and b"Traceback" not in child.stderr.read()


def test_a_closed_pipe_ends_ask_quietly(tiny_bundle):
    with start("ask", str(tiny_bundle), "Hello?", *LONG) as child:
        child.stdout.read(1)
        child.stdout.close()  # `| head -c 1`
        assert child.wait(timeout=60) == 141 and child.stderr.read() == b""


@pytest.mark.parametrize("flags, message", [
    (["--top-p", "3"], "qwenvl-edge ask: --top-p must be in (0, 1], got 3.0"),
    (["--max-tokens", "0"], "argument --max-tokens: must be >= 1, got 0"),
    (["--max-tokens", "99999999"], "qwenvl-edge ask: --max-tokens must be a whole number in 1..1048576"),
    (["--threads", "999"], "qwenvl-edge ask: --threads must be a whole number in 1..256"),
    (["--seed", "1.5"], "argument --seed: must be a whole number, got '1.5'"),
    (["--stop", ""], "qwenvl-edge ask: --stop must be a string or a list of non-empty strings"),
])
def test_errors_name_the_flag_not_the_api_argument(tiny_bundle, flags, message):
    done = qwenvl_edge("ask", str(tiny_bundle), "Hello?", *flags)
    assert done.returncode in (1, 2) and message in done.stderr and "Traceback" not in done.stderr


def test_replies_are_shown_without_tags_and_boxes_listed(tiny_bundle, capsys):
    import argparse

    from qwenvl_edge import commands
    from qwenvl_edge.records import Timings
    from qwenvl_edge.reply import ReplyStream, deltas
    from qwenvl_edge.tokenizer import Tokenizer

    tokenizer = Tokenizer({bytes([b]): b for b in range(256)})
    said = "<ref>the dog</ref><box>(100,200),(500,800)</box> runs"

    def stream():
        ids = (t for t in tokenizer.encode(said))
        return ReplyStream(lambda owner: deltas(owner, ids, tokenizer, set(), [], Timings()))

    reply = commands.show(stream(), argparse.Namespace(raw_text=False), (640, 480), "dog.jpg")
    assert reply.text == said and capsys.readouterr().out == (
        "the dog runs\nboxes (x,y of 1000; pixels of dog.jpg, 640x480):\n"
        "  the dog: (100,200),(500,800) of 1000 -> pixels (64,96),(320,384)\n")
    commands.show(stream(), argparse.Namespace(raw_text=True), (640, 480), "dog.jpg")
    assert capsys.readouterr().out == said + "\n"


def test_text_that_mentions_an_img_tag_is_a_question(tiny_bundle):
    done = qwenvl_edge("ask", str(tiny_bundle), "what does <img> mean in HTML?", "--max-tokens", "2")
    assert done.returncode == 0 and done.stderr == ""


def test_a_base_bundle_is_asked_with_raw(tiny_base_bundle, tmp_path):
    import signal

    chat_style = qwenvl_edge("ask", str(tiny_base_bundle), "Hello?")
    assert chat_style.returncode == 1 and "is a base model" in chat_style.stderr and "--raw" in chat_style.stderr
    system = qwenvl_edge("ask", str(tiny_base_bundle), "Hello?", "--raw", "--system", "Be brief.")
    assert system.returncode == 1 and "--system does not apply to --raw" in system.stderr
    with start("ask", str(tiny_base_bundle), "--raw", "Hello?", *LONG) as child:
        child.stdout.read(1)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 130
        assert len(child.stdout.read()) < 500  # streamed: the first words came while the other 1000 were to come


def test_raw_image_spans_must_name_the_given_images(tiny_base_bundle, tmp_path):
    path = picture(tmp_path)
    other = qwenvl_edge("ask", str(tiny_base_bundle), "--raw", "--image", path, "<img>dog.jpg</img>Describe:")
    assert other.returncode == 1 and "name dog.jpg but --image gives" in other.stderr
    for args in (["--image", path, f"<img>{path}</img>Describe:"], [f"<img>{path}</img>Describe:"],
                 ["--image", path, "Describe:"]):  # named alike; the span's file; a span put in front
        done = qwenvl_edge("ask", str(tiny_base_bundle), "--raw", *args, "--max-tokens", "2", "--json")
        assert done.returncode == 0 and json.loads(done.stdout)["timings"]["images"] == 1, args


def test_stop_ends_the_reply(tiny_bundle):
    whole = json.loads(qwenvl_edge("ask", str(tiny_bundle), "Hello?", "--temperature", "0", "--max-tokens", "20",
                                   "--json").stdout)["text"]
    stop = whole[len(whole) // 2 :][:3]
    cut = qwenvl_edge("ask", str(tiny_bundle), "Hello?", "--temperature", "0", "--max-tokens", "20", "--stop", stop,
                      "--raw-text")
    assert cut.stdout == whole[: whole.find(stop)].strip() + "\n"


def test_ground_json_and_the_kept_orientation(tiny_bundle, tmp_path):
    stored = np.random.default_rng(0).integers(0, 255, (200, 320, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown 200 wide, 320 high
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    args = ["ground", str(tiny_bundle), "--image", str(tmp_path / "phone.png"), "the dog", "--json",
            "-o", str(tmp_path / "boxed.png")]
    upright = qwenvl_edge(*args)
    assert upright.stdout.count("\n") == 1 and "wrote" in upright.stderr
    found = json.loads(upright.stdout)
    assert (found["width"], found["height"]) == (200, 320) and found["expression"] == "the dog"
    assert isinstance(found["boxes"], list)
    with Image.open(tmp_path / "boxed.png") as boxed:
        assert boxed.size == (200, 320)
    kept = json.loads(qwenvl_edge(*args, "--keep-orientation").stdout)
    assert (kept["width"], kept["height"]) == (320, 200)
