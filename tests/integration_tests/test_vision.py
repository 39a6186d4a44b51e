"""Images, audio and video, live against the rig's vision server.

The vision model is synthetic (the chat model's weights behind a tiny random
SigLIP encoder): its answers are noise, so no test reads them. What is checked is
what the package decides: the blocks reach the server in vLLM's form (the server
counts the image's tokens, or names the modality it refused), token counts equal
the server's usage, errors are typed and name the flag or model that decides,
and the profile reports the modalities the server takes.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Sequence

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import VLLMMediaError, VLLMUnsupportedMediaError
from tests.integration_tests.conftest import FIXED, FIXED_TEXT
from tests.integration_tests.media import image_server, png_bytes

B64 = base64.b64encode(png_bytes()).decode()
PROMPT = {"type": "text", "text": "Describe the picture."}


def image_block(**extra: object) -> dict:
    return {"type": "image", "base64": B64, "mime_type": "image/png", **extra}


@pytest.fixture(scope="module")
def chat(vision_url: str) -> ChatVLLM:
    return ChatVLLM(base_url=vision_url, temperature=0, max_tokens=4)


def _text_tokens(chat: ChatVLLM) -> int:
    return chat.get_num_tokens_from_messages([HumanMessage([PROMPT])])


def _check_counted(
    chat: ChatVLLM, messages: Sequence[BaseMessage], images: int
) -> None:
    """The answer's usage equals the client's count, and includes the images."""
    answer = chat.invoke(messages)
    assert isinstance(answer, AIMessage)
    assert answer.usage_metadata is not None
    counted = chat.get_num_tokens_from_messages(messages)
    assert answer.usage_metadata["input_tokens"] == counted
    if images:
        assert counted > _text_tokens(chat) + images  # each image adds several


@pytest.mark.parametrize(
    "block",
    [
        image_block(),
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64}"}},
        {
            "type": "image",
            "source_type": "base64",
            "data": B64,
            "mime_type": "image/png",
        },
        image_block(extras={"uuid": "red-square"}),
    ],
    ids=["standard-base64", "openai-data-url", "v0-base64", "with-uuid"],
)
def test_image_block_reaches_the_model(chat: ChatVLLM, block: dict) -> None:
    _check_counted(chat, [HumanMessage([PROMPT, block])], images=1)


def test_image_url_fetched_by_the_server(chat: ChatVLLM) -> None:
    url = image_server().url("/blue.png")
    _check_counted(chat, [HumanMessage([PROMPT, {"type": "image", "url": url}])], 1)


def test_two_images_count_more_than_one(chat: ChatVLLM) -> None:
    one = [HumanMessage([PROMPT, image_block()])]
    two = [HumanMessage([PROMPT, image_block(), image_block()])]
    _check_counted(chat, two, images=2)
    assert chat.get_num_tokens_from_messages(two) > chat.get_num_tokens_from_messages(
        one
    )


def test_stream_and_async_usage_with_an_image(chat: ChatVLLM) -> None:
    messages = [HumanMessage([PROMPT, image_block()])]
    counted = chat.get_num_tokens_from_messages(messages)
    last = None
    for chunk in chat.stream(messages):
        last = chunk if last is None else last + chunk
    assert last is not None
    assert last.usage_metadata is not None
    assert last.usage_metadata["input_tokens"] == counted

    answer = asyncio.run(chat.ainvoke(messages))
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["input_tokens"] == counted


def test_structured_answer_about_an_image(chat: ChatVLLM) -> None:
    """An image and a server-enforced answer together: the answer is fixed."""
    answer = chat.invoke([HumanMessage([PROMPT, image_block()])], **FIXED)
    assert answer.content == FIXED_TEXT


def test_image_in_a_tool_message(chat: ChatVLLM) -> None:
    from langchain_core.messages import ToolMessage

    def screenshot() -> str:
        """Take a screenshot."""
        return ""

    messages: list[BaseMessage] = [
        HumanMessage("Take a screenshot and describe it."),
        AIMessage(
            "",
            tool_calls=[
                {"name": "screenshot", "args": {}, "id": "1", "type": "tool_call"}
            ],
        ),
        ToolMessage([image_block()], tool_call_id="1"),
    ]
    bound = chat.bind_tools([screenshot], tool_choice="none")
    answer = bound.invoke(messages)
    assert isinstance(answer, AIMessage)
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["input_tokens"] == chat.get_num_tokens_from_messages(
        messages, tools=[screenshot]
    )


# -- errors that name what decides -------------------------------------------------
def test_more_images_than_the_limit_names_the_flag(chat: ChatVLLM) -> None:
    messages = [HumanMessage([PROMPT, image_block(), image_block(), image_block()])]
    with pytest.raises(VLLMMediaError, match=r"at most 2 image.*--limit-mm-per-prompt"):
        chat.invoke(messages)
    with pytest.raises(VLLMMediaError, match="--limit-mm-per-prompt"):
        chat.get_num_tokens_from_messages(messages)


@pytest.mark.parametrize(
    ("block", "kind"),
    [
        ({"type": "audio", "url": "http://127.0.0.1:9/a.wav"}, "audio"),
        ({"type": "audio", "base64": "UklGRg==", "mime_type": "audio/wav"}, "audio"),
        ({"type": "video", "url": "http://127.0.0.1:9/v.mp4"}, "video"),
        ({"type": "video", "base64": "AAAA", "mime_type": "video/mp4"}, "video"),
    ],
    ids=["audio-url", "audio-base64", "video-url", "video-base64"],
)
def test_audio_and_video_reach_the_server_as_their_modality(
    chat: ChatVLLM, block: dict, kind: str
) -> None:
    """The server refuses them *as audio / video*: they arrived in vLLM's form.

    (langchain-openai's converter fails on these blocks before any request.)
    """
    with pytest.raises(VLLMMediaError, match=rf"takes no {kind} input.*architecture"):
        chat.invoke([HumanMessage([PROMPT, block])])


def test_local_file_url_names_the_flag(chat: ChatVLLM) -> None:
    block = {"type": "image", "url": "file:///tmp/picture.png"}
    with pytest.raises(VLLMMediaError, match="--allowed-local-media-path"):
        chat.invoke([HumanMessage([PROMPT, block])])


def test_unreachable_url_says_the_server_fetches_it(vision_url: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    chat = ChatVLLM(base_url=vision_url, max_tokens=4, max_retries=0)
    block = {"type": "image", "url": f"http://127.0.0.1:{port}/gone.png"}
    with pytest.raises(VLLMMediaError, match="fetches media URLs itself"):
        chat.invoke([HumanMessage([PROMPT, block])])


def test_request_mm_processor_kwargs_name_the_flag(chat: ChatVLLM) -> None:
    messages = [HumanMessage([PROMPT, image_block()])]
    with pytest.raises(VLLMMediaError, match="--trust-request-mm-kwargs"):
        chat.invoke(messages, mm_processor_kwargs={"size": {"longest_edge": 64}})


def test_pdf_refused_before_the_request(chat: ChatVLLM) -> None:
    block = {"type": "file", "base64": "JVBERi0=", "mime_type": "application/pdf"}
    with pytest.raises(VLLMUnsupportedMediaError, match=r"application/pdf.*accepts"):
        chat.invoke([HumanMessage([PROMPT, block])])


# -- the profile ---------------------------------------------------------------------
def test_profile_reports_the_servers_modalities(vision_url: str) -> None:
    profile = ChatVLLM(base_url=vision_url).profile
    assert profile is not None
    expected = {
        "image_inputs": True,
        "image_url_inputs": True,
        "image_tool_message": True,
        **dict.fromkeys(("audio_inputs", "video_inputs", "pdf_inputs"), False),
        "max_input_tokens": 2048,
    }
    assert {k: dict(profile)[k] for k in expected} == expected


def test_text_only_model(chat_url: str) -> None:
    """An image to the text-only chat server: the model decides, and says so."""
    chat = ChatVLLM(base_url=chat_url, max_tokens=4)
    with pytest.raises(VLLMMediaError, match=r"text-only.*multimodal model"):
        chat.invoke([HumanMessage([PROMPT, image_block()])])
    profile = chat.profile
    assert profile is not None
    assert profile["image_inputs"] is False
    assert profile["audio_inputs"] is False
    assert profile["video_inputs"] is False
