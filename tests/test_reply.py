"""Stop rules and streaming deltas of a reply, on scripted token sequences."""

import pytest

from qwenvl_edge.reply import ReplyStream, deltas
from qwenvl_edge.records import Timings
from qwenvl_edge.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tok():
    return Tokenizer({bytes([b]): b for b in range(256)})


def run(tok, script, stop_ids=(), stop_words=(), cancel_after=None):
    closed = []

    def tokens():
        try:
            yield from script
        finally:
            closed.append(True)

    def make(owner):
        return deltas(owner, tokens(), tok, set(stop_ids), stop_words, Timings())

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


def test_leaving_the_loop_cancels(tok):
    stream = ReplyStream(lambda owner: deltas(owner, (t for t in b"x y z"), tok, set(), [], Timings()))
    for _ in stream:
        break
    stream._deltas.close()
    assert stream.reply.finish_reason == "cancelled"
