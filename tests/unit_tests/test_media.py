"""Media blocks in vLLM's form, refusals, media errors and the profile's modalities."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_vllm import ChatVLLM
from langchain_vllm._media import media_hint, vllm_messages, vllm_part
from langchain_vllm.errors import (
    VLLMBadRequestError,
    VLLMMediaError,
    VLLMUnsupportedMediaError,
)
from tests.unit_tests.fake_vllm import FakeVLLM

B64 = "iVBORw0KGgo="


@pytest.fixture
def fake() -> FakeVLLM:
    return FakeVLLM()


@pytest.mark.parametrize(
    ("block", "part"),
    [
        (
            {"type": "image", "url": "https://x/i.png"},
            {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
        ),
        (
            {"type": "image", "base64": B64, "mime_type": "image/png"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64}"}},
        ),
        (
            {"type": "image", "source_type": "url", "url": "https://x/i.png"},
            {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
        ),
        (
            {
                "type": "image",
                "source_type": "base64",
                "data": B64,
                "mime_type": "image/jpeg",
            },
            {
                "type": "image_url",
                "image_url": {"url": f"data:image/jpeg;base64,{B64}"},
            },
        ),
        (
            {"type": "audio", "url": "https://x/a.wav"},
            {"type": "audio_url", "audio_url": {"url": "https://x/a.wav"}},
        ),
        (
            {"type": "audio", "base64": "UklG", "mime_type": "audio/wav"},
            {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
        ),
        (
            {"type": "video", "url": "https://x/v.mp4"},
            {"type": "video_url", "video_url": {"url": "https://x/v.mp4"}},
        ),
        (
            {"type": "video", "base64": "AAAA", "mime_type": "video/mp4"},
            {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}},
        ),
        (
            {"type": "image", "url": "https://x/i.png", "extras": {"uuid": "cat-1"}},
            {
                "type": "image_url",
                "image_url": {"url": "https://x/i.png"},
                "uuid": "cat-1",
            },
        ),
        (
            {"type": "video", "url": "https://x/v.mp4", "uuid": 7},
            {"type": "video_url", "video_url": {"url": "https://x/v.mp4"}, "uuid": "7"},
        ),
    ],
    ids=[
        "image-url",
        "image-base64",
        "image-v0-url",
        "image-v0-base64",
        "audio-url",
        "audio-base64",
        "video-url",
        "video-base64",
        "uuid-in-extras",
        "uuid-top-level",
    ],
)
def test_block_to_vllm_part(block: dict[str, Any], part: dict[str, Any]) -> None:
    assert vllm_part(block) == part


@pytest.mark.parametrize(
    "part",
    [
        {"type": "text", "text": "hi"},
        {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
        {"type": "video_url", "video_url": {"url": "https://x/v.mp4"}, "uuid": "v"},
        {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}},
        "plain text",
    ],
)
def test_other_parts_pass_through_unchanged(part: Any) -> None:
    assert vllm_part(part) is part


@pytest.mark.parametrize(
    ("block", "match"),
    [
        (
            {"type": "file", "base64": "JVBERi0=", "mime_type": "application/pdf"},
            r"type `file` \(application/pdf\)",
        ),
        ({"type": "file", "url": "https://x/doc.pdf"}, "type `file`"),
        (
            {"type": "text-plain", "text": "doc", "mime_type": "text/plain"},
            "text-plain",
        ),
        ({"type": "image", "file_id": "file-1"}, "file id.*no file store"),
        ({"type": "image", "source_type": "id", "id": "file-1"}, "file id"),
        ({"type": "file", "file": {"file_id": "f"}}, "OpenAI-format `file` part"),
        ({"type": "input_file", "file_data": "x"}, "`input_file` part"),
        ({"type": "video", "mime_type": "video/mp4"}, "without `url` or `base64`"),
    ],
)
def test_unsupported_blocks_refused_naming_what_vllm_takes(
    block: dict[str, Any], match: str
) -> None:
    with pytest.raises(VLLMUnsupportedMediaError, match=match) as caught:
        vllm_part(block)
    assert "image_url" in str(caught.value)
    assert "audio_url" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_base64_without_mime_type_is_refused() -> None:
    with pytest.raises(
        VLLMUnsupportedMediaError, match=r"needs `mime_type`.*audio/wav"
    ):
        vllm_part({"type": "audio", "base64": "UklG"})


def test_messages_without_media_are_not_copied() -> None:
    plain = HumanMessage("hi")
    listed = HumanMessage([{"type": "text", "text": "hi"}])
    ai = AIMessage([{"type": "text", "text": "hello"}])
    out = vllm_messages([plain, listed, ai])
    assert out[0] is plain
    assert out[1] is listed
    assert out[2] is ai


def test_media_in_tool_and_system_messages_converted() -> None:
    image = {"type": "image", "url": "https://x/i.png"}
    tool = ToolMessage([image], tool_call_id="1", name="shot")
    out = vllm_messages([SystemMessage([image]), tool])
    assert out[0].content[0]["type"] == "image_url"  # type: ignore[index]
    assert out[1].content[0]["type"] == "image_url"  # type: ignore[index]
    assert isinstance(out[1], ToolMessage)
    assert out[1].tool_call_id == "1"
    assert tool.content == [image]  # the caller's message is not changed


def test_request_body_has_vllm_parts(fake: FakeVLLM) -> None:
    chat = ChatVLLM(model="m", **fake.kwargs())
    chat.invoke(
        [
            HumanMessage(
                [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "audio", "url": "https://x/a.wav"},
                    {"type": "video", "url": "https://x/v.mp4"},
                    {"type": "image", "base64": B64, "mime_type": "image/png"},
                ]
            )
        ],
        media_io_kwargs={"video": {"num_frames": 8}},
    )
    body = fake.last_body()
    assert [p["type"] for p in body["messages"][0]["content"]] == [
        "text",
        "audio_url",
        "video_url",
        "image_url",
    ]
    assert body["media_io_kwargs"] == {"video": {"num_frames": 8}}


def test_unsupported_block_sends_nothing(fake: FakeVLLM) -> None:
    chat = ChatVLLM(model="m", **fake.kwargs())
    pdf = {"type": "file", "base64": "JVBERi0=", "mime_type": "application/pdf"}
    with pytest.raises(VLLMUnsupportedMediaError):
        chat.invoke([HumanMessage([pdf])])
    with pytest.raises(VLLMUnsupportedMediaError):
        chat.get_num_tokens_from_messages([HumanMessage([pdf])])
    assert fake.paths() == []


def test_token_count_sends_media_and_processor_kwargs(fake: FakeVLLM) -> None:
    fake.modalities = {"image"}
    chat = ChatVLLM(model="m", mm_processor_kwargs={"size": 64}, **fake.kwargs())
    messages = [HumanMessage([{"type": "image", "url": "https://x/i.png"}])]
    chat.get_num_tokens_from_messages(messages)
    body = fake.last_body("/tokenize")
    assert body["messages"][0]["content"][0]["type"] == "image_url"
    assert body["mm_processor_kwargs"] == {"size": 64}


# -- server refusals: the flag or the model that decides ------------------------------
@pytest.mark.parametrize(
    ("status", "server_msg", "match"),
    [
        (
            400,
            "At most 2 image(s) may be provided in one prompt. (parameter=image)",
            r"at most 2 image\(s\) per prompt.*--limit-mm-per-prompt",
        ),
        (
            400,
            "At most 0 audio(s) may be provided in one prompt. (parameter=audio)",
            "takes no audio input: the model's architecture decides",
        ),
        (400, "smollm2 is not a multimodal model", "text-only.*no server flag"),
        (
            500,
            "Cannot load local files without `--allowed-local-media-path`.",
            "only below the folder given by its `--allowed-local-media-path`",
        ),
        (
            500,
            "Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed]",
            "fetches media URLs itself.*--allowed-media-domains",
        ),
        (
            422,
            "Failed to fetch media from URL: HTTP 404 error (parameter=image_url)",
            "fetches media URLs itself",
        ),
        (
            400,
            "Per-request mm_processor_kwargs are disabled by default because they "
            "can change multimodal preprocessing resource usage. Start the server "
            "with --trust-request-mm-kwargs only when clients are trusted.",
            "--mm-processor-kwargs",
        ),
    ],
    ids=["limit", "modality", "text-only", "local-file", "unreachable", "404", "kw"],
)
def test_media_refusals_are_typed_and_name_what_decides(
    fake: FakeVLLM, status: int, server_msg: str, match: str
) -> None:
    fake.status = status
    fake.error_body = {"error": {"message": server_msg, "code": status}}
    chat = ChatVLLM(model="m", **fake.kwargs())
    with pytest.raises(VLLMMediaError, match=match) as caught:
        chat.invoke([HumanMessage([{"type": "image", "url": "https://x/i.png"}])])
    assert server_msg in str(caught.value)  # the server's own words are kept
    assert isinstance(caught.value, VLLMBadRequestError)


def test_other_errors_get_no_media_hint() -> None:
    assert media_hint("prompt_logprobs must be >= -1") is None
    assert media_hint("At most 3 tool calls") is None


# -- the profile's modalities --------------------------------------------------------
IMAGES = ("image_inputs", "image_url_inputs", "image_tool_message")
TEXT_ONLY = {
    **dict.fromkeys(("image_inputs", "audio_inputs", "video_inputs"), False),
    "image_url_inputs": False,
    "text_inputs": True,
    "pdf_inputs": False,
}


def test_profile_of_a_text_only_model(fake: FakeVLLM) -> None:
    profile = ChatVLLM(**fake.kwargs()).profile
    assert profile is not None
    assert {k: dict(profile)[k] for k in TEXT_ONLY} == TEXT_ONLY
    assert fake.paths() == ["GET /v1/models", "POST /tokenize"]  # one probe


def test_profile_of_a_vision_model(fake: FakeVLLM) -> None:
    fake.modalities = {"image"}
    profile = ChatVLLM(**fake.kwargs()).profile
    assert profile is not None
    images = {**dict.fromkeys(IMAGES, True), "audio_inputs": False}
    images["video_inputs"] = False
    assert {k: dict(profile)[k] for k in images} == images
    probes = fake.bodies("/tokenize")
    assert [b["messages"][0]["content"][0]["type"] for b in probes] == [
        "image_url",
        "audio_url",
        "video_url",
    ]


def test_profile_modality_read_then_refused_by_the_processor(fake: FakeVLLM) -> None:
    """An item the model's processor reads and rejects still means "takes it"."""
    fake.modalities = {"image", "audio", "video"}
    profile = ChatVLLM(**fake.kwargs()).profile
    assert profile is not None
    assert profile["audio_inputs"] is True
    fake.requests.clear()
    fake.status = 400
    fake.error_body = {"error": {"message": "Failed to load audio: bad header"}}
    other = ChatVLLM(**fake.kwargs()).profile
    assert other is not None
    assert other["audio_inputs"] is True
    assert other["video_inputs"] is True


def test_profile_leaves_unknown_modalities_out(fake: FakeVLLM) -> None:
    fake.status = 500
    profile = ChatVLLM(**fake.kwargs()).profile
    assert profile is not None
    assert "image_inputs" not in profile
    assert profile["pdf_inputs"] is False
    assert profile["max_input_tokens"] == 2048
