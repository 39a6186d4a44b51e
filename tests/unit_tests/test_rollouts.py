"""Agent rollouts: `record_trajectories()` records every model call's exact tokens
and every tool result, and the loader turns them into training turns (no network)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

from langchain_vllm import ChatVLLM, VLLMOpenAI
from langchain_vllm._trajectory import ask_for_completion_tokens
from langchain_vllm.errors import VLLMBadRequestError, VLLMResponseError
from langchain_vllm.rollouts import (
    TrainingTurn,
    TrajectoryRecorder,
    load_trajectories,
    record_trajectories,
    training_turns,
)
from tests.unit_tests.fake_vllm import (
    FakeVLLM,
    chat_completion,
    completion_body,
    stream_chunks,
    tool_call,
)


def get_weather(city: str) -> str:
    """Weather in a city."""
    return f"Sunny in {city}"


def _chat(fake: FakeVLLM, **kwargs: Any) -> ChatVLLM:
    fake.return_tokens = True
    return ChatVLLM(**fake.kwargs(), model="smollm2", **kwargs)


def _thread(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _meta(thread_id: str) -> RunnableConfig:
    """The config of a model invoked directly: its thread as metadata."""
    return {"metadata": {"thread_id": thread_id}}


def _step(chat: ChatVLLM) -> Any:
    """The model as a chain's step (the step's config names the thread)."""
    return RunnableLambda(lambda text: text) | chat


def _answers(*answers: dict[str, Any]) -> Any:
    """A chat_response that answers each request with the next answer."""
    queue = list(answers)
    return lambda body: queue.pop(0)


def test_requests_ask_for_tokens_only_inside_the_block(fake: FakeVLLM) -> None:
    chat = _chat(fake)
    chat.invoke("Hi")
    assert "logprobs" not in fake.last_body()
    assert "return_token_ids" not in fake.last_body()
    with record_trajectories():
        chat.invoke("Hi")
        inside = fake.last_body()
    chat.invoke("Hi")
    assert inside["logprobs"] is True
    assert inside["return_token_ids"] is True
    assert "return_token_ids" not in fake.last_body()


def test_completion_requests_ask_for_tokens_inside_the_block() -> None:
    """The helper VLLMOpenAI's request building calls (`_call_kwargs`)."""
    params: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    ask_for_completion_tokens(params, extra)
    assert params == extra == {}
    with record_trajectories():
        ask_for_completion_tokens(params, extra)
        kept: dict[str, Any] = {"logprobs": 5}
        ask_for_completion_tokens(kept, {})
    assert params == {"logprobs": 0}
    assert extra == {"return_token_ids": True}
    assert kept == {"logprobs": 5}


def test_a_call_without_callbacks_is_recorded(fake: FakeVLLM) -> None:
    chat = _chat(fake)
    with record_trajectories() as recorder:
        message = chat.invoke("Hi")
    chat.invoke("Not recorded")
    [record] = recorder.records
    assert record["type"] == "llm_call"
    assert record["run_id"] == record["root_run_id"]
    assert record["run_id"] in str(message.id)  # lc_run--<run id>-0
    assert record["parent_run_id"] is None
    assert record["thread_id"] is None
    assert record["session_id"] is None
    assert record["model"] == "smollm2"
    assert record["llm_type"] == "vllm-chat"
    assert record["messages"] == [{"role": "user", "content": "Hi"}]
    assert record["tools"] is None
    assert record["prompt_token_ids"] == list(range(1, 11))
    assert record["completion_token_ids"] == [1001, 1002, 1003]
    assert record["logprobs"] == [-0.5, -1.0, -1.5]
    assert record["finish_reason"] == "stop"
    assert record["usage"]["output_tokens"] == 3
    assert record["output"]["content"] == "Hello!"
    assert record["started_at"] <= record["ended_at"]
    assert record["error"] is None
    assert record["problems"] == []


def test_reasoning_and_session_are_recorded(fake: FakeVLLM) -> None:
    chat = _chat(fake, session_from_thread=True)
    fake.chat_response = chat_completion("4", reasoning="2 + 2")
    with record_trajectories() as recorder:
        _step(chat).invoke("2+2?", config=_thread("t"))
    [record] = recorder.records
    assert record["output"]["reasoning"] == "2 + 2"
    assert record["thread_id"] == record["session_id"] == "t"
    assert record["parent_run_id"] == record["root_run_id"] != record["run_id"]


def test_a_calls_session_is_recorded(fake: FakeVLLM) -> None:
    with record_trajectories() as recorder:
        _chat(fake).invoke("Hi", session_id="s-1")
    assert recorder.records[0]["session_id"] == "s-1"


def test_a_graph_node_call_is_in_the_graphs_thread(fake: FakeVLLM) -> None:
    from langgraph.graph import START, MessagesState, StateGraph

    chat = _chat(fake)

    def model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [chat.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", model)
    graph.add_edge(START, "model")
    start = MessagesState(messages=[HumanMessage("Hi")])
    with record_trajectories() as recorder:
        graph.compile().invoke(start, _thread("g-1"))
    [record] = recorder.trajectories()["g-1"]
    assert record["parent_run_id"] != record["root_run_id"]


def _stream_with_tokens() -> list[dict[str, Any]]:
    """A stream as vLLM 0.32 sends it with return_token_ids and logprobs."""
    chunks = stream_chunks(["Hel", "lo!"])
    chunks[0]["prompt_token_ids"] = [1, 2, 3]
    for i, chunk in enumerate(chunks[1:3]):
        entry = {"token": "t", "logprob": -0.5 * (i + 1), "bytes": [116]}
        chunk["choices"][0]["token_ids"] = [1001 + i]
        chunk["choices"][0]["logprobs"] = {"content": [{**entry, "top_logprobs": []}]}
    return chunks


def test_a_streamed_call_is_recorded(fake: FakeVLLM) -> None:
    fake.stream = _stream_with_tokens()
    with record_trajectories() as recorder:
        for _ in _chat(fake).stream("Hi"):
            pass
    [record] = recorder.records
    assert record["output"]["content"] == "Hello!"
    assert record["prompt_token_ids"] == [1, 2, 3]
    assert record["logprobs"] == [-0.5, -1.0]
    assert record["completion_token_ids"] == [1001, 1002]


def test_an_agent_run_records_calls_and_tool_results(fake: FakeVLLM) -> None:
    from langchain.agents import create_agent

    call = tool_call("get_weather", {"city": "Paris"}, call_id="call-7")
    fake.chat_response = _answers(
        chat_completion(None, tool_calls=[call], finish_reason="tool_calls"),
        chat_completion("Sunny in Paris."),
    )
    agent = create_agent(_chat(fake), tools=[get_weather])
    with record_trajectories() as recorder:
        agent.invoke({"messages": [HumanMessage("Weather in Paris?")]}, _thread("t-1"))
    [trajectory] = recorder.trajectories().values()
    assert recorder.trajectories().keys() == {"t-1"}
    assert [r["type"] for r in trajectory] == ["llm_call", "tool_result", "llm_call"]
    first, result, second = trajectory
    assert len({r["root_run_id"] for r in trajectory}) == 1
    assert first["root_run_id"] not in {r["run_id"] for r in trajectory}
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert first["output"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert first["finish_reason"] == "tool_calls"
    assert result["name"] == "get_weather"
    assert result["tool_call_id"] == "call-7"
    assert result["input"] == {"city": "Paris"}
    assert result["output"] == "Sunny in Paris"
    assert result["error"] is None
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call-7",
        "name": "get_weather",
        "content": "Sunny in Paris",
    }
    assert [len(t.input_ids) for t in training_turns(trajectory)] == [13, 13]


def test_a_failing_tool_is_recorded(fake: FakeVLLM) -> None:
    from langchain_core.tools import tool

    @tool
    def broken(city: str) -> str:
        """Always fails."""
        raise RuntimeError("no weather today")

    with record_trajectories() as recorder, pytest.raises(RuntimeError):
        broken.invoke({"city": "Paris"})
    [record] = recorder.records
    assert record["type"] == "tool_result"
    assert record["name"] == "broken"
    assert record["error"] == "RuntimeError: no weather today"


def test_jsonl_is_written_and_read_back(fake: FakeVLLM, tmp_path: Path) -> None:
    path = tmp_path / "rollouts.jsonl"
    chat = _chat(fake)
    with record_trajectories(path) as recorder:
        chat.invoke("Hi", config=_meta("a"))
        chat.invoke("Hi again", config=_meta("b"))
        chat.invoke("Hi", config=_meta("a"))
    assert len(path.read_text().splitlines()) == 3
    loaded = load_trajectories(path)
    assert loaded == json.loads(json.dumps(recorder.trajectories(), default=str))
    assert [len(calls) for calls in loaded.values()] == [2, 1]
    with record_trajectories(path):  # appends
        chat.invoke("Hi", config=_meta("c"))
    assert list(load_trajectories(path)) == ["a", "b", "c"]


def test_training_turns() -> None:
    call = {
        "type": "llm_call",
        "run_id": "run-1",
        "prompt_token_ids": [1, 2, 3],
        "completion_token_ids": [7, 8],
        "logprobs": [-0.25, -0.5],
        "problems": [],
        "error": None,
    }
    tool = {"type": "tool_result", "run_id": "run-2"}
    assert training_turns([call, tool]) == [
        TrainingTurn(
            input_ids=[1, 2, 3, 7, 8],
            response_mask=[0, 0, 0, 1, 1],
            logprobs=[0.0, 0.0, 0.0, -0.25, -0.5],
            run_id="run-1",
        )
    ]
    with pytest.raises(ValueError, match=r"run-1 .*no logprobs"):
        training_turns([{**call, "logprobs": None}])
    with pytest.raises(ValueError, match=r"run-1 .*1 logprobs for 2 completion"):
        training_turns([{**call, "logprobs": [-0.1]}])
    with pytest.raises(ValueError, match=r"run-1 .*failed: boom"):
        training_turns([{**call, "error": "boom"}])


def test_calls_outside_the_token_request_are_refused(fake: FakeVLLM) -> None:
    chat = ChatVLLM(**fake.kwargs(), model="smollm2")  # the fake sends no ids
    with record_trajectories() as recorder:
        chat.invoke("Hi")
    [record] = recorder.records
    assert record["completion_token_ids"] is None
    with pytest.raises(ValueError, match=f"{record['run_id']}.*no prompt_token_ids"):
        training_turns(recorder.records)


def test_a_logprob_count_mismatch_is_a_problem(fake: FakeVLLM) -> None:
    answer = chat_completion("Hi", usage=(2, 4))
    answer["choices"][0]["logprobs"] = {
        "content": [{"token": "H", "logprob": -0.1, "bytes": [72], "top_logprobs": []}]
        * 3
    }
    fake.chat_response = answer
    # ChatVLLM refuses the answer; the recorder keeps the failed call
    with (
        record_trajectories() as recorder,
        pytest.raises(VLLMResponseError, match="3 logprobs for 4 completion token"),
    ):
        _chat(fake).invoke("Hi")
    [record] = recorder.records
    assert "3 logprobs for 4 completion token ids" in record["error"]
    with pytest.raises(ValueError, match="3 logprobs for 4 completion token"):
        training_turns(recorder.records)
    # a record made elsewhere (another client) is checked by the loader itself
    good = {**record, "error": None, "completion_token_ids": [1, 2, 3, 4]}
    good |= {"prompt_token_ids": [5], "logprobs": [-0.1] * 3}
    with pytest.raises(ValueError, match="3 logprobs for 4 completion tokens"):
        training_turns([good])


def test_a_failed_call_is_recorded(fake: FakeVLLM) -> None:
    chat = _chat(fake)
    fake.status = 400
    with record_trajectories() as recorder, pytest.raises(VLLMBadRequestError):
        chat.invoke("Hi")
    [record] = recorder.records
    assert record["error"]
    assert record["completion_token_ids"] is None
    assert record["messages"] == [{"role": "user", "content": "Hi"}]


async def test_concurrent_async_runs_land_in_their_own_trajectory(
    fake: FakeVLLM,
) -> None:
    def echo(body: dict[str, Any]) -> dict[str, Any]:
        return chat_completion(f"echo {body['messages'][-1]['content']}")

    fake.chat_response = echo
    chat = _chat(fake)
    with record_trajectories() as recorder:
        await asyncio.gather(
            *(_step(chat).ainvoke(f"q{i}", config=_thread(f"t{i}")) for i in range(8))
        )
    trajectories = recorder.trajectories()
    assert sorted(trajectories) == [f"t{i}" for i in range(8)]
    for thread, [record] in trajectories.items():
        question = f"q{thread[1:]}"
        assert record["messages"] == [{"role": "user", "content": question}]
        assert record["output"]["content"] == f"echo {question}"
        assert record["completion_token_ids"] == [1001, 1002, 1003]


def test_batch_threads_are_recorded(fake: FakeVLLM) -> None:
    chat = _chat(fake)
    with record_trajectories() as recorder:
        chat.batch(["a", "b", "c"], config=[_meta(t) for t in "abc"])
    assert sorted(recorder.trajectories()) == ["a", "b", "c"]


def test_the_recorder_as_an_explicit_callback(fake: FakeVLLM) -> None:
    recorder = TrajectoryRecorder()
    _chat(fake).invoke("Hi", config={"callbacks": [recorder]})
    [record] = recorder.records
    assert record["logprobs"] is None  # only record_trajectories() asks for them


def test_completion_calls_are_recorded(fake: FakeVLLM) -> None:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        out = completion_body(body)
        out["choices"][0]["token_ids"] = [5, 6, 7]
        out["choices"][0]["logprobs"] = {
            "tokens": [" Par", "is", "."],
            "token_logprobs": [-0.1, -0.2, -0.3],
            "top_logprobs": None,
            "text_offset": [0, 4, 6],
        }
        return out

    fake.completion_response = answer  # type: ignore[attr-defined]
    llm = VLLMOpenAI(**fake.kwargs(), model_name="smollm2")
    with record_trajectories() as recorder:
        llm.invoke("The capital of France is", config=_meta("c"))
    [record] = recorder.trajectories()["c"]
    assert record["llm_type"] == "vllm-openai"
    assert record["model"] == "smollm2"
    assert record["prompt"] == "The capital of France is"
    assert record["output"] == " Paris."
    assert record["completion_token_ids"] == [5, 6, 7]
    assert record["logprobs"] == [-0.1, -0.2, -0.3]
    assert record["finish_reason"] == "length"
