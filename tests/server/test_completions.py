"""/v1/completions for base bundles (Qwen-VL): a raw prompt whose <img> spans are filled, in order, by the
attached images (never read as paths), the same reply as Model.generate."""

from __future__ import annotations

import httpx
import pytest

openai = pytest.importorskip("openai")

import qwenvl_edge  # noqa: E402
from serving import Served, data_url  # noqa: E402


@pytest.fixture(scope="module")
def base(tiny_base_bundle):
    model = qwenvl_edge.load(tiny_base_bundle, threads=2)
    with Served(model, name="tiny-base") as s:
        yield s


def test_a_raw_prompt_with_an_attached_image_equals_generate(base, tiny_base_bundle, pictures):
    reference = qwenvl_edge.load(tiny_base_bundle, threads=2)
    prompt = "<img>picture</img>Describe the image in English:"
    expected = reference.generate(prompt, [pictures[0]], temperature=0, max_new_tokens=10)
    client = openai.OpenAI(base_url=base.url + "/v1", api_key="unused", max_retries=0)
    got = client.completions.create(model="tiny-base", prompt=prompt, temperature=0, max_tokens=10,
                                    extra_body={"images": [data_url(pictures[0])]})
    assert got.choices[0].text == expected.text and got.usage.completion_tokens == len(expected.token_ids)
    streamed = client.completions.create(model="tiny-base", prompt=prompt, temperature=0, max_tokens=10, stream=True,
                                         extra_body={"images": [data_url(pictures[0])]})
    assert "".join(c.choices[0].text for c in streamed if c.choices) == expected.text


def test_a_span_without_an_attached_image_is_refused_not_read(base, pictures):
    response = httpx.post(base.url + "/v1/completions", json={"prompt": f"<img>{pictures[0]}</img>Describe:"})
    assert response.status_code == 400
    assert "1 <img>..</img> span(s) but 0 image(s)" in response.json()["error"]["message"]


def test_chat_completions_on_a_base_bundle_says_where_to_go(base):
    response = httpx.post(base.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 400 and "/v1/completions" in response.json()["error"]["message"]
