"""ChatVLLM's model profile: context window and input modalities from the server.

`/v1/models` gives the context window (`max_model_len`) but says nothing about
media. The input modalities are asked of the server the way it decides them: one
`/tokenize` request per modality with a tiny data URL. A text-only model answers
"... is not a multimodal model", a modality the model lacks "At most 0 audio(s)
may be provided in one prompt." (HTTP 400); an accepted item (or one the model's
processor reads and then rejects, e.g. an undecodable clip) means the model takes
that modality. Any other answer leaves the key out (unknown).

Fetched again after LoRA adapters were loaded or unloaded through the same model
object (the server's model list changed).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import openai

from langchain_vllm._link import ServerLink
from langchain_vllm._media import modality_refused
from langchain_vllm.errors import VLLMBadRequestError, VLLMMediaError

# A 1x1 PNG; audio and video probes need no valid clip (see the module docstring).
_PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/"
    "pLvAAAAAElFTkSuQmCC"
)
MEDIA_PROBES: dict[str, tuple[str, str]] = {
    "image_inputs": ("image_url", f"data:image/png;base64,{_PNG_1X1}"),
    "audio_inputs": ("audio_url", "data:audio/wav;base64,AAAA"),
    "video_inputs": ("video_url", "data:video/mp4;base64,AAAA"),
}
"""Profile key -> (vLLM content part type, data URL) of the modality probes."""


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
                data.update(input_modalities(self._link, model))
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


def input_modalities(link: ServerLink, model: str) -> dict[str, bool]:
    """The profile's input keys, from the server's answers to one probe each.

    Returns:
        `text_inputs`, `pdf_inputs` and `pdf_tool_message` (vLLM's chat endpoint
        has no document part) always; `image_inputs`, `audio_inputs`,
        `video_inputs` as far as the server tells, and with images
        `image_url_inputs` and `image_tool_message` (the server fetches URLs
        and reads images in tool messages alike).
    """
    found: dict[str, bool] = {
        "text_inputs": True,
        "pdf_inputs": False,
        "pdf_tool_message": False,
    }
    for key, (part, url) in MEDIA_PROBES.items():
        answer = _probe(link, model, part, url)
        if answer == "text-only":
            found.update(dict.fromkeys(MEDIA_PROBES, False))
            break
        if answer is not None:
            found[key] = answer == "yes"
    if "image_inputs" in found:
        found["image_url_inputs"] = found["image_tool_message"] = found["image_inputs"]
    return found


def _probe(link: ServerLink, model: str, part: str, url: str) -> str | None:
    """One modality's probe: `"yes"`, `"modality"`, `"text-only"` or None.

    `"modality"`: the model does not read this kind; None: unknown.
    """
    content = [{"type": part, part: {"url": url}}]
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    try:
        link.post("/tokenize", body, expect=("count",))
    except VLLMMediaError as e:
        return modality_refused(str(e))
    except VLLMBadRequestError:
        return "yes"  # the model's processor read the item (and refused the data)
    except openai.APIStatusError:
        return None
    return "yes"
