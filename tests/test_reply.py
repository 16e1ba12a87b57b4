"""Stop rules and streaming deltas of a reply, on scripted token sequences."""

import pytest

from qwenvl_edge.reply import ReplyStream, deltas
from qwenvl_edge.records import Timings
from qwenvl_edge.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tok():
    return Tokenizer({bytes([b]): b for b in range(256)})


def run(tok, script, stop_ids=(), stop_words=(), cancel_after=None, stop=()):
    closed = []

    def tokens():
        try:
            yield from script
        finally:
            closed.append(True)

    def make(owner):
        return deltas(owner, tokens(), tok, set(stop_ids), stop_words, Timings(), stop=stop)

    stream = ReplyStream(make)
    out = []
    for i, delta in enumerate(stream):
        out.append(delta)
        if cancel_after is not None and i + 1 == cancel_after:
            stream.cancel()
    return out, stream.reply, closed


def test_stop_id_ends_the_reply_and_is_not_text(tok):
    eos = tok.special.endoftext
    out, reply, closed = run(tok, list(b" hi there ") + [eos] + list(b"never"), stop_ids=[eos])
    assert "".join(out) == reply.text == "hi there"
    assert reply.finish_reason == "stop" and reply.token_ids[-1] == eos and closed


def test_stop_word_text_is_held_back_and_dropped(tok):
    word = list(b"Human:")
    script = list(b"ok Hum") + list(b"an is fine Human:") + list(b" more")
    out, reply, _ = run(tok, script, stop_words=[word])
    assert reply.text == "ok Human is fine" == "".join(out)
    assert reply.token_ids == script[: len(script) - len(b" more")]
    assert all("Human:" not in d for d in out)


def test_length_and_boxes(tok):
    out, reply, _ = run(tok, list("<ref>a dog</ref><box>(1,2),(3,4)</box>".encode()))
    assert reply.finish_reason == "length" and reply.boxes[0].ref == "a dog"


def test_cancel_from_the_consumer(tok):
    out, reply, closed = run(tok, list(b"a b c d e f"), cancel_after=2)
    assert reply.finish_reason == "cancelled" and len(reply.token_ids) <= 4 and closed


def test_the_reply_after_leaving_the_loop_early_is_what_came_so_far(tok):
    closed = []

    def tokens():
        try:
            yield from b"x y z"
        finally:
            closed.append(True)

    stream = ReplyStream(lambda owner: deltas(owner, tokens(), tok, set(), [], Timings()))
    with pytest.raises(RuntimeError, match="not complete"):
        stream.reply  # noqa: B018 (never started: nothing to end)
    for first in stream:
        break
    assert stream.reply.finish_reason == "cancelled" and stream.reply.text.startswith(first) and closed
    assert list(stream) == []  # the generation is over


def test_stop_strings_end_the_reply_wherever_the_tokens_split_them(tok):
    script = list(b"Hello wor") + list(b"ld. EN") + list(b"D more")
    out, reply, closed = run(tok, script, stop=["END"])
    assert reply.text == "Hello world." == "".join(out) and reply.finish_reason == "stop" and closed
    assert reply.token_ids == script[: script.index(ord("D")) + 1]  # nothing generated after the stop
    assert all("E" not in d for d in out)  # "E", "EN" were held back until they could not be "END"


def test_text_held_for_a_stop_string_is_shown_when_it_turns_out_not_to_be_one(tok):
    out, reply, _ = run(tok, list(b"an ENd, ENDING"), stop=["END", "\n\n"])
    assert reply.text == "an ENd," == "".join(out) and " ENd" in out  # " EN" held, shown with the "d"
    out, reply, _ = run(tok, list(b"one\n\ntwo"), stop=["END", "\n\n"])
    assert reply.text == "one" == "".join(out)
    out, reply, _ = run(tok, list(b"no stop here EN"), stop=["END"])  # the held tail is shown at the end
    assert reply.text == "no stop here EN" == "".join(out) and reply.finish_reason == "length"


def test_the_earliest_stop_string_wins_and_bad_ones_are_refused(tok):
    from qwenvl_edge.reply import stop_strings

    _, reply, _ = run(tok, list(b"a, b; c"), stop=[";", ","])
    assert reply.text == "a" and stop_strings("END") == ("END",) and stop_strings(None) == ()
    for bad in ("", [""], ["x", 3], [b"x"]):
        with pytest.raises(ValueError, match="stop must be"):
            stop_strings(bad)
