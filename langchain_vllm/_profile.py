"""ChatVLLM's model profile: context window and input modalities from the server.

`/v1/models` gives the context window (`max_model_len`) but says nothing about
media. The input modalities are asked of the server the way it decides them: one
`/tokenize` request per modality with a tiny data URL, made only when a modality
key is read. A text-only model answers "... is not a multimodal model", a modality
the model lacks "At most 0 audio(s) may be provided in one prompt." (HTTP 400); an
accepted item (or one the model's processor reads and then rejects, e.g. an
undecodable clip) means the model takes that modality. Any other answer leaves the
key out (unknown).

Fetched again after LoRA adapters were loaded or unloaded through the same model
object (the server's model list changed).

Inside a running event loop a read never makes a request (it would stall every
other task of the loop): it serves what is known. `aload` fetches without blocking;
ChatVLLM's async calls warm the context window on the way (`_aprepare`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import openai

from langchain_vllm._link import ServerLink
from langchain_vllm._loop import in_event_loop
from langchain_vllm._media import modality_refused
from langchain_vllm.errors import VLLMBadRequestError, VLLMMediaError
from langchain_vllm.models import choose_model, context_length

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

STATIC: dict[str, bool] = {
    "tool_calling": True,
    # False steers LangChain's create_agent to ToolStrategy (the answer schema sent
    # as a tool under a forced tool choice, which every vLLM enforces): a schema
    # beside tools the model may call (ProviderStrategy) is enforced only by vLLM
    # 0.31+ with a tool parser that has a structural tag and strict tool calling
    # on, which a client cannot see; elsewhere the tool is never called, or the
    # answer is not enforced. `with_structured_output` is unaffected (native).
    "structured_output": False,
    "text_inputs": True,
    "pdf_inputs": False,  # vLLM's chat endpoint has no document part
    "pdf_tool_message": False,
}
"""The keys known without asking the server."""

MEDIA_KEYS = frozenset({*MEDIA_PROBES, "image_url_inputs", "image_tool_message"})
"""The keys the modality probes answer."""


class ProfileNotFetchedError(KeyError):
    """A server-given key read in a running event loop before it was fetched.

    A KeyError: `profile.get(key)` gives None, `key in profile` False.
    """

    def __str__(self) -> str:
        return str(self.args[0])


class ServedModelProfile(Mapping[str, Any]):
    """`max_input_tokens` from the server's `/v1/models` card (`max_model_len`).

    LangChain reads `chat.profile` for the context window (e.g. middleware that
    summarizes at a fraction of it). The card is asked for on the first read of
    the profile's contents (never at construction), once, and again after adapters
    were (un)loaded; the modality keys cost one `/tokenize` probe each, on the
    first read of one of them (or of the whole mapping). A LoRA adapter has its
    base model's context window (the server lists none for adapters).

    Inside a running event loop a read makes no request: it serves what is known
    (`profile.get("max_input_tokens")` is None until fetched, `profile[key]`
    raises a KeyError that says to `await chat.aget_profile()`). Async calls of
    the model fetch the context window on the way.
    """

    refetched_by_copies = True
    """A pickled or deep-copied model fetches its own profile again."""

    def __init__(self, link: ServerLink, model: str | None) -> None:
        self._link = link
        self._model = model
        self._base: dict[str, Any] | None = None  # max_input_tokens, if served
        self._base_generation = -1
        self._media: dict[str, bool] | None = None
        self._media_generation = -1
        self._warm_failed = -1  # the models generation whose warm-up failed
        self._lock = threading.Lock()

    # -- what is known, fetched (blocking) only outside a running event loop -----
    def _known(self, *, media: bool) -> dict[str, Any]:
        if in_event_loop():
            self._base_from_cache()
        else:
            with self._lock:
                if self._base_stale():
                    generation = self._link.models_generation
                    self._set_base(self._link.models(), generation)
                if media and self._media_stale():
                    generation = self._link.models_generation
                    model = self._link.resolve_model(self._model)
                    self._media = input_modalities(self._link, model)
                    self._media_generation = generation
        return {**STATIC, **(self._base or {}), **(self._media or {})}

    def _base_stale(self) -> bool:
        return (
            self._base is None or self._base_generation != self._link.models_generation
        )

    def _media_stale(self) -> bool:
        generation = self._link.models_generation
        return self._media is None or self._media_generation != generation

    def _set_base(self, cards: list[dict[str, Any]], generation: int) -> None:
        model = self._model or choose_model(cards, self._link.base_url)
        limit = context_length(cards, model)
        self._base = {} if limit is None else {"max_input_tokens": limit}
        self._base_generation = generation

    def _base_from_cache(self) -> None:
        """Rebuild the context window from cached cards, without a request.

        Without cards, what was known before stays (adapters (un)loaded since).
        """
        generation = self._link.models_generation
        cards = self._link.known_models()
        if cards is not None and self._base_stale():
            self._set_base(cards, generation)

    # -- async fetching ---------------------------------------------------------------
    async def aload(self, *, modalities: bool = True) -> None:
        """Fetch the profile without blocking the event loop (cached as a read's).

        Args:
            modalities: Also probe the input modalities (one `/tokenize` request
                each); else only the context window (`/v1/models`, one request).
        """
        if self._base_stale():
            generation = self._link.models_generation
            self._set_base(await self._link.amodels(), generation)
        if modalities and self._media_stale():
            generation = self._link.models_generation
            model = await self._link.aresolve_model(self._model)
            self._media = await ainput_modalities(self._link, model)
            self._media_generation = generation

    async def awarm(self) -> None:
        """`aload` of the context window, best effort (an async call's warm-up).

        A failure (e.g. a gateway without `/v1/models`) is not the call's error
        and is not retried until the server's model list changes.
        """
        generation = self._link.models_generation
        if not self._base_stale() or self._warm_failed == generation:
            return
        try:
            await self.aload(modalities=False)
        except Exception:
            self._warm_failed = generation

    # -- the mapping ------------------------------------------------------------------
    def __bool__(self) -> bool:  # a profile exists, even before it is fetched
        return True

    def __getitem__(self, key: str) -> Any:
        known = self._known(media=key in MEDIA_KEYS)
        if key in known:
            return known[key]
        fetched = self._media if key in MEDIA_KEYS else self._base
        if fetched is None and (key in MEDIA_KEYS or key == "max_input_tokens"):
            raise ProfileNotFetchedError(
                f"The model profile's {key!r} comes from the vLLM server and was not "
                "fetched yet: inside a running event loop the profile makes no "
                "blocking request. `await chat.aget_profile()` first (an `ainvoke` "
                "or `astream` call also fetches the context window)."
            )
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._known(media=True))

    def __len__(self) -> int:
        return len(self._known(media=True))

    def __repr__(self) -> str:
        if self._base is None and self._media is None:
            return "ServedModelProfile(<not fetched>)"
        data = {**STATIC, **(self._base or {}), **(self._media or {})}
        return f"ServedModelProfile({data!r})"


def input_modalities(link: ServerLink, model: str) -> dict[str, bool]:
    """The profile's modality keys, from the server's answers to one probe each.

    Returns:
        `image_inputs`, `audio_inputs`, `video_inputs` as far as the server tells,
        and with images `image_url_inputs` and `image_tool_message` (the server
        fetches URLs and reads images in tool messages alike).
    """
    found: dict[str, bool] = {}
    for key, (part, url) in MEDIA_PROBES.items():
        if _take(found, key, _probe(link, _probe_body(model, part, url))):
            break
    return _with_image_keys(found)


async def ainput_modalities(link: ServerLink, model: str) -> dict[str, bool]:
    """Async `input_modalities` (the same probes, one after the other)."""
    found: dict[str, bool] = {}
    for key, (part, url) in MEDIA_PROBES.items():
        if _take(found, key, await _aprobe(link, _probe_body(model, part, url))):
            break
    return _with_image_keys(found)


def _take(found: dict[str, bool], key: str, answer: str | None) -> bool:
    """Note one probe's answer; True when it settles every modality (text-only)."""
    if answer == "text-only":
        found.update(dict.fromkeys(MEDIA_PROBES, False))
        return True
    if answer is not None:
        found[key] = answer == "yes"
    return False


def _with_image_keys(found: dict[str, bool]) -> dict[str, bool]:
    if "image_inputs" in found:
        found["image_url_inputs"] = found["image_tool_message"] = found["image_inputs"]
    return found


def _probe_body(model: str, part: str, url: str) -> dict[str, Any]:
    content = [{"type": part, part: {"url": url}}]
    return {"model": model, "messages": [{"role": "user", "content": content}]}


def _probe(link: ServerLink, body: dict[str, Any]) -> str | None:
    """One modality's probe: `"yes"`, `"modality"`, `"text-only"` or None.

    `"modality"`: the model does not read this kind; None: unknown.
    """
    try:
        link.post("/tokenize", body, expect=("count",))
    except Exception as e:
        return _refusal(e)
    return "yes"


async def _aprobe(link: ServerLink, body: dict[str, Any]) -> str | None:
    """Async `_probe`."""
    try:
        await link.apost("/tokenize", body, expect=("count",))
    except Exception as e:
        return _refusal(e)
    return "yes"


def _refusal(error: Exception) -> str | None:
    """A probe's answer from the server's refusal (other errors are raised)."""
    if isinstance(error, VLLMMediaError):
        return modality_refused(str(error))
    if isinstance(error, VLLMBadRequestError):
        return "yes"  # the model's processor read the item (and refused the data)
    if isinstance(error, openai.APIStatusError):
        return None
    raise error
