"""Agent rollouts for training: every model call's exact tokens, as JSONL.

`record_trajectories()` makes every `ChatVLLM` and `VLLMOpenAI` call inside it ask
vLLM for token ids and logprobs, and records each call (and each tool result) of
every run, LangGraph graphs included, without a change to the agent's code.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_RECORDING: ContextVar[Any] = ContextVar("langchain_vllm_recording", default=None)
"""The active recorder of `record_trajectories()`, or None."""


def ask_for_tokens(payload: dict[str, Any], extra: dict[str, Any]) -> None:
    """Under `record_trajectories()`, ask a chat request for ids and logprobs.

    Sets `logprobs` (OpenAI's field, in `payload`) and vLLM's `return_token_ids`
    (in `extra`, the body's vLLM part) unless the call set them itself.
    """
    if _RECORDING.get() is None:
        return
    payload.setdefault("logprobs", True)
    extra.setdefault("return_token_ids", True)


def ask_for_completion_tokens(kwargs: dict[str, Any], extra: dict[str, Any]) -> None:
    """Under `record_trajectories()`, ask a completion for ids and logprobs.

    `logprobs=0` (OpenAI's completions field: the sampled token's logprob, no
    alternatives) and vLLM's `return_token_ids`, unless the call set them.
    """
    if _RECORDING.get() is None:
        return
    kwargs.setdefault("logprobs", 0)
    extra.setdefault("return_token_ids", True)
