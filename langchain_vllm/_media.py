"""Multimodal content blocks in vLLM's form: images, audio and video.

LangChain's standard data blocks (`{"type": "image" | "audio" | "video", "url"
| "base64": ...}`, and the older `source_type` form) are turned into the content
parts vLLM's Chat Completions server reads before `ChatOpenAI` sees them:

| LangChain block          | vLLM part                                        |
| ------------------------ | ------------------------------------------------ |
| image, `url`             | `{"type": "image_url", "image_url": {"url": u}}` |
| image, `base64`          | the same, with a `data:` URL                     |
| audio, `url`             | `{"type": "audio_url", "audio_url": {"url": u}}` |
| audio, `base64`          | `{"type": "input_audio", "input_audio": ...}`    |
| video, `url` / `base64`  | `{"type": "video_url", "video_url": {"url": u}}` |

A block's `extras={"uuid": "..."}` (or a top-level `uuid`) becomes the part's
`uuid`, the key of vLLM's multimodal cache. Files (PDF, ...), plain-text blocks and
`file_id` references have no vLLM form: they are refused before the request with
`VLLMUnsupportedMediaError`. OpenAI-format parts (`image_url`, `input_audio`, ...)
pass through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.content import is_data_content_block

from langchain_vllm.errors import VLLMUnsupportedMediaError

ACCEPTED = (
    "images (URL or base64), audio (URL or base64) and video (URL or base64) "
    "as LangChain `image` / `audio` / `video` blocks, or the OpenAI-format parts "
    "`image_url`, `input_audio`, `audio_url` and `video_url`"
)
"""What vLLM's chat endpoint takes, for error messages."""

REFUSED_PARTS = frozenset({"file", "input_file"})
"""OpenAI-format part types vLLM's chat endpoint has no parser for."""

_URL_PART = {"image": "image_url", "audio": "audio_url", "video": "video_url"}
_EXAMPLE_MIME = {"image": "image/png", "audio": "audio/wav", "video": "video/mp4"}


def vllm_messages(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Return `messages` with every media block in vLLM's form.

    Messages without media blocks are returned as they are (not copied);
    assistant messages are left to `ChatOpenAI` (they carry no inputs).

    Raises:
        VLLMUnsupportedMediaError: a block vLLM cannot take (file, PDF, plain
            text document, `file_id`, a block without data).

    Example:
        .. code-block:: python

            from langchain_core.messages import HumanMessage

            msg = HumanMessage([{"type": "audio", "url": "https://x/a.wav"}])
            vllm_messages([msg])[0].content
            # [{'type': 'audio_url', 'audio_url': {'url': 'https://x/a.wav'}}]
    """
    out: list[BaseMessage] = []
    for message in messages:
        content = message.content
        if isinstance(message, AIMessage) or not isinstance(content, list):
            out.append(message)
            continue
        converted = [vllm_part(block) for block in content]
        if any(new is not old for new, old in zip(converted, content, strict=True)):
            message = message.model_copy(update={"content": converted})
        out.append(message)
    return out


def vllm_part(block: Any) -> Any:
    """One content block in vLLM's form (other blocks are returned unchanged).

    Raises:
        VLLMUnsupportedMediaError: a block vLLM cannot take.
    """
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if not is_data_content_block(block):
        if kind in REFUSED_PARTS:
            raise _refused(f"an OpenAI-format `{kind}` part")
        if kind in _URL_PART and "source" not in block:  # source: Anthropic's form
            raise _refused(f"a block of type `{kind}` without `url` or `base64`")
        return block
    if kind not in _URL_PART:  # file, text-plain
        mime = block.get("mime_type") or "no mime_type"
        raise _refused(f"a block of type `{kind}` ({mime})")
    url, data = _source(block)
    if data is not None and kind == "audio":
        part: dict[str, Any] = {
            "type": "input_audio",
            "input_audio": {"data": data, "format": _audio_format(block)},
        }
    else:
        if data is not None:
            url = f"data:{_mime(block)};base64,{data}"
        part = {"type": _URL_PART[kind], _URL_PART[kind]: {"url": url}}
    uuid = block.get("uuid") or (block.get("extras") or {}).get("uuid")
    if uuid is not None:
        part["uuid"] = str(uuid)
    return part


def _source(block: dict[str, Any]) -> tuple[str | None, str | None]:
    """`(url, base64)` of a v1 or v0 data block; file ids are refused."""
    source_type = block.get("source_type")
    if "file_id" in block or source_type == "id":
        raise _refused(
            f"a block of type `{block['type']}` with a file id (vLLM has no file "
            "store; send the data as `url` or `base64`)"
        )
    if source_type == "base64":
        return None, str(block["data"])
    if "base64" in block:
        return None, str(block["base64"])
    return str(block["url"]), None


def _mime(block: dict[str, Any]) -> str:
    mime = block.get("mime_type")
    if not mime:
        msg = (
            f"A base64 `{block['type']}` block needs `mime_type` (e.g. "
            f"'{_EXAMPLE_MIME[block['type']]}') to become a data URL for vLLM."
        )
        raise VLLMUnsupportedMediaError(msg)
    return str(mime)


def _audio_format(block: dict[str, Any]) -> str:
    """`input_audio.format`: vLLM builds `data:audio/<format>;base64,...` from it."""
    return _mime(block).split("/")[-1]


def _refused(what: str) -> VLLMUnsupportedMediaError:
    return VLLMUnsupportedMediaError(
        f"vLLM's chat endpoint cannot take {what}. It accepts {ACCEPTED}. "
        "Whether the served model reads a kind of media is the model's: see "
        "`chat.profile` (image_inputs, audio_inputs, video_inputs)."
    )


_TOO_MANY = re.compile(r"At most (?P<limit>\d+) (?P<kind>\w+)\(s\) may be provided")
_FETCH_FAILED = re.compile(
    r"Cannot connect to host|Failed to fetch media|Cannot load (?:image|audio|video) "
    r"from URL|media URL|timed? ?out while fetching",
    re.I,
)


def modality_refused(server_msg: str) -> Literal["text-only", "modality"] | None:
    """What a server's media refusal says about the model, if anything.

    "text-only": the model reads no media at all; "modality": it does not read this
    kind (the server allows 0 items of it); None: the refusal is about something
    else (too many items, a URL, a flag).
    """
    if "is not a multimodal model" in server_msg:
        return "text-only"
    too_many = _TOO_MANY.search(server_msg)
    return "modality" if too_many and too_many["limit"] == "0" else None


def media_hint(server_msg: str) -> str | None:
    """What decides a media refusal of the server, or None for other errors.

    Example:
        .. code-block:: python

            media_hint("At most 2 image(s) may be provided in one prompt.")
            # "The server takes at most 2 image(s) per prompt: ..."
    """
    too_many = _TOO_MANY.search(server_msg)
    if modality_refused(server_msg) == "modality":
        kind = too_many["kind"] if too_many else "media"
        return (
            f"The served model takes no {kind} input: the model's architecture "
            f"decides (or the server was started with `--limit-mm-per-prompt` "
            f"setting {kind} to 0). Serve a model that reads {kind}."
        )
    if too_many:
        limit, kind = too_many["limit"], too_many["kind"]
        return (
            f"The server takes at most {limit} {kind}(s) per prompt: its "
            f"`--limit-mm-per-prompt` flag decides (e.g. "
            f"`--limit-mm-per-prompt '{{\"{kind}\": {int(limit) * 2}}}'`). "
            "Send fewer, or restart the server with a higher limit."
        )
    if "--trust-request-mm-kwargs" in server_msg:
        return (
            "Per-request `mm_processor_kwargs` need a server started with "
            "`--trust-request-mm-kwargs`; or set them for every request with the "
            "server's `--mm-processor-kwargs`."
        )
    if modality_refused(server_msg) == "text-only":
        return (
            "The served model is text-only: images, audio and video need a "
            "multimodal model (the model decides; no server flag changes it)."
        )
    if "--allowed-local-media-path" in server_msg:
        return (
            "The server reads local files (`file://` URLs) only below the folder "
            "given by its `--allowed-local-media-path` flag; or send the file's "
            "data as `base64`."
        )
    if _FETCH_FAILED.search(server_msg):
        return (
            "The vLLM server fetches media URLs itself (not the client): the URL "
            "must be reachable from the server's host (its `--allowed-media-domains` "
            "flag, if set, limits the hosts). Or send the data as `base64`."
        )
    return None
