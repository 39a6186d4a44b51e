"""The declared vLLM parameters match the request models of the rig's vLLM (0.32).

Read from the installed server's source (not a hand list): every field of vLLM's
Chat Completions, Completions and Responses request models is either declared once
in `langchain_vllm.params`, one of OpenAI's own fields (the parent classes send
them), or left out on purpose (below, with the reason). A vLLM upgrade that adds a
field fails here until it is declared or listed.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from langchain_vllm._versions import (
    CHAT_PARAMS_SINCE,
    COMPLETION_PARAMS_SINCE,
    version_tuple,
)
from langchain_vllm.params import (
    RESPONSES_PARAMS,
    TEMPLATE_SWITCHES,
    VLLMChatParams,
    VLLMCompletionParams,
    param_names,
)
from rig import RIG_VLLM_VERSION, rig_python

OPENAI_COMMON = {
    "model", "stream", "stream_options", "temperature", "top_p", "n", "seed",
    "stop", "max_tokens", "frequency_penalty", "presence_penalty", "logit_bias",
    "logprobs", "response_format", "user",
}  # fmt: skip
OPENAI_CHAT = {
    "messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice",
    "parallel_tool_calls", "reasoning_effort",
}  # fmt: skip
OPENAI_FIELDS = {
    "chat": OPENAI_COMMON | OPENAI_CHAT,
    "completions": OPENAI_COMMON | {"prompt", "echo", "suffix"},
}
"""OpenAI's fields of each request: `ChatOpenAI` / `BaseOpenAI` send them."""

LEFT_OUT = {
    "mm_payload": "render endpoints only (/v1/chat/completions/render)",
    "return_mm_kwargs": "deprecated alias of mm_payload (render endpoints)",
    "return_token_offsets": "render endpoints only",
    "routed_experts_prompt_start": "mixture-of-experts routing data only",
    "prompt_embeds": "tensors, not JSON a LangChain input can carry",
}
"""vLLM request fields not declared, and why."""

SOURCES = {
    "chat": ("chat_completion/protocol.py", "ChatCompletionRequest"),
    "completions": ("completion/protocol.py", "CompletionRequest"),
    "responses": ("responses/protocol.py", "ResponsesRequest"),
}


@cache
def request_fields(endpoint: str) -> frozenset[str]:
    """The public field names of one vLLM request model, from the rig's source."""
    site = next(rig_python().parent.parent.glob("lib/python*/site-packages"), None)
    if site is None:
        pytest.fail(f"No vLLM in the rig ({rig_python()}): run `make rig`")
    rel, name = SOURCES[endpoint]
    path = Path(site, "vllm/entrypoints/openai", rel)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    cls = next(
        n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name
    )
    assert [ast.unparse(b) for b in cls.bases] == ["OpenAIBaseModel"], (
        f"{name} has new base classes: read their fields too"
    )
    return frozenset(
        n.target.id
        for n in cls.body
        if isinstance(n, ast.AnnAssign)
        and isinstance(n.target, ast.Name)
        and not n.target.id.startswith("_")
    )


@pytest.mark.parametrize(
    ("endpoint", "mixin"),
    [("chat", VLLMChatParams), ("completions", VLLMCompletionParams)],
)
def test_every_request_field_is_declared_or_left_out_on_purpose(
    endpoint: str, mixin: type
) -> None:
    """Declared parameters newer than the rig's vLLM (`_versions`' tables) are the
    only ones it lacks; they are refused by name when sent to it."""
    fields = request_fields(endpoint)
    since = CHAT_PARAMS_SINCE if endpoint == "chat" else COMPLETION_PARAMS_SINCE
    rig = version_tuple(RIG_VLLM_VERSION)
    newer = {name for name, release in since.items() if release > rig}
    assert not newer & fields, f"read by vLLM {RIG_VLLM_VERSION}: {newer & fields}"
    declared = set(param_names(mixin)) - TEMPLATE_SWITCHES  # sent as template kwargs
    declared -= newer
    assert declared <= fields, f"declared but not read by vLLM: {declared - fields}"
    unaccounted = fields - declared - OPENAI_FIELDS[endpoint] - set(LEFT_OUT)
    assert not unaccounted, f"vLLM {endpoint} fields not declared: {unaccounted}"


def test_responses_params_are_the_declared_ones_vllm_reads_there() -> None:
    """`RESPONSES_PARAMS` is exactly the declared chat parameters that vLLM reads
    on `/v1/responses` (ChatVLLM refuses the others with `use_responses_api`)."""
    fields = request_fields("responses")
    assert {"input", "max_output_tokens", "previous_response_id"} <= fields
    assert set(param_names(VLLMChatParams)) & fields == RESPONSES_PARAMS
    assert not TEMPLATE_SWITCHES & fields, "now a vLLM field: send it as such"
