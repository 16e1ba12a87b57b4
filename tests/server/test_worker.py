"""One computation at a time: a client that leaves cancels its generation, the server answers /health and
/v1/models while a generation runs, and a full queue is refused with 429."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from qwenvl_edge.server.engine import Settings
from serving import Served
from doubles import GROUNDED, ScriptedModel, pieces

ASK = {"messages": [{"role": "user", "content": "Sing."}], "stream": True}


@pytest.fixture()
def endless(served_model):
    model = ScriptedModel(served_model, None, delay_s=0.01)
    with Served(model, Settings(sessions=1), queue=1) as s:
        yield s, model


def test_a_client_that_disconnects_cancels_its_generation_and_the_server_stays_responsive(endless):
    server, model = endless
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", "/v1/chat/completions", json=ASK) as response:
            lines = response.iter_lines()
            assert json.loads(next(line for line in lines if line.startswith("data: "))[6:])["choices"]
            assert model.started.wait(30)
            assert client.get("/health").json()["status"] == "ok"  # while it generates
            assert client.get("/v1/models").json()["data"][0]["id"] == "tiny"
        # leaving the block closed the connection
    assert model.cancelled.wait(30), "the generation went on after its client left"


def test_a_full_queue_is_refused_with_429(endless):
    server, model = endless
    running = httpx.Client(base_url=server.url, timeout=30)
    streams = []
    try:
        first = running.stream("POST", "/v1/chat/completions", json=ASK)
        streams.append(first.__enter__())
        assert model.started.wait(30)
        outcome = []

        def wait_in_queue():
            try:
                httpx.post(server.url + "/v1/chat/completions", json=dict(ASK, stream=False), timeout=2)
            except httpx.ReadTimeout as e:  # gave up after 2 s: that cancels it
                outcome.append(e)

        waiting = threading.Thread(target=wait_in_queue)
        waiting.start()  # takes the one place in the queue
        while server.worker.queued() < 1:
            time.sleep(0.01)
        refused = httpx.post(server.url + "/v1/chat/completions", json=dict(ASK, stream=False), timeout=30)
        assert refused.status_code == 429 and "retry later" in refused.json()["error"]["message"]
        waiting.join()
    finally:
        for s in streams:
            s.close()
        running.close()


def test_a_grounded_reply_streams_its_boxes(served_model, pictures):
    from serving import data_url

    model = ScriptedModel(served_model, pieces(GROUNDED))
    with Served(model) as server:
        content = [{"type": "image_url", "image_url": {"url": data_url(pictures[1])}},
                   {"type": "text", "text": "Where is the red block?"}]
        body = {"messages": [{"role": "user", "content": content}]}
        reply = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60).json()
    assert reply["choices"][0]["message"]["content"] == GROUNDED
    (box,) = reply["boxes"]
    assert box["ref"] == "a red block" and box["box"] == [100, 200, 600, 900] and box["image"] == 1
    assert box["image_size"] == [300, 500] and box["pixels"] == [30, 100, 180, 450]


class SlowToOpen(ScriptedModel):
    """The vision encoder opens only when the test says so."""

    def __init__(self, model):
        super().__init__(model, ["ok"])
        self.may_open = threading.Event()

    @property
    def vision(self):
        assert self.may_open.wait(60)
        return self._model.vision


def test_health_is_ready_only_once_the_vision_encoder_is_open(served_model):
    model = SlowToOpen(served_model)
    with Served(model, wait_ready=False) as server:
        assert httpx.get(server.url + "/health").json() == {"status": "loading"}
        assert httpx.get(server.url + "/v1/models").status_code == 200
        model.may_open.set()
        server.worker.ready.wait(60)
        assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_cors_answers_only_the_given_origin(served_model):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    with Served(served_model, cors=["http://app.example"]) as server:
        chat = server.url + "/v1/chat/completions"
        allowed = httpx.options(chat, headers={"Origin": "http://app.example", **preflight})
        other = httpx.options(chat, headers={"Origin": "http://evil.example", **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://app.example"
    assert "access-control-allow-origin" not in other.headers
