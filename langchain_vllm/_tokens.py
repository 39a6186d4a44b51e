"""What a stream delivered, and an answer's exact tokens (ids, one logprob each).

With `return_token_ids=True` vLLM sends the prompt's ids (`prompt_token_ids`)
and each choice's completion ids (`token_ids`; a stream sends each chunk's
new ids). With `logprobs`, one logprob per completion token. These helpers carry
both from stream chunks (where the parents drop the ids) and check that the
counts agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.outputs import GenerationChunk

COMPLETION_CHUNK_KEYS = ("prompt_token_ids", "token_ids", "stop_reason")
"""vLLM-only fields of a `/v1/completions` stream choice kept on its chunk."""


def logprob_count(logprobs: Any) -> int | None:
    """How many tokens a logprobs object covers (chat or completions form)."""
    if not isinstance(logprobs, Mapping):
        return None
    entries = logprobs.get("content")  # chat: {"content": [{"logprob": ...}]}
    if entries is None:
        entries = logprobs.get("token_logprobs")  # completions
    return len(entries) if isinstance(entries, list) else None


class TokenCount:
    """Completion ids and logprobs an answer (or a stream so far) carried."""

    def __init__(self) -> None:
        self.ids: int | None = None
        self.logprobs: int | None = None

    def add(self, ids: Any, logprobs: Any) -> None:
        """Count one chunk's (or a whole answer's) ids and logprobs."""
        if isinstance(ids, list):
            self.ids = (self.ids or 0) + len(ids)
        count = logprob_count(logprobs)
        if count is not None:
            self.logprobs = (self.logprobs or 0) + count

    def problem(self) -> str | None:
        """Why the ids and logprobs disagree, or None (also when one is missing)."""
        if self.ids is None or self.logprobs is None or self.ids == self.logprobs:
            return None
        return (
            f"{self.logprobs} logprobs for {self.ids} completion token ids: vLLM "
            "sends one logprob per generated token"
        )


class StreamState:
    """What a stream delivered so far; subclasses parse chunks on the way."""

    def __init__(self) -> None:
        self.received = False
        self.finished = False
        self.tokens = TokenCount()
        """Completion ids and logprobs so far (one logprob per id, checked)."""

    def take(self, chunk: Any) -> Any:
        """Account for the next chunk (and return it, parsed if need be)."""
        self.received = True
        info = getattr(chunk, "generation_info", None) or {}
        self.finished = self.finished or bool(info.get("finish_reason"))
        self.count(info.get("token_ids"), chunk)
        return chunk

    def count(self, ids: Any, chunk: Any) -> None:
        """Count a chunk's completion ids and its logprobs (`generation_info`)."""
        info = getattr(chunk, "generation_info", None)
        if ids is not None or info:
            self.tokens.add(ids, (info or {}).get("logprobs"))


def token_problem(ids: Any, logprobs: Any) -> str | None:
    """`TokenCount.problem` of one whole answer."""
    count = TokenCount()
    count.add(ids, logprobs)
    return count.problem()


def completion_chunk(response: dict[str, Any]) -> GenerationChunk:
    """A `/v1/completions` stream event as a chunk, vLLM's ids kept.

    As langchain-openai's converter (text, `finish_reason`, `logprobs`), plus the
    choice's `prompt_token_ids` (first chunk), `token_ids` (each chunk's new
    ids) and `stop_reason`, which merge across chunks like an invoke's.
    """
    choices = response.get("choices")
    if not choices:
        return GenerationChunk(text="")
    choice = choices[0]
    info = {
        "finish_reason": choice.get("finish_reason"),
        "logprobs": choice.get("logprobs"),
    }
    info.update(
        (key, choice[key])
        for key in COMPLETION_CHUNK_KEYS
        if choice.get(key) is not None
    )
    return GenerationChunk(text=choice.get("text") or "", generation_info=info)
