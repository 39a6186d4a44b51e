"""ChatVLLM's model profile: the context window from the server, fetched once.

Fetched again after LoRA adapters were loaded or unloaded through the same model
object (the server's model list changed).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from langchain_vllm._server_api import ServerLink


class ServedModelProfile(Mapping[str, Any]):
    """`max_input_tokens` from the server's `/v1/models` card (`max_model_len`).

    LangChain reads `chat.profile` for the context window (e.g. middleware that
    summarizes at a fraction of it). The card is asked for on the first read of
    the profile's contents (never at construction), once, and again after adapters
    were (un)loaded; the profile is a plain read-only mapping. A LoRA adapter has
    its base model's context window (the server lists none for adapters).
    """

    refetched_by_copies = True
    """A pickled or deep-copied model fetches its own profile again."""

    def __init__(self, link: ServerLink, model: str | None) -> None:
        self._link = link
        self._model = model
        self._data: dict[str, Any] | None = None
        self._generation = -1
        self._lock = threading.Lock()

    def _fetched(self) -> dict[str, Any]:
        with self._lock:
            generation = self._link.models_generation
            if self._data is None or self._generation != generation:
                model = self._link.resolve_model(self._model)
                data: dict[str, Any] = {"tool_calling": True, "structured_output": True}
                limit = self._link.context_length(model)
                if limit is not None:
                    data["max_input_tokens"] = limit
                self._data, self._generation = data, generation
            return self._data

    def __bool__(self) -> bool:  # a profile exists, even before it is fetched
        return True

    def __getitem__(self, key: str) -> Any:
        return self._fetched()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fetched())

    def __len__(self) -> int:
        return len(self._fetched())

    def __repr__(self) -> str:
        if self._data is None:
            return "ServedModelProfile(<not fetched>)"
        return f"ServedModelProfile({self._data!r})"
