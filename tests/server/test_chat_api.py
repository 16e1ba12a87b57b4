"""The official openai client against the server: the same replies as Chat.ask, images as data URLs,
the prompt cache across resent conversations, streaming in OpenAI's shape."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

openai = pytest.importorskip("openai")

from serving import data_url  # noqa: E402

GREEDY = dict(temperature=0, max_tokens=12)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def image_message(text, *paths):
    return {"role": "user", "content": [*({"type": "image_url", "image_url": {"url": data_url(p)}} for p in paths),
                                        {"type": "text", "text": text}]}


def generated_ids(server, prompt_tokens: int) -> list[int]:
    """The ids the last request generated, read from its session's cache (all but the last one, which
    generation never feeds back)."""
    return server.app.state.engine.pool.sessions[-1].ids[prompt_tokens:]


def test_a_reply_equals_chat_ask_for_the_same_conversation(client, server, reference_model, pictures):
    expected = reference_model.chat().ask("What is in the picture?", images=Path(pictures[0]).read_bytes(),
                                          temperature=0, max_new_tokens=12)
    got = client.chat.completions.create(model="tiny", messages=[image_message("What is in the picture?", pictures[0])],
                                         **GREEDY)
    assert got.choices[0].message.content == expected.text
    assert got.usage.completion_tokens == len(expected.token_ids)
    assert generated_ids(server, got.usage.prompt_tokens) == expected.token_ids[:-1]
    assert got.choices[0].finish_reason == expected.finish_reason
    assert got.timings["images"] == 1


def test_streaming_gives_the_same_reply_in_openai_chunks(client, server, reference_model):
    expected = reference_model.chat().ask("Say something.", temperature=0, max_new_tokens=12)
    stream = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Say something."}],
                                            stream=True, stream_options={"include_usage": True}, **GREEDY)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected.text
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == expected.finish_reason
    assert "timings" in finals[0].model_extra and "boxes" in finals[0].model_extra
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(expected.token_ids)
    assert generated_ids(server, chunks[-1].usage.prompt_tokens) == expected.token_ids[:-1]


def test_a_resent_conversation_reuses_the_cache_and_matches_a_two_turn_chat(client, reference_model, pictures):
    chat = reference_model.chat(system="You are terse.")
    first = chat.ask("Describe.", images=[Path(p).read_bytes() for p in pictures[:2]], temperature=0, max_new_tokens=12)
    second = chat.ask("And the colours?", temperature=0, max_new_tokens=12)
    messages = [{"role": "system", "content": "You are terse."}, image_message("Describe.", *pictures[:2])]
    one = client.chat.completions.create(model="tiny", messages=messages, **GREEDY)
    assert one.choices[0].message.content == first.text
    assert one.timings["images"] == 2 and one.timings["vision_s"] > 0
    messages += [{"role": "assistant", "content": one.choices[0].message.content},
                 {"role": "user", "content": "And the colours?"}]
    two = client.chat.completions.create(model="tiny", messages=messages, **GREEDY)
    assert two.choices[0].message.content == second.text
    t = two.timings
    assert t["vision_s"] == 0 and t["cached_images"] == 2, "the second turn ran the vision encoder again"
    # the whole first request (pictures included) is reused: only what follows it is prefilled
    assert t["cached_tokens"] >= one.usage.prompt_tokens > 2 * 258, "the second turn re-prefilled the shared prefix"
    assert t["prefill_tokens"] == two.usage.prompt_tokens - t["cached_tokens"]
    assert two.usage.prompt_tokens_details.cached_tokens == t["cached_tokens"]


def test_the_same_picture_in_a_new_conversation_skips_the_vision_pass(client, pictures):
    client.chat.completions.create(model="tiny", messages=[image_message("A?", pictures[2])], **GREEDY)
    again = client.chat.completions.create(model="tiny", messages=[image_message("B?", pictures[2])], **GREEDY)
    assert again.timings["cached_images"] == 1 and again.timings["vision_s"] == 0


def test_typed_image_tags_with_a_real_path_stay_text(client, server, pictures, reference_model):
    text = f"What is <img>{pictures[0]}</img>?"
    got = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": text}], **GREEDY)
    assert got.timings["images"] == 0 and got.timings["vision_s"] == 0
    plain = reference_model.chatml.context(text.replace("<img>", "&lt;img>"))[0]  # how many ids text of that size takes
    assert got.usage.prompt_tokens < len(plain) + 10, "the path became a 258-id image span"


def test_models_and_health(client, server):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_the_page_is_served(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "/v1/chat/completions" in page.text
    assert "http" not in page.text.split("<script>")[1], "the page fetches something from elsewhere"


def test_pictures_in_two_turns_are_numbered_over_the_conversation_like_chat(client, reference_model, pictures):
    chat = reference_model.chat()
    first = chat.ask("Look.", images=Path(pictures[0]).read_bytes(), temperature=0, max_new_tokens=12)
    second = chat.ask("And this?", images=Path(pictures[1]).read_bytes(), temperature=0, max_new_tokens=12)
    messages = [image_message("Look.", pictures[0]), {"role": "assistant", "content": first.text},
                image_message("And this?", pictures[1])]
    got = client.chat.completions.create(model="tiny", messages=messages, **GREEDY)
    assert got.choices[0].message.content == second.text
    assert got.usage.completion_tokens == len(second.token_ids) and got.timings["images"] == 2


@pytest.mark.parametrize("kind", ["WEBP", "GIF", "JPEG"])
def test_webp_gif_and_jpeg_pictures(client, pictures, kind):
    import base64
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.open(pictures[2]).save(out, kind)
    url = f"data:image/{kind.lower()};base64," + base64.b64encode(out.getvalue()).decode()
    got = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What?"}]}], **GREEDY)
    assert got.timings["images"] == 1 and got.boxes == []
