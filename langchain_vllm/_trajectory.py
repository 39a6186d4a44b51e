"""The machinery of `rollouts.TrajectoryRecorder`: the run tree, records, their checks.

`RecordingHandler` keeps the run tree (every run's root) and the open records, and
writes each record when its run ends; the functions make a model call's fields from
its events and say why a record cannot be a training turn.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from langchain_core.runnables.config import ensure_config

REASONING = "reasoning_content"
"""The `additional_kwargs` key of an answer's reasoning text (as `_chat_answer`)."""
ANSWER_FIELDS = (
    "prompt_token_ids",
    "completion_token_ids",
    "logprobs",
    "finish_reason",
    "usage",
    "output",
)
"""The fields of a call's record that come from its answer (None when it failed)."""


RECORDING: ContextVar[Any] = ContextVar("langchain_vllm_recording", default=None)
"""The active recorder of `record_trajectories()`, or None."""


def ask_for_tokens(payload: dict[str, Any], extra: dict[str, Any]) -> None:
    """Under `record_trajectories()`, ask a chat request for ids and logprobs.

    Sets `logprobs` (OpenAI's field, in `payload`) and vLLM's `return_token_ids`
    (in `extra`, the body's vLLM part) unless the call set them itself.
    """
    if RECORDING.get() is None:
        return
    payload.setdefault("logprobs", True)
    extra.setdefault("return_token_ids", True)


def ask_for_completion_tokens(params: dict[str, Any], extra: dict[str, Any]) -> None:
    """Under `record_trajectories()`, ask a completion request for ids and logprobs.

    Sets `logprobs=0` (OpenAI's completions field, in the request's `params`: each
    sampled token's logprob in `token_logprobs`, no alternatives) and vLLM's
    `return_token_ids` (in `extra`, the body's vLLM part) unless the call set them.
    """
    if RECORDING.get() is None:
        return
    if params.get("logprobs") is None:
        params["logprobs"] = 0
    extra.setdefault("return_token_ids", True)


def text_of(value: Any) -> str | None:
    """`value` as a string (None stays None)."""
    return None if value is None else str(value)


def session_of(params: dict[str, Any], metadata: dict[str, Any]) -> str | None:
    """The session a call names: its parameters', their `extra_body`'s, or metadata's.

    A session taken from the thread (`session_from_thread`) is added by the recorder.
    """
    body = params.get("extra_body") or {}
    session = (
        params.get("session_id") or body.get("session_id") or metadata.get("session_id")
    )
    return text_of(session)


def thread_of(metadata: dict[str, Any] | None) -> str | None:
    """A run's `thread_id` metadata, else that of the running runnable's config."""
    thread = (metadata or {}).get("thread_id")
    if thread is None:
        thread = ensure_config().get("configurable", {}).get("thread_id")
    return text_of(thread)


def openai_messages(messages: Sequence[BaseMessage]) -> tuple[list[dict], list[str]]:
    """Request messages as OpenAI-style dicts, and what could not be converted."""
    try:
        return list(convert_to_openai_messages(list(messages))), []
    except Exception as error:  # a record is better than none
        fallback = [{"role": m.type, "content": m.content} for m in messages]
        return fallback, [f"messages not converted ({type(error).__name__}: {error})"]


def chat_output(message: BaseMessage) -> dict[str, Any]:
    """An answer message as an OpenAI-style dict, its reasoning as `reasoning`."""
    try:
        out: dict[str, Any] = dict(convert_to_openai_messages(message))
    except Exception:  # a record is better than none
        out = {"role": "assistant", "content": message.content}
    reasoning = message.additional_kwargs.get(REASONING)
    if reasoning:
        out["reasoning"] = reasoning
    return out


def _ints(value: Any) -> list[int] | None:
    if not isinstance(value, list):
        return None
    return [int(v) for v in value]


def chat_logprobs(value: Any) -> list[float] | None:
    """One float per token from a chat answer's `logprobs` (`{"content": [...]}`)."""
    content = value.get("content") if isinstance(value, dict) else value
    if not isinstance(content, list):
        return None
    return [float(entry["logprob"]) for entry in content]


def completion_logprobs(value: Any) -> list[float] | None:
    """One float per token from a completion's logprobs (`token_logprobs`)."""
    if not isinstance(value, dict) or value.get("token_logprobs") is None:
        return None
    return [float(v) if v is not None else 0.0 for v in value["token_logprobs"]]


def result_fields(response: LLMResult) -> dict[str, Any]:
    """The answer part of a call's record, from the first generation of `response`.

    Token ids and logprobs are read where vLLM's answer fields land: the message's
    `response_metadata` (chat) or the generation's `generation_info` (completions).
    A mismatch between completion ids and logprobs goes to `problems`.
    """
    generations = response.generations[0] if response.generations else []
    if not generations:
        return {"problems": ["the call returned no generation"]}
    generation: Generation = generations[0]
    info = generation.generation_info or {}
    problems: list[str] = []
    if len(generations) > 1:
        problems.append(f"{len(generations)} generations: only the first recorded")
    if isinstance(generation, ChatGeneration):
        message = generation.message
        meta = {**info, **message.response_metadata}
        fields: dict[str, Any] = {
            "output": chat_output(message),
            "usage": dict(getattr(message, "usage_metadata", None) or {}) or None,
        }
        try:
            logprobs = chat_logprobs(meta.get("logprobs"))
        except (KeyError, TypeError, ValueError) as error:
            logprobs, problems = None, [*problems, f"unreadable logprobs: {error!r}"]
    else:
        meta = info
        usage = (response.llm_output or {}).get("token_usage")
        fields = {"output": generation.text, "usage": usage or None}
        try:
            logprobs = completion_logprobs(meta.get("logprobs"))
        except (TypeError, ValueError) as error:
            logprobs, problems = None, [*problems, f"unreadable logprobs: {error!r}"]
    completion_ids = _ints(meta.get("token_ids"))
    problems += length_problems(completion_ids, logprobs)
    fields.update(
        prompt_token_ids=_ints(meta.get("prompt_token_ids")),
        completion_token_ids=completion_ids,
        logprobs=logprobs,
        finish_reason=meta.get("finish_reason"),
        served_model=meta.get("model_name") or meta.get("model"),
        problems=problems,
    )
    return fields


def length_problems(
    ids: Sequence[int] | None, logprobs: Sequence[float] | None
) -> list[str]:
    """A problem when both completion ids and logprobs came and their counts differ."""
    if ids is None or logprobs is None or len(ids) == len(logprobs):
        return []
    return [f"{len(logprobs)} logprobs for {len(ids)} completion tokens"]


def turn_problems(call: dict[str, Any]) -> Iterable[str]:
    """Why a recorded call cannot be a training turn (nothing when it can)."""
    yield from call.get("problems") or []
    if call.get("error"):
        yield f"the call failed: {call['error']}"
    for key in ("prompt_token_ids", "completion_token_ids", "logprobs"):
        if call.get(key) is None:
            yield (
                f"no {key} (was it a ChatVLLM or VLLMOpenAI call made inside "
                "record_trajectories()?)"
            )
    if not call.get("problems"):
        yield from length_problems(
            call.get("completion_token_ids"), call.get("logprobs")
        )


def group_records(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by `thread_id`, else by `root_run_id` (in order)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        key = record.get("thread_id") or record.get("root_run_id") or "?"
        groups.setdefault(str(key), []).append(record)
    return groups


class RecordingHandler(BaseCallbackHandler):
    """A callback handler that keeps the run tree and writes records as runs end."""

    run_inline = True
    """Called in the event loop's thread for async runs (no executor hop)."""

    def __init__(self, path: str | Path | None = None) -> None:
        """Record in memory and, with `path`, append to that JSONL file."""
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        """Every record so far, in the order the calls and tools ended."""
        self._lock = threading.Lock()
        self._runs: dict[UUID | None, tuple[UUID, str | None]] = {}
        """Every running run's root run and thread."""
        self._open: dict[UUID, dict[str, Any]] = {}
        self._file: IO[str] | None = (
            self.path.open("a", encoding="utf-8") if self.path is not None else None
        )

    def close(self) -> None:
        """Close the JSONL file (records stay in memory)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def trajectories(self) -> dict[str, list[dict[str, Any]]]:
        """The records grouped by `thread_id`, else by `root_run_id`."""
        with self._lock:
            return group_records(self.records)

    # -- run tree --------------------------------------------------------------------
    def _enter(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
    ) -> tuple[UUID, str | None]:
        """Note a run's root and thread; return them.

        The thread is the run's `thread_id` metadata (LangGraph sets it), else the
        `configurable.thread_id` of the runnable that runs it (a chain's step),
        else its parent's.
        """
        thread = thread_of(metadata)
        with self._lock:
            root, inherited = self._runs.get(parent_run_id, (parent_run_id, None))
            self._runs[run_id] = (root or run_id, thread or inherited)
            return self._runs[run_id]

    def _leave(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        """Forget a root run's tree when it ends (lock held)."""
        if parent_run_id is None:
            done = [run for run, (root, _) in self._runs.items() if root == run_id]
            for run in done:
                del self._runs[run]

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        fields: dict[str, Any],
    ) -> None:
        root, thread = self._enter(run_id, parent_run_id, metadata)
        if fields.pop("_session_from_thread", False) and not fields["session_id"]:
            fields["session_id"] = thread
        with self._lock:
            self._open[run_id] = {
                "run_id": str(run_id),
                "parent_run_id": text_of(parent_run_id),
                "root_run_id": str(root),
                "thread_id": thread,
                **fields,
                "started_at": time.time(),
            }

    def _finish(
        self, run_id: UUID, parent_run_id: UUID | None, fields: dict[str, Any]
    ) -> None:
        with self._lock:
            record = self._open.pop(run_id, None)
            if record is None:  # started before this recorder was attached
                root, thread = self._runs.get(parent_run_id, (parent_run_id, None))
                record = {
                    "run_id": str(run_id),
                    "parent_run_id": text_of(parent_run_id),
                    "root_run_id": str(root or run_id),
                    "thread_id": thread,
                    "started_at": None,
                }
            record.update(fields, ended_at=time.time())
            self._leave(run_id, parent_run_id)
            self.records.append(record)
            if self._file is not None:
                self._file.write(json.dumps(record, default=str) + "\n")
                self._file.flush()

    # -- parentage of the other runs --------------------------------------------------
    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Note the chain's place in the run tree."""
        self._enter(run_id, parent_run_id, metadata)

    def on_chain_end(
        self,
        outputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Forget the run tree when its root chain ends."""
        with self._lock:
            self._leave(run_id, parent_run_id)

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Forget the run tree when its root chain fails."""
        with self._lock:
            self._leave(run_id, parent_run_id)

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Note the retriever's place in the run tree."""
        self._enter(run_id, parent_run_id, metadata)
