"""VLLMOpenAI (completions) against the in-memory vLLM double."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest
from langchain_core.load import dumpd, load
from langchain_core.runnables import RunnableConfig, RunnableLambda

from langchain_vllm import VLLMOpenAI
from langchain_vllm.errors import (
    VLLMIncompleteStreamError,
    VLLMModelNotFoundError,
)
from langchain_vllm.params import VLLMCompletionParams
from tests.unit_tests.fake_vllm import FakeVLLM, completion_chunks


def make(fake: FakeVLLM, **kwargs: Any) -> VLLMOpenAI:
    return VLLMOpenAI(**{**fake.kwargs(), **kwargs})


def test_uses_the_shared_declaration() -> None:
    assert issubclass(VLLMOpenAI, VLLMCompletionParams)
    for name in VLLMCompletionParams.model_fields:
        assert VLLMOpenAI.model_fields[name] is not None


def test_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-real")
    monkeypatch.setenv("OPENAI_API_BASE", "https://api.openai.com/v1")
    llm = VLLMOpenAI()
    assert llm.openai_api_base == "http://localhost:8000/v1"
    assert llm.openai_api_key is not None
    assert llm.openai_api_key.get_secret_value() == "EMPTY"
    assert llm.model_name is None
    monkeypatch.setenv("VLLM_API_BASE", "http://gpu:9000/v1")
    monkeypatch.setenv("VLLM_API_KEY", "vllm-secret")
    llm = VLLMOpenAI()
    assert llm.openai_api_base == "http://gpu:9000/v1"
    assert llm.openai_api_key is not None
    assert llm.openai_api_key.get_secret_value() == "vllm-secret"
    assert "vllm-secret" not in repr(llm)


def test_community_constructor_args(fake: FakeVLLM) -> None:
    """The arguments of langchain_community.llms.VLLMOpenAI work unchanged."""
    llm = VLLMOpenAI(
        openai_api_key="EMPTY",
        openai_api_base="http://vllm.test:8000/v1",
        model_name="smollm2",
        max_tokens=7,
        temperature=0.2,
        top_p=0.9,
        n=1,
        best_of=2,
        frequency_penalty=0.1,
        presence_penalty=0.3,
        batch_size=5,
        request_timeout=30,
        max_retries=0,
        logit_bias={"42": 1.0},
        model_kwargs={"stop": ["."]},
        default_headers={"x-team": "a"},
        http_client=fake.sync_client(),
    )
    assert llm.invoke("Hello") == " Paris."
    body = fake.last_body("/completions")
    assert body["model"] == "smollm2"
    assert body["prompt"] == ["Hello"]
    assert body["max_tokens"] == 7
    assert "max_completion_tokens" not in body
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["best_of"] == 2
    assert body["frequency_penalty"] == 0.1
    assert body["presence_penalty"] == 0.3
    assert body["logit_bias"] == {"42": 1.0}
    assert body["stop"] == ["."]
    assert fake.requests[-1].headers["x-team"] == "a"


def test_community_streaming_flag(fake: FakeVLLM) -> None:
    llm = make(fake, model_name="smollm2", streaming=True)
    assert llm.invoke("Hi") == " Paris."
    assert fake.last_body("/completions")["stream"] is True


def test_discovers_model_once(fake: FakeVLLM) -> None:
    fake.models = ["served-llm"]
    llm = make(fake)
    result = llm.generate(["a"])
    llm.invoke("b")
    assert fake.paths() == [
        "GET /v1/models",
        "POST /v1/completions",
        "POST /v1/completions",
    ]
    assert fake.last_body("/completions")["model"] == "served-llm"
    assert result.llm_output is not None
    assert result.llm_output["model_name"] == "served-llm"
    assert result.llm_output["token_usage"]["total_tokens"] == 8


def test_vllm_params_instance_per_call_and_extra_body(fake: FakeVLLM) -> None:
    llm = make(
        fake,
        model="m",
        top_k=5,
        min_tokens=2,
        return_tokens_as_token_ids=True,
        extra_body={"custom": 1, "top_k": 6},
    )
    llm.invoke("x")
    body = fake.last_body("/completions")
    assert body["top_k"] == 6  # the user's extra_body wins over the field
    assert body["min_tokens"] == 2
    assert body["return_tokens_as_token_ids"] is True
    assert body["custom"] == 1
    llm.invoke(
        "x",
        bad_words=["Paris"],
        stop_token_ids=[2],
        structured_outputs={"choice": ["yes", "no"]},
        extra_body={"other": True},
    )
    body = fake.last_body("/completions")
    assert body["bad_words"] == ["Paris"]
    assert body["stop_token_ids"] == [2]
    assert body["structured_outputs"] == {"choice": ["yes", "no"]}
    assert body["other"] is True
    assert body["custom"] == 1  # merged, not replaced
    assert body["min_tokens"] == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"top_k": -3},
        {"min_p": 2.0},
        {"allowed_token_ids": []},
        {"bad_words": [""]},
        {"structured_outputs": {"choice": ["a"], "regex": "a"}},
    ],
)
def test_invalid_per_call_params_before_network(
    fake: FakeVLLM, bad: dict[str, Any]
) -> None:
    name = next(iter(bad))
    with pytest.raises(ValueError, match=f"`{name}`"):
        make(fake, model="m").invoke("x", **bad)
    with pytest.raises(ValueError, match=f"`{name}`"):
        list(make(fake, model="m").stream("x", **bad))
    assert fake.requests == []


def test_invalid_field() -> None:
    with pytest.raises(ValueError, match="repetition_penalty"):
        VLLMOpenAI(repetition_penalty=0)


def test_echo_and_prompt_logprobs(fake: FakeVLLM) -> None:
    def answer(body: dict) -> dict:
        return {
            "id": "c",
            "object": "text_completion",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "text": body["prompt"][0] + " Paris.",
                    "finish_reason": "stop",
                    "stop_reason": 13,
                    "logprobs": None,
                    "prompt_logprobs": [None, {"5": {"logprob": -1.0}}],
                }
            ],
            "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
        }

    fake.completion_response = answer  # type: ignore[attr-defined]
    llm = make(fake, model="m", echo=True)
    result = llm.generate(["Capital:"], prompt_logprobs=1)
    body = fake.last_body("/completions")
    assert body["echo"] is True
    assert body["prompt_logprobs"] == 1
    generation = result.generations[0][0]
    assert generation.text == "Capital: Paris."
    assert generation.generation_info is not None
    assert generation.generation_info["stop_reason"] == 13
    assert generation.generation_info["prompt_logprobs"][1] == {"5": {"logprob": -1.0}}


def test_max_tokens_minus_one_means_up_to_context(fake: FakeVLLM) -> None:
    make(fake, model="m", max_tokens=-1).batch(["a", "b"])
    assert fake.last_body("/completions")["max_tokens"] is None
    make(fake, model="m", max_tokens=None).invoke("a")
    assert fake.last_body("/completions")["max_tokens"] is None


def test_stream(fake: FakeVLLM) -> None:
    fake.completion_stream = completion_chunks(["Par", "is", "."])  # type: ignore[attr-defined]
    chunks = list(make(fake, model="m").stream("The capital", min_tokens=3))
    assert "".join(chunks) == "Paris."
    body = fake.last_body("/completions")
    assert body["stream"] is True
    assert body["min_tokens"] == 3
    assert body["prompt"] == "The capital"


def test_stream_cut_off_raises(fake: FakeVLLM) -> None:
    fake.completion_stream = completion_chunks(["Par"], finish=False)  # type: ignore[attr-defined]
    fake.stream_done = False
    with pytest.raises(VLLMIncompleteStreamError, match="/v1/completions"):
        list(make(fake, model="m").stream("x"))


async def test_async_stream_cut_off_raises(fake: FakeVLLM) -> None:
    fake.completion_stream = completion_chunks(["Par"], finish=False)  # type: ignore[attr-defined]
    with pytest.raises(VLLMIncompleteStreamError):
        async for _ in make(fake, model="m").astream("x"):
            pass


def test_batch_uses_batch_size(fake: FakeVLLM) -> None:
    llm = make(fake, model="m", batch_size=2)
    result = llm.generate(["a", "b", "c"])
    assert [b["prompt"] for b in fake.bodies("/completions")] == [["a", "b"], ["c"]]
    assert [g[0].text for g in result.generations] == [" Paris."] * 3


async def test_async_invoke_stream_batch(fake: FakeVLLM) -> None:
    fake.models = ["served-llm"]
    llm = make(fake, top_k=1)
    assert await llm.ainvoke("a", min_tokens=1) == " Paris."
    assert "".join([c async for c in llm.astream("b")]) == " Paris."
    assert await llm.abatch(["c", "d"]) == [" Paris.", " Paris."]
    bodies = fake.bodies("/completions")
    assert all(b["model"] == "served-llm" for b in bodies)
    assert all(b["top_k"] == 1 for b in bodies)
    assert bodies[0]["min_tokens"] == 1
    assert fake.paths().count("GET /v1/models") == 1


# -- sessions -------------------------------------------------------------------------
def _session(fake: FakeVLLM) -> tuple[str | None, str | None]:
    return fake.last_session("/completions")


def test_session_id_goes_as_body_field_and_header(fake: FakeVLLM) -> None:
    make(fake, model="m", session_id="s-1").invoke("hi")
    assert _session(fake) == ("s-1", "s-1")
    make(fake, model="m").invoke("hi", session_id="s-2")
    assert _session(fake) == ("s-2", "s-2")
    make(fake, model="m", session_id="s-1").invoke("hi", session_id="s-2")
    assert _session(fake) == ("s-2", "s-2")  # the call's wins
    list(make(fake, model="m").stream("hi", session_id="s-3"))
    assert _session(fake) == ("s-3", "s-3")
    make(fake, model="m", streaming=True, session_id="s-4").invoke("hi")
    assert _session(fake) == ("s-4", "s-4")
    make(fake, model="m").bind(session_id="s-5").invoke("hi")
    assert _session(fake) == ("s-5", "s-5")
    make(fake, model="m").invoke("hi")
    assert _session(fake) == (None, None)


async def test_async_session_id_goes_as_body_field_and_header(fake: FakeVLLM) -> None:
    await make(fake, model="m", session_id="s-1").ainvoke("hi")
    assert _session(fake) == ("s-1", "s-1")
    [c async for c in make(fake, model="m").astream("hi", session_id="s-2")]
    assert _session(fake) == ("s-2", "s-2")
    await make(fake, model="m").ainvoke("hi")
    assert _session(fake) == (None, None)


def test_a_session_header_the_caller_set_wins(fake: FakeVLLM) -> None:
    make(fake, model="m").invoke(
        "hi", session_id="s-1", extra_headers={"x-session-id": "mine"}
    )
    assert _session(fake) == ("s-1", "mine")
    # the instance's headers (model_kwargs) are kept, not replaced by the session's
    headers = {"X-Session-Id": "mine", "X-Gateway": "g"}
    make(fake, model="m", model_kwargs={"extra_headers": headers}).invoke(
        "hi", session_id="s-1"
    )
    assert _session(fake) == ("s-1", "mine")
    assert fake.requests[-1].headers["x-gateway"] == "g"


async def test_session_from_the_running_thread(fake: FakeVLLM) -> None:
    llm = make(fake, model="m", session_from_thread=True)
    chain = RunnableLambda(lambda text: text) | llm
    config: RunnableConfig = {"configurable": {"thread_id": "thread-7"}}
    chain.invoke("hi", config=config)
    assert _session(fake) == ("thread-7", "thread-7")
    await chain.ainvoke("hi", config={"configurable": {"thread_id": "thread-8"}})
    assert _session(fake) == ("thread-8", "thread-8")
    [c async for c in chain.astream("hi", config=config)]
    assert _session(fake) == ("thread-7", "thread-7")
    # an explicit session wins over the thread; no thread, no session
    explicit = RunnableLambda(lambda text: text) | llm.bind(session_id="explicit")
    explicit.invoke("hi", config=config)
    assert _session(fake) == ("explicit", "explicit")
    llm.invoke("hi")
    assert _session(fake) == (None, None)
    # off by default
    (RunnableLambda(lambda text: text) | make(fake, model="m")).invoke(
        "hi", config=config
    )
    assert _session(fake) == (None, None)


def test_async_client_per_event_loop(fake: FakeVLLM) -> None:
    llm = VLLMOpenAI(base_url="http://vllm.test:8000/v1", model="m")
    used: list[Any] = []
    real = llm._link.async_client
    transport = httpx2.MockTransport(fake.handler)

    def spy() -> Any:
        client = real()
        used.append(client)
        return client.copy(http_client=httpx2.AsyncClient(transport=transport))

    llm._link.async_client = spy  # type: ignore[method-assign]
    for _ in range(2):
        assert asyncio.run(llm.ainvoke("hi")) == " Paris."
    assert len(used) == 2
    assert used[0] is not used[1]


def test_token_counts_from_server_not_tiktoken(
    fake: FakeVLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tiktoken

    def no_tiktoken(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tiktoken must not be used")

    monkeypatch.setattr(tiktoken, "encoding_for_model", no_tiktoken)
    monkeypatch.setattr(tiktoken, "get_encoding", no_tiktoken)
    fake.tokens = lambda body: [1] * len(body["prompt"].split())
    llm = make(fake)
    assert llm.get_num_tokens("one two three") == 3
    body = fake.last_body("/tokenize")
    assert body == {
        "model": "smollm2",
        "prompt": "one two three",
        "add_special_tokens": False,
    }
    assert llm.max_context_size == 2048


def test_errors_translated(fake: FakeVLLM) -> None:
    fake.status = 404
    fake.error_body = {
        "error": {"message": "The model `nope` does not exist.", "code": 404}
    }
    with pytest.raises(VLLMModelNotFoundError, match="Served models: smollm2"):
        make(fake, model="nope").invoke("x")
    with pytest.raises(VLLMModelNotFoundError):
        list(make(fake, model="nope").stream("x"))


async def test_async_errors_translated(fake: FakeVLLM) -> None:
    fake.status = 404
    fake.error_body = {
        "error": {"message": "The model `nope` does not exist.", "code": 404}
    }
    with pytest.raises(VLLMModelNotFoundError):
        await make(fake, model="nope").ainvoke("x")


def test_langchain_details(fake: FakeVLLM) -> None:
    llm = make(fake, model="m")
    assert llm._llm_type == "vllm-openai"
    assert VLLMOpenAI.get_lc_namespace() == ["langchain_vllm", "llms"]
    params = llm._get_ls_params()
    assert params["ls_provider"] == "vllm"
    assert params["ls_model_name"] == "m"
    assert make(fake)._get_ls_params()["ls_model_name"] == "vllm-served-model"
    assert fake.requests == []


def test_serialization_keeps_key_secret_under_vllm_name() -> None:
    llm = VLLMOpenAI(model="m", api_key="vllm-secret", top_k=3)
    data = dumpd(llm)
    assert data["id"] == ["langchain_vllm", "llms", "VLLMOpenAI"]
    assert data["kwargs"]["openai_api_key"] == {
        "lc": 1,
        "type": "secret",
        "id": ["VLLM_API_KEY"],
    }
    assert "vllm-secret" not in str(data)
    loaded = load(
        data,
        allowed_objects=[VLLMOpenAI],
        valid_namespaces=["langchain_vllm"],
        secrets_map={"VLLM_API_KEY": "from-map"},
    )
    assert isinstance(loaded, VLLMOpenAI)
    assert loaded.top_k == 3
    assert loaded.openai_api_key is not None
    assert loaded.openai_api_key.get_secret_value() == "from-map"
