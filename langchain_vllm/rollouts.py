"""Agent rollouts for training: every model call's exact tokens, as JSONL.

`record_trajectories()` makes every `ChatVLLM` and `VLLMOpenAI` call inside it ask
vLLM for token ids and logprobs, and records each call (and each tool result) of
every run, LangGraph graphs included, without a change to the agent's code.

Example:
    ```python
    # needs a running vLLM server
    from langchain.agents import create_agent

    from langchain_vllm import ChatVLLM
    from langchain_vllm.rollouts import record_trajectories, training_turns

    agent = create_agent(ChatVLLM(model="Qwen/Qwen3-0.6B"), tools=[get_weather])
    with record_trajectories("rollouts.jsonl") as recorder:
        agent.invoke(
            {"messages": [("user", "Weather in Paris?")]},
            {"configurable": {"thread_id": "episode-1"}},
        )
    turns = training_turns(recorder.trajectories()["episode-1"])
    ```
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.outputs import LLMResult
from langchain_core.tracers.context import register_configure_hook

from langchain_vllm._trajectory import (
    ANSWER_FIELDS,
    RECORDING,
    RecordingHandler,
    group_records,
    openai_messages,
    result_fields,
    session_of,
    text_of,
    turn_problems,
)

__all__ = [
    "TrainingTurn",
    "TrajectoryRecorder",
    "load_trajectories",
    "record_trajectories",
    "training_turns",
]


class TrajectoryRecorder(RecordingHandler):
    """Records every model call and tool result of the runs it is attached to.

    `record_trajectories()` attaches one to every run started inside it; it can also
    be passed as a callback (`config={"callbacks": [recorder]}`), but only under
    `record_trajectories()` do `ChatVLLM` requests ask for token ids and logprobs.
    Thread-safe, and called inline in async runs (`run_inline`).

    Each model call is one record (one JSONL line), written when the call ends:

    | field | value |
    | --- | --- |
    | `type` | `"llm_call"` |
    | `run_id`, `parent_run_id` | the call's run and its parent (str UUIDs) |
    | `root_run_id` | the outermost run of the call (the agent's run) |
    | `thread_id` | the run's thread (see below), or None |
    | `session_id` | the vLLM session the request was sent under, or None |
    | `model` | the served model name (a LoRA adapter's name for an adapter) |
    | `llm_type` | LangChain's `_llm_type` (`"vllm-chat"`, `"vllm-openai"`, ...) |
    | `messages` | chat calls: the request messages, OpenAI-style dicts |
    | `tools` | chat calls: the OpenAI tool dicts sent, or None |
    | `prompt` | completion calls: the prompt text |
    | `prompt_token_ids` | vLLM's ids of the prompt as the model saw it |
    | `completion_token_ids` | vLLM's ids of the answer |
    | `logprobs` | one float per completion token |
    | `finish_reason`, `usage` | as the server answered |
    | `output` | chat: the answer, OpenAI-style (`reasoning` too); else the text |
    | `started_at`, `ended_at` | `time.time()` floats |
    | `error` | the error of a failed call, or None |
    | `problems` | what unfits it for training: `"3 logprobs for 4 completion tokens"` |

    Each tool result is one record too: `type` `"tool_result"`, `run_id`,
    `parent_run_id`, `root_run_id`, `thread_id`, `name`, `tool_call_id`, `input`,
    `output` (the text), `error`, `started_at`, `ended_at`.

    The thread is the `thread_id` of the run's metadata (LangGraph puts its
    `configurable.thread_id` there), else of the config of the runnable the call
    runs in (a chain's step), else that of its parent run. A model invoked
    directly passes it as metadata: `config={"metadata": {"thread_id": "t-1"}}`.

    Records are kept in `records` and, with a `path`, appended to that JSONL file
    (one flushed line each; `close()` closes it).
    """

    # -- model calls -----------------------------------------------------------------
    def _call_fields(
        self,
        serialized: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        params = kwargs.get("invocation_params") or {}
        constructor = (serialized or {}).get("kwargs") or {}
        return {
            "type": "llm_call",
            "session_id": session_of(params, metadata or {}),
            "_session_from_thread": bool(constructor.get("session_from_thread")),
            "model": params.get("model") or params.get("model_name"),
            "llm_type": params.get("_type"),
        }

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a chat call's record: its request messages and tools."""
        fields = self._call_fields(serialized, metadata, kwargs)
        wire, problems = openai_messages(messages[0] if messages else [])
        tools = (kwargs.get("invocation_params") or {}).get("tools")
        fields.update(messages=wire, tools=tools or None, problems=problems)
        self._start(run_id, parent_run_id, metadata, fields)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a completion call's record: its prompt."""
        fields = self._call_fields(serialized, metadata, kwargs)
        fields.update(prompt=prompts[0] if prompts else None, problems=[])
        self._start(run_id, parent_run_id, metadata, fields)

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Close a model call's record with its tokens, logprobs and answer."""
        fields = result_fields(response)
        served = fields.pop("served_model", None)
        with self._lock:
            opened = self._open.get(run_id) or {}
            fields["problems"] = [*(opened.get("problems") or []), *fields["problems"]]
            if not opened.get("model") and served:
                fields["model"] = served
        self._finish(run_id, parent_run_id, {**fields, "error": None})

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Close a failed model call's record with its error."""
        fields: dict[str, Any] = dict.fromkeys(ANSWER_FIELDS)
        fields.update(type="llm_call", error=f"{type(error).__name__}: {error}")
        self._finish(run_id, parent_run_id, fields)

    # -- tools -----------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a tool result's record: the tool, its call id and input."""
        fields = {
            "type": "tool_result",
            "name": kwargs.get("name") or (serialized or {}).get("name"),
            "tool_call_id": kwargs.get("tool_call_id"),
            "input": inputs if inputs is not None else input_str,
        }
        self._start(run_id, parent_run_id, metadata, fields)

    def on_tool_end(
        self,
        output: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Close a tool result's record with the tool's output."""
        fields: dict[str, Any] = {"type": "tool_result", "error": None}
        if isinstance(output, ToolMessage):
            fields["output"] = str(output.text)
            with self._lock:
                opened = self._open.get(run_id) or {}
            if not opened.get("tool_call_id"):
                fields["tool_call_id"] = output.tool_call_id
        else:
            fields["output"] = text_of(output)
        self._finish(run_id, parent_run_id, fields)

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Close a failed tool's record with its error."""
        fields = {
            "type": "tool_result",
            "output": None,
            "error": f"{type(error).__name__}: {error}",
        }
        self._finish(run_id, parent_run_id, fields)


register_configure_hook(RECORDING, inheritable=True)


@contextmanager
def record_trajectories(
    path: str | Path | None = None,
) -> Iterator[TrajectoryRecorder]:
    """Record every model call and tool result of the runs started in the block.

    Inside the block, `ChatVLLM` requests ask vLLM for token ids and logprobs, and
    every run (sync, async, threads and tasks started in it) gets the recorder as
    an inheritable callback. The file is closed on exit; the recorder keeps the
    records in memory.

    Args:
        path: A JSONL file the records are appended to (one line per record).

    Yields:
        The `TrajectoryRecorder` (its `records` and `trajectories()`).
    """
    recorder = TrajectoryRecorder(path)
    token = RECORDING.set(recorder)
    try:
        yield recorder
    finally:
        RECORDING.reset(token)
        recorder.close()


def load_trajectories(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The records of a JSONL file, grouped like `TrajectoryRecorder.trajectories()`."""
    with Path(path).open(encoding="utf-8") as file:
        records = [json.loads(line) for line in file if line.strip()]
    return group_records(records)


@dataclass(frozen=True)
class TrainingTurn:
    """One model call as RL trainers take it: one sequence of tokens.

    `input_ids` are the prompt's ids then the completion's; `response_mask` is 0 on
    the prompt and 1 on the completion; `logprobs` are 0.0 on the prompt, then vLLM's
    logprob of each completion token (before temperature and top-p unless the
    server runs with `--logprobs-mode processed_logprobs`).
    """

    input_ids: list[int]
    response_mask: list[int]
    logprobs: list[float]
    run_id: str


def training_turns(calls: Sequence[dict[str, Any]]) -> list[TrainingTurn]:
    """The model calls of a trajectory as training turns (tool results are skipped).

    Args:
        calls: One trajectory's records (`trajectories()` or `load_trajectories()`).

    Raises:
        ValueError: A call lacks token ids or logprobs, failed, or has a recorded
            problem (named by its run id).
    """
    turns = []
    for call in calls:
        if call.get("type") != "llm_call":
            continue
        problems = list(turn_problems(call))
        if problems:
            msg = f"Model call {call.get('run_id')} is no training turn: " + "; ".join(
                problems
            )
            raise ValueError(msg)
        prompt, completion = call["prompt_token_ids"], call["completion_token_ids"]
        turns.append(
            TrainingTurn(
                input_ids=[*prompt, *completion],
                response_mask=[0] * len(prompt) + [1] * len(completion),
                logprobs=[0.0] * len(prompt) + [float(x) for x in call["logprobs"]],
                run_id=str(call.get("run_id")),
            )
        )
    return turns
