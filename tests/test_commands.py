"""The ask, chat and ground commands on the tiny bundle."""

import json

import numpy as np
from PIL import Image

from qwenvl_edge.cli import main


def picture(tmp_path, size=(320, 200)):
    path = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return str(path)


def test_ask_json_is_greedy_and_complete(tiny_bundle, tmp_path, capsys):
    args = ["ask", str(tiny_bundle), "--image", picture(tmp_path), "What is it?", "--json", "--temperature", "0",
            "--max-tokens", "6", "--exact"]
    main(args)
    first = json.loads(capsys.readouterr().out)
    main(args)
    second = json.loads(capsys.readouterr().out)
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


def test_chat_session(tiny_bundle, tmp_path, capsys, monkeypatch):
    lines = iter([f"/image {picture(tmp_path)}", "hello?", "/image " + str(tmp_path / "absent.png"), "again",
                  "/reset", "new topic", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    main(["chat", str(tiny_bundle), "--temperature", "0", "--max-tokens", "3"])
    err = capsys.readouterr().err
    assert err.count("tok/s") == 3  # the bad image is refused when added: "again" is answered too
    assert "error: image" in err and "no such file" in err and "(conversation reset)" in err


def test_bad_bundle_is_a_message_not_a_traceback(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit, match="not a bundle directory"):
        main(["ask", str(tmp_path / "nope"), "hi"])
