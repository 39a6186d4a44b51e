"""langchain-tests' standard integration suite, live against the rig's servers.

`TestChatVLLMStandard` runs the whole suite against the chat server;
`TestChatVLLMVisionStandard` runs its multimodal tests against the vision server.
"""

from __future__ import annotations

import httpx2
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_vllm import ChatVLLM
from tests.integration_tests.conftest import RIG
from tests.integration_tests.media import LocalMirror, fetch_standard_image


class TestChatVLLMStandard(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatVLLM]:
        return ChatVLLM

    @property
    def chat_model_params(self) -> dict:
        # No model: the served one is discovered. The server starts on first use.
        return {
            "base_url": RIG.url("chat"),
            "temperature": 0,
            # The suite's jokes have free-text strings; the 135M model can keep
            # writing inside one until the token limit (seen: 2004 of 2048 tokens).
            # Bounded strings make every enforced JSON answer close, whatever the
            # model writes (with the rig's `disable_any_whitespace`, the answer's
            # length is bounded by the schema).
            "max_json_string_length": 30,
            # The 135M model often loops to its 2048-token window on the suite's
            # open questions (test_conversation: 116 s); 256 tokens answer every
            # test.
            "max_tokens": 256,
            # `tool_choice="any"` with vLLM's default parallel_tool_calls lets the
            # model emit several calls; the suite expects exactly one.
            "model_kwargs": {"parallel_tool_calls": False},
        }

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @pytest.fixture
    def model(self, request: pytest.FixtureRequest) -> BaseChatModel:
        """The suite's model; `test_agent_loop` gets `tool_choice="required"`.

        That test binds a tool with `tool_choice` left on auto, so whether the
        135M model calls it would be the model's choice (at temperature 0 it
        answers the weather question in text). With "required", vLLM enforces one
        call by structured decoding: the outcome is the package's (the call, its
        id going back with the tool result, the second answer), not the model's.
        """
        params = {
            **self.standard_chat_model_params,
            **self.chat_model_params,
            **(getattr(request, "param", None) or {}),
        }
        if request.node.originalname == "test_agent_loop":
            kwargs = params.get("model_kwargs", {})
            params["model_kwargs"] = {**kwargs, "tool_choice": "required"}
        if request.node.originalname == "test_tool_calling_with_no_arguments":
            params["extra_body"] = {"logit_bias": close_braces(params["base_url"])}
        return self.chat_model_class(**params)


def close_braces(base_url: str) -> dict[str, float]:
    """`logit_bias` that makes `}` win wherever the grammar allows it.

    A forced call of a tool without parameters: vLLM's hermes structural tag
    enforces `{"name": ..., "arguments": {...}}` but lets JSON whitespace run free
    inside it (the server's `disable_any_whitespace` is not applied to structural
    tags in 0.32), and the 135M model, greedy, sometimes writes whitespace into
    the empty arguments until the token limit (seen under the suite's load; the
    answer then has no call). Inside empty arguments only whitespace or `}` is
    allowed, so with `}` favoured the call always closes: the outcome is the
    package's (the call parsed, its id), not the model's.
    """
    ids = ChatVLLM(base_url=base_url).get_token_ids("}")
    assert len(ids) == 1, ids
    return {str(ids[0]): 100.0}


class TestChatVLLMResponsesStandard(TestChatVLLMStandard):
    """The same suite through vLLM's Responses API (`/v1/responses`)."""

    @property
    def chat_model_params(self) -> dict:
        return {
            **super().chat_model_params,
            "use_responses_api": True,
        }


class TestChatVLLMVisionStandard(TestChatVLLMStandard):
    """The suite's image tests, live against the rig's vision server.

    The synthetic vision model's answers are noise, but these tests only check
    that an AIMessage comes back for images sent as OpenAI `image_url` data URLs,
    LangChain `image` blocks (base64 and URL), Anthropic `source` blocks and
    images in ToolMessages: the plumbing, which is real. The image URL is the
    suite's GitHub one; the rig has no internet, so the client's transport
    (`LocalMirror`) points it at a local HTTP server, which the vLLM server then
    fetches, and the suite's own download gets the same image.
    """

    only_tests = frozenset(
        {
            "test_image_inputs",
            "test_image_tool_message",
            "test_anthropic_inputs",
            "test_audio_inputs",
            "test_pdf_inputs",
            "test_pdf_tool_message",
            "test_invoke",
            "test_stream",
            "test_no_overrides_DO_NOT_OVERRIDE",
        }
    )
    """The multimodal tests (PDF and audio skip, as the suite's flags say), plus
    plain invoke and stream as a smoke test: the rest of the suite runs against
    the chat server, with the same text model and flags."""

    @pytest.fixture(autouse=True)
    def _mirror_standard_image(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from langchain_tests.integration_tests import chat_models as suite

        monkeypatch.setattr(suite.httpx, "get", fetch_standard_image)

    @property
    def chat_model_params(self) -> dict:
        return {
            **super().chat_model_params,
            "base_url": RIG.url("vision"),
            # Noise rarely ends by itself: bounded answers keep the tests short.
            "max_tokens": 16,
            "http_client": httpx2.Client(transport=LocalMirror()),
        }

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True
