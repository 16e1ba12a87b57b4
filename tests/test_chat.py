"""One reply at a time per Chat: interleaved streams and threads are refused clearly, never corrupt it."""

import threading

import pytest

import qwenvl_edge


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return qwenvl_edge.load(tiny_bundle, threads=2, exact=True)


def b_after_a(model):
    """The greedy reply to "B?" in a fresh chat that was asked "A?" first."""
    fresh = model.chat()
    fresh.ask("A?", temperature=0, max_new_tokens=6)
    return fresh.ask("B?", temperature=0, max_new_tokens=6).token_ids


def test_a_second_stream_waits_for_the_first_and_answers_after_its_turn(model):
    chat = model.chat()
    a = chat.stream("A?", temperature=0, max_new_tokens=6)
    b = chat.stream("B?", temperature=0, max_new_tokens=6)  # made before a runs: fine, it has not started
    a_deltas = iter(a)
    next(a_deltas, None)  # a is generating now
    with pytest.raises(RuntimeError, match="already answering"):
        b.wait()
    for _ in a_deltas:
        pass
    assert [t.query for t in chat.turns] == ["A?"]
    with pytest.raises(RuntimeError, match="not complete"):
        b.reply  # noqa: B018 (its refused start left no reply)
    again = chat.stream("B?", temperature=0, max_new_tokens=6).wait()
    assert again.token_ids == b_after_a(model) and [t.query for t in chat.turns] == ["A?", "B?"]


def test_a_stream_made_before_another_turn_answers_after_that_turn(model):
    chat = model.chat()
    late = chat.stream("B?", temperature=0, max_new_tokens=6)
    chat.ask("A?", temperature=0, max_new_tokens=6)
    reply = late.wait()  # built when it starts: after A's turn, in the order the turns happened
    assert reply.token_ids == b_after_a(model) and [t.query for t in chat.turns] == ["A?", "B?"]


def test_a_thread_asking_while_another_answers_is_refused(model):
    chat = model.chat()
    stream = chat.stream("A?", temperature=0, max_new_tokens=8)
    deltas = iter(stream)
    next(deltas, None)
    errors = []

    def other():
        try:
            chat.ask("B?", max_new_tokens=4)
        except RuntimeError as e:
            errors.append(str(e))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert errors and "already answering" in errors[0]
    with pytest.raises(RuntimeError, match="already answering"):
        chat.regenerate()
    for _ in deltas:
        pass
    assert [t.query for t in chat.turns] == ["A?"]
    assert chat.regenerate(temperature=0, max_new_tokens=8).token_ids == stream.reply.token_ids


def test_many_threads_on_one_chat_leave_a_consistent_conversation(model):
    chat = model.chat()
    outcomes = []

    def ask(i):
        try:
            outcomes.append(chat.ask(f"Q{i}?", temperature=0, max_new_tokens=3).text)
        except RuntimeError:
            outcomes.append(None)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answered = [o for o in outcomes if o is not None]
    assert len(answered) == len(chat.turns) >= 1
    replay = model.chat()  # the history is what one thread asking in that order would have got
    for turn in chat.turns:
        assert replay.ask(turn.query, temperature=0, max_new_tokens=3).text == turn.reply


def test_a_chat_with_a_small_context_drops_old_turns_instead_of_failing(tiny_bundle):
    small = qwenvl_edge.load(tiny_bundle, threads=2, exact=True, context=256)
    chat = small.chat()
    for i in range(8):  # far more than 256 positions of conversation
        reply = chat.ask(f"Tell me a long story number {i}.", temperature=0, max_new_tokens=40, min_new_tokens=40)
        assert len(reply.token_ids) == 40
    assert len(chat.turns) == 8


def test_one_image_may_be_given_alone_and_a_too_long_prompt_costs_no_vision_pass(model, pictures, monkeypatch):
    chat = model.chat()
    alone = chat.ask("What is it?", pictures[0], temperature=0, max_new_tokens=3)
    listed = model.chat().ask("What is it?", [pictures[0]], temperature=0, max_new_tokens=3)
    assert alone.token_ids == listed.token_ids and alone.timings.images == 1

    def no_vision(*args, **kwargs):
        raise AssertionError("a vision pass for a prompt that cannot run")

    monkeypatch.setattr(model, "encode_images", no_vision)
    with pytest.raises(ValueError, match="prompt too long"):
        model.chat().ask("word " * 20000, [pictures[1]])
    with pytest.raises(ValueError, match="prompt too long"):
        model.generate("word " * 20000, [pictures[1]])
