"""The OpenAI API through the official `openai` client: completions and chat, streamed and
not, n>1, logprobs, stop strings, seeds, and streamed deltas == the non-streamed text."""
import math

import pytest
import requests

from e2e_util import post

PROMPT = "The capital of France is"
CHAT = [{"role": "user", "content": "Name three colors."}]


def test_models(server, client, model_name):
    models = client.models.list()
    assert [m.id for m in models.data] == [model_name]
    assert requests.get(f"{server.url}/v1/models/{model_name}").status_code == 200
    assert requests.get(f"{server.url}/v1/models/nope").status_code == 404


def test_completion(client, model_name):
    r = client.completions.create(model=model_name, prompt=PROMPT, max_tokens=8, temperature=0)
    assert r.object == "text_completion"
    assert len(r.choices) == 1
    assert r.choices[0].text.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0
    assert 0 < r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_completion_token_ids_prompt(server, client, model_name):
    ids = post(server, "/tokenize", {"prompt": PROMPT}).json()["tokens"]
    by_ids = client.completions.create(model=model_name, prompt=ids, max_tokens=6, temperature=0)
    by_text = client.completions.create(model=model_name, prompt=PROMPT, max_tokens=6,
                                        temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert by_ids.usage.prompt_tokens == len(ids)


def test_chat(client, model_name):
    r = client.chat.completions.create(model=model_name, messages=CHAT, max_tokens=12,
                                       temperature=0)
    assert r.object == "chat.completion"
    msg = r.choices[0].message
    assert msg.role == "assistant"
    assert msg.content
    assert r.usage.completion_tokens <= 12


@pytest.mark.parametrize("kind", ["completion", "chat"])
def test_stream_equals_non_stream_greedy(client, model_name, kind):
    if kind == "completion":
        kw = dict(model=model_name, prompt=PROMPT, max_tokens=24, temperature=0)
        whole = client.completions.create(**kw).choices[0].text
        parts = [c.choices[0].text for c in client.completions.create(stream=True, **kw)
                 if c.choices]
    else:
        kw = dict(model=model_name, messages=CHAT, max_tokens=24, temperature=0)
        whole = client.chat.completions.create(**kw).choices[0].message.content
        parts = [c.choices[0].delta.content or ""
                 for c in client.chat.completions.create(stream=True, **kw) if c.choices]
    assert len(parts) > 2  # really streamed, not one blob
    assert "".join(parts) == whole


def test_stream_usage_chunk(client, model_name):
    chunks = list(client.chat.completions.create(
        model=model_name, messages=CHAT, max_tokens=5, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    last = chunks[-1]
    assert last.choices == []
    assert 1 <= last.usage.completion_tokens <= 5
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    finishes = [c.choices[0].finish_reason for c in chunks[:-1] if c.choices]
    assert finishes[-1] in ("stop", "length")


def test_n_choices(client, model_name):
    r = client.completions.create(model=model_name, prompt=PROMPT, max_tokens=6, n=3,
                                  temperature=1.0, seed=7)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    assert all(c.text for c in r.choices)
    assert 3 <= r.usage.completion_tokens <= 18  # summed over the choices
    chat = client.chat.completions.create(model=model_name, messages=CHAT, max_tokens=6, n=2,
                                          temperature=1.0, seed=7)
    assert sorted(c.index for c in chat.choices) == [0, 1]


def test_n_choices_streamed(client, model_name):
    texts = {}
    for c in client.completions.create(model=model_name, prompt=PROMPT, max_tokens=6, n=2,
                                       temperature=0.9, seed=3, stream=True):
        for ch in c.choices:
            texts[ch.index] = texts.get(ch.index, "") + ch.text
    assert set(texts) == {0, 1}


def test_completion_logprobs(client, model_name):
    r = client.completions.create(model=model_name, prompt=PROMPT, max_tokens=5, temperature=0,
                                  logprobs=3)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == r.usage.completion_tokens
    assert "".join(lp.tokens) == r.choices[0].text  # ASCII continuation: tokens spell it
    assert lp.text_offset[0] == 0
    for chosen, top in zip(lp.token_logprobs, lp.top_logprobs):
        assert chosen <= 0.0 and math.isfinite(chosen)
        assert 1 <= len(top) <= 4
        # Greedy picks the most likely token: no alternative beats it.
        assert chosen >= max(top.values()) - 1e-4


def test_chat_logprobs(client, model_name):
    r = client.chat.completions.create(model=model_name, messages=CHAT, max_tokens=4,
                                       temperature=0, logprobs=True, top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for item in content:
        assert item.logprob <= 0.0
        assert len(item.top_logprobs) == 2
        assert item.bytes is not None
        assert item.logprob >= item.top_logprobs[0].logprob - 1e-4


def test_stop_string(client, model_name):
    base = client.completions.create(model=model_name, prompt=PROMPT, max_tokens=24,
                                     temperature=0).choices[0].text
    assert len(base) > 8
    stop = base[4:7]
    r = client.completions.create(model=model_name, prompt=PROMPT, max_tokens=24, temperature=0,
                                  stop=[stop])
    assert r.choices[0].text == base[:base.index(stop)]
    assert r.choices[0].finish_reason == "stop"
    # Streamed: the stop text is never emitted either.
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=model_name, prompt=PROMPT, max_tokens=24, temperature=0, stop=[stop], stream=True)
        if c.choices)
    assert streamed == base[:base.index(stop)]


def test_seed_reproducible(client, model_name):
    kw = dict(model=model_name, prompt="Once upon a time", max_tokens=16, temperature=1.0,
              top_p=0.95)
    a = client.completions.create(seed=1234, **kw).choices[0].text
    b = client.completions.create(seed=1234, **kw).choices[0].text
    assert a == b
    others = {client.completions.create(seed=s, **kw).choices[0].text for s in (1, 2, 3)}
    assert len(others | {a}) > 1  # the seed matters


def test_sampling_params_accepted(client, model_name):
    r = client.completions.create(
        model=model_name, prompt=PROMPT, max_tokens=4, temperature=0.7, top_p=0.9,
        presence_penalty=0.5, frequency_penalty=0.5, seed=5,
        extra_body={"top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1, "priority": 3,
                    "ignore_eos": True})
    assert r.usage.completion_tokens == 4  # ignore_eos: exactly max_tokens


def test_tokenize_detokenize_roundtrip(server):
    text = "Hello, world! Ünïcödé 🚀"
    t = post(server, "/tokenize", {"prompt": text, "add_special_tokens": False}).json()
    assert t["count"] == len(t["tokens"]) > 0
    d = post(server, "/detokenize", {"tokens": t["tokens"]}).json()
    assert d["prompt"] == text
    chat = post(server, "/tokenize", {"messages": CHAT}).json()
    assert chat["count"] > t["count"] // 2
