"""Bad input: a clear, typed error that names the problem, before the network.

Every case builds its object against `FakeVLLM` and then checks that the fake
recorded zero requests: the mistake was caught locally. The server-side cases
(unknown model, prompt longer than the context) replay the error bodies vLLM 0.32
sends (recorded from the live test server) and are also run live in
`tests/integration_tests/test_faults.py`.

The table of these cases and their results is in docs/RELIABILITY.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI, VLLMRerank
from langchain_vllm.errors import (
    VLLMBadRequestError,
    VLLMContextOverflowError,
    VLLMModelDiscoveryError,
    VLLMModelNotFoundError,
)
from langchain_vllm.structured import StructuredOutputs
from tests.unit_tests.fake_vllm import FakeVLLM

MODEL = "smollm2"


def chat(fake: FakeVLLM, **kwargs: Any) -> ChatVLLM:
    return ChatVLLM(model=MODEL, **fake.kwargs(), **kwargs)


def raises_before_network(
    fake: FakeVLLM,
    error: type[BaseException],
    must_name: list[str],
    action: Callable[[], Any],
) -> BaseException:
    """Run `action`; it must raise `error` whose message names every word in
    `must_name`, and the fake must have seen no request at all."""
    with pytest.raises(error) as info:
        action()
    message = str(info.value)
    for word in must_name:
        assert word in message, f"{word!r} not named in: {message}"
    assert fake.paths() == [], f"requests were sent: {fake.paths()}"
    return info.value


# -- invalid vLLM parameter values and types, at construction --
@pytest.mark.parametrize(
    ("kwargs", "must_name"),
    [
        pytest.param({"min_p": 2}, ["min_p", "less than or equal to 1"], id="min_p=2"),
        pytest.param({"top_k": "x"}, ["top_k", "integer"], id="top_k='x'"),
        pytest.param(
            {"top_k": -2}, ["top_k", "greater than or equal to -1"], id="top_k=-2"
        ),
        pytest.param(
            {"repetition_penalty": 0},
            ["repetition_penalty", "greater than 0"],
            id="repetition_penalty=0",
        ),
        pytest.param({"bad_words": [""]}, ["bad_words", "empty"], id="bad_words=['']"),
        pytest.param(
            {"stop_token_ids": [-1]},
            ["stop_token_ids", "greater than or equal to 0"],
            id="stop_token_ids=[-1]",
        ),
        pytest.param(
            {"allowed_token_ids": []},
            ["allowed_token_ids", "empty"],
            id="allowed_token_ids=[]",
        ),
        pytest.param(
            {"chat_template_kwargs": "enable_thinking"},
            ["chat_template_kwargs", "dict"],
            id="chat_template_kwargs=str",
        ),
        pytest.param(
            {"temperature": "hot"}, ["temperature", "number"], id="temperature='hot'"
        ),
        pytest.param({"n": 0}, ["n must be at least 1"], id="n=0"),
        pytest.param(
            {"max_connections": 0},
            ["max_connections", "greater than 0"],
            id="max_connections=0",
        ),
    ],
)
def test_invalid_init_param(fake: FakeVLLM, kwargs: dict, must_name: list[str]) -> None:
    raises_before_network(fake, ValueError, must_name, lambda: chat(fake, **kwargs))


def test_negative_max_retries(fake: FakeVLLM) -> None:
    kwargs = {**fake.kwargs(), "max_retries": -1}
    raises_before_network(
        fake, ValueError, ["max_retries"], lambda: ChatVLLM(model=MODEL, **kwargs)
    )


# -- OpenAI's own sampling parameters: vLLM refuses them with HTTP 400 --
# ChatOpenAI does not check these locally; the ranges are vLLM's (its
# protocol.py / SamplingParams._verify_args), so they are knowable before the network.
@pytest.mark.parametrize(
    ("kwargs", "must_name"),
    [
        pytest.param({"temperature": -1.0}, ["temperature"], id="temperature=-1"),
        pytest.param({"top_p": 1.5}, ["top_p"], id="top_p=1.5"),
        pytest.param({"max_tokens": 0}, ["max_tokens"], id="max_tokens=0"),
        pytest.param(
            {"presence_penalty": 5.0}, ["presence_penalty"], id="presence_penalty=5"
        ),
    ],
)
def test_invalid_openai_sampling_param(
    fake: FakeVLLM, kwargs: dict, must_name: list[str]
) -> None:
    raises_before_network(
        fake, ValueError, must_name, lambda: chat(fake, **kwargs).invoke("hi")
    )


# -- per-call values (invoke kwargs, bind) --
@pytest.mark.parametrize(
    ("kwargs", "must_name"),
    [
        pytest.param(
            {"min_p": 3}, ["min_p", "less than or equal to 1"], id="call-min_p=3"
        ),
        pytest.param({"top_k": "x"}, ["top_k", "integer"], id="call-top_k='x'"),
        pytest.param({"min_tokens": -1}, ["min_tokens"], id="call-min_tokens=-1"),
        pytest.param(
            {"structured_outputs": {"regex": "("}},
            ["structured_outputs", "regex", "not a valid regular expression"],
            id="call-invalid-regex",
        ),
        pytest.param({"temperature": -3.0}, ["temperature"], id="call-temperature=-3"),
        pytest.param({"max_tokens": -3}, ["max_tokens"], id="call-max_tokens=-3"),
    ],
)
def test_invalid_call_param(fake: FakeVLLM, kwargs: dict, must_name: list[str]) -> None:
    model = chat(fake)
    raises_before_network(
        fake, ValueError, must_name, lambda: model.invoke("hi", **kwargs)
    )


def test_invalid_bound_param(fake: FakeVLLM) -> None:
    bound = chat(fake).bind(top_k=1.5)
    raises_before_network(fake, ValueError, ["top_k"], lambda: bound.invoke("hi"))


async def test_invalid_call_param_async(fake: FakeVLLM) -> None:
    model = chat(fake)
    with pytest.raises(ValueError, match="min_p"):
        await model.ainvoke("hi", min_p=-0.5)
    assert fake.paths() == []


def test_invalid_call_param_stream(fake: FakeVLLM) -> None:
    model = chat(fake)
    raises_before_network(
        fake,
        ValueError,
        ["repetition_penalty"],
        lambda: list(model.stream("hi", repetition_penalty=-1)),
    )


def test_unknown_call_param(fake: FakeVLLM) -> None:
    """A misspelt keyword is refused by name, not sent to the server."""
    model = chat(fake)
    raises_before_network(
        fake, TypeError, ["top_kk"], lambda: model.invoke("hi", top_kk=3)
    )


# -- structured-output constraints --
@pytest.mark.parametrize(
    ("constraint", "must_name"),
    [
        pytest.param(
            {"choice": ["a", "b"], "regex": "a+"},
            ["exactly one constraint", "choice, regex"],
            id="conflicting-choice-regex",
        ),
        pytest.param({}, ["exactly one constraint", "none"], id="no-constraint"),
        pytest.param(
            {"regex": "a("},
            ["regex", "not a valid regular expression"],
            id="invalid-regex",
        ),
        pytest.param(
            {"json": {"type": "strin"}},
            ["unknown type 'strin'"],
            id="invalid-json-schema-type",
        ),
        pytest.param(
            {"json": {"type": "object", "properties": {"a": {"type": "integr"}}}},
            ["#/properties/a", "integr"],
            id="invalid-nested-schema",
        ),
        pytest.param(
            {"json": {"type": "object", "required": "a"}},
            ["required"],
            id="schema-required-not-list",
        ),
        pytest.param(
            {"json": "{not json"}, ["not valid JSON"], id="schema-string-not-json"
        ),
        pytest.param({"choice": []}, ["choice", "non-empty"], id="empty-choice"),
        pytest.param({"grammar": "  "}, ["grammar", "empty"], id="empty-grammar"),
        pytest.param(
            {"structural_tag": "{oops"},
            ["structural_tag", "not valid JSON"],
            id="structural-tag-not-json",
        ),
        pytest.param({"chioce": ["a"]}, ["chioce", "Extra inputs"], id="misspelt-kind"),
    ],
)
def test_invalid_structured_outputs(
    fake: FakeVLLM, constraint: dict, must_name: list[str]
) -> None:
    raises_before_network(
        fake, ValueError, must_name, lambda: chat(fake, structured_outputs=constraint)
    )


def test_structured_outputs_and_legacy_both(fake: FakeVLLM) -> None:
    model = chat(fake)
    raises_before_network(
        fake,
        ValueError,
        ["structured_outputs", "guided_regex", "not both"],
        lambda: model.invoke(
            "hi", structured_outputs={"choice": ["a"]}, guided_regex="a+"
        ),
    )


def test_invalid_legacy_constraint(fake: FakeVLLM) -> None:
    model = chat(fake)
    raises_before_network(
        fake,
        ValueError,
        ["regex", "not a valid regular expression"],
        lambda: model.invoke("hi", guided_regex="(unclosed"),
    )


def test_structured_outputs_type_rejects_schema_of_wrong_type() -> None:
    with pytest.raises(TypeError, match="JSON schema must be a dict"):
        StructuredOutputs.model_validate({"json": 42})


# -- messages --
def test_empty_message_list(fake: FakeVLLM) -> None:
    """vLLM answers an empty conversation with HTTP 400 ("Cannot apply chat template
    to an empty conversation"): knowable locally."""
    model = chat(fake)
    raises_before_network(fake, ValueError, ["message"], lambda: model.invoke([]))


def test_empty_message_list_stream(fake: FakeVLLM) -> None:
    model = chat(fake)
    raises_before_network(fake, ValueError, ["message"], lambda: list(model.stream([])))


def test_unknown_message_role(fake: FakeVLLM) -> None:
    model = chat(fake)
    raises_before_network(
        fake, ValueError, ["wizard"], lambda: model.invoke([("wizard", "hi")])
    )


def test_input_of_wrong_type(fake: FakeVLLM) -> None:
    model = chat(fake)
    raises_before_network(
        fake,
        ValueError,
        ["Invalid input type", "int"],
        lambda: model.invoke(42),  # type: ignore[arg-type]
    )


# -- base URL --
@pytest.mark.parametrize(
    "url",
    [
        pytest.param("not a url", id="words"),
        pytest.param("localhost:8000/v1", id="no-scheme"),
        pytest.param("ftp://vllm.test/v1", id="ftp-scheme"),
    ],
)
def test_base_url_not_http(fake: FakeVLLM, url: str) -> None:
    """A base URL that is not http(s) is refused at construction, by name."""
    raises_before_network(
        fake, ValueError, ["base_url", url], lambda: ChatVLLM(model=MODEL, base_url=url)
    )


# -- tools --
def test_tool_with_invalid_parameter_schema(fake: FakeVLLM) -> None:
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "objekt"}},
    }
    model = chat(fake)
    raises_before_network(
        fake,
        ValueError,
        ["`f`", "objekt"],
        lambda: model.bind_tools([tool]).invoke("hi"),
    )


def test_tool_without_name(fake: FakeVLLM) -> None:
    tool = {"type": "function", "function": {"parameters": {"type": "object"}}}
    model = chat(fake)
    raises_before_network(
        fake, ValueError, ["no name"], lambda: model.bind_tools([tool]).invoke("hi")
    )


def test_tool_not_a_tool(fake: FakeVLLM) -> None:
    model = chat(fake)
    raises_before_network(fake, ValueError, ["42"], lambda: model.bind_tools([42]))  # type: ignore[list-item]


def test_tool_choice_names_unknown_tool(fake: FakeVLLM) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    model = chat(fake)
    raises_before_network(
        fake,
        ValueError,
        ["multiply"],
        lambda: model.bind_tools([add], tool_choice="multiply").invoke("hi"),
    )


def test_structured_output_schema_without_title(fake: FakeVLLM) -> None:
    model = chat(fake)
    raises_before_network(
        fake,
        ValueError,
        ["title"],
        lambda: model.with_structured_output({"type": "object"}).invoke("hi"),
    )


# -- server-side knowledge: unknown model, context overflow, zero/several models --
# The bodies below are vLLM 0.32's answers, recorded from the live test server.
def test_unknown_model_lists_served_models(fake: FakeVLLM) -> None:
    fake.status = 404
    fake.error_body = {
        "error": {
            "message": "The model `nope` does not exist. Valid aliases: smollm2.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }
    model = ChatVLLM(model="nope", **fake.kwargs())
    with pytest.raises(VLLMModelNotFoundError) as info:
        model.invoke("hi")
    message = str(info.value)
    assert "nope" in message
    assert "Served models: smollm2" in message
    assert fake.last_body()["model"] == "nope"


async def test_unknown_model_lists_served_models_async(fake: FakeVLLM) -> None:
    fake.status = 404
    fake.error_body = {
        "error": {"message": "The model `nope` does not exist.", "code": 404}
    }
    model = ChatVLLM(model="nope", **fake.kwargs())
    with pytest.raises(VLLMModelNotFoundError, match="Served models: smollm2"):
        await model.ainvoke("hi")


def test_unknown_model_lists_adapters_with_their_base(fake: FakeVLLM) -> None:
    """Every error lists the served models one way (`models.describe`)."""
    fake.adapters = {"pine": "/adapters/pine"}
    fake.status = 404
    fake.error_body = {"error": {"message": "The model `nope` does not exist."}}
    with pytest.raises(VLLMModelNotFoundError) as info:
        ChatVLLM(model="nope", **fake.kwargs()).invoke("hi")
    assert "Served models: smollm2 (adapters: pine)." in str(info.value)


CONTEXT_OVERFLOW_0_32 = (
    "This model's maximum context length is 2048 tokens. However, your prompt "
    "contains at least 2049 input tokens, which exceeds this limit even without any "
    "output tokens. Please reduce the length of the input prompt. "
    "(parameter=input_tokens, value=2049)"
)
CONTEXT_OVERFLOW_OLDER = (
    "This model's maximum context length is 2048 tokens. However, you requested "
    "3010 tokens (3000 in the messages, 10 in the completion). Please reduce the "
    "length of the messages or completion."
)


@pytest.mark.parametrize(
    ("server_message", "prompt_tokens"),
    [
        pytest.param(CONTEXT_OVERFLOW_0_32, "at least 2049", id="vllm-0.32"),
        pytest.param(CONTEXT_OVERFLOW_OLDER, "3000", id="older-vllm"),
    ],
)
def test_context_overflow_gives_numbers(
    fake: FakeVLLM, server_message: str, prompt_tokens: str
) -> None:
    fake.status = 400
    fake.error_body = {
        "error": {"message": server_message, "type": "BadRequestError", "code": 400}
    }
    with pytest.raises(VLLMContextOverflowError) as info:
        chat(fake).invoke("word " * 3000)
    message = str(info.value)
    assert f"The prompt has {prompt_tokens} tokens" in message
    assert "context is 2048 tokens" in message


def test_max_tokens_above_context_is_bad_request(fake: FakeVLLM) -> None:
    fake.status = 400
    fake.error_body = {
        "error": {
            "message": "max_tokens=5000 cannot be greater than max_model_len=2048. "
            "Please request fewer output tokens. (parameter=max_tokens, value=5000)",
            "code": 400,
        }
    }
    with pytest.raises(VLLMBadRequestError, match="max_tokens=5000"):
        chat(fake).invoke("hi", max_tokens=5000)


def test_no_model_served(fake: FakeVLLM) -> None:
    fake.models = []
    model = ChatVLLM(**fake.kwargs())
    with pytest.raises(VLLMModelDiscoveryError, match="serves no model"):
        model.invoke("hi")
    assert fake.paths() == ["GET /v1/models"]


def test_several_models_served_without_model(fake: FakeVLLM) -> None:
    fake.models = ["a", "b"]
    model = ChatVLLM(**fake.kwargs())
    with pytest.raises(
        VLLMModelDiscoveryError, match=r"several models \(a, b\).*model="
    ):
        model.invoke([HumanMessage("hi")])
    assert fake.paths() == ["GET /v1/models"]


# -- the other classes: completions, embeddings, rerank --
CLASS_CASES: dict[str, tuple[type[BaseException], list[str], Callable[..., Any]]] = {
    "completions-min_p=2": (
        ValueError,
        ["min_p"],
        lambda f: VLLMOpenAI(model=MODEL, min_p=2, **f.kwargs()),
    ),
    "completions-call-top_k='x'": (
        ValueError,
        ["top_k", "integer"],
        lambda f: VLLMOpenAI(model=MODEL, **f.kwargs()).invoke("hi", top_k="x"),
    ),
    "completions-conflicting-constraints": (
        ValueError,
        ["exactly one constraint"],
        lambda f: VLLMOpenAI(model=MODEL, **f.kwargs()).invoke(
            "hi", structured_outputs={"choice": ["a"], "regex": "b"}
        ),
    ),
    "embeddings-text-not-str": (
        TypeError,
        ["Text 0", "int"],
        lambda f: VLLMEmbeddings(model=MODEL, **f.kwargs()).embed_documents([1]),  # type: ignore[list-item]
    ),
    "embeddings-one-string-as-list": (
        TypeError,
        ["embed_query"],
        lambda f: VLLMEmbeddings(model=MODEL, **f.kwargs()).embed_documents("abc"),  # type: ignore[arg-type]
    ),
    "embeddings-chunk_size=0": (
        ValueError,
        ["chunk_size"],
        lambda f: VLLMEmbeddings(model=MODEL, chunk_size=0, **f.kwargs()),
    ),
    "embeddings-truncate_prompt_tokens=-2": (
        ValueError,
        ["truncate_prompt_tokens"],
        lambda f: VLLMEmbeddings(model=MODEL, truncate_prompt_tokens=-2, **f.kwargs()),
    ),
    "rerank-top_n=0": (
        ValueError,
        ["top_n"],
        lambda f: VLLMRerank(model=MODEL, top_n=0, **f.kwargs()),
    ),
    "rerank-query-not-str": (
        TypeError,
        ["query", "int"],
        lambda f: VLLMRerank(model=MODEL, **f.kwargs()).rerank(5, ["a"]),  # type: ignore[arg-type]
    ),
    "rerank-texts-one-string": (
        TypeError,
        ["texts", "one string"],
        lambda f: VLLMRerank(model=MODEL, **f.kwargs()).rerank("q", "abc"),
    ),
}


@pytest.mark.parametrize("case", list(CLASS_CASES))
def test_other_classes_bad_input(fake: FakeVLLM, case: str) -> None:
    error, must_name, action = CLASS_CASES[case]
    raises_before_network(fake, error, must_name, lambda: action(fake))


@pytest.mark.parametrize(
    "cls", [VLLMOpenAI, VLLMEmbeddings, VLLMRerank], ids=lambda c: c.__name__
)
def test_other_classes_base_url_not_http(fake: FakeVLLM, cls: type) -> None:
    raises_before_network(
        fake,
        ValueError,
        ["base_url", "not a url"],
        lambda: cls(model=MODEL, base_url="not a url"),
    )


# -- values that conflict only once instance and call are merged --
def test_min_tokens_above_max_tokens_after_merge(fake: FakeVLLM) -> None:
    model = chat(fake, min_tokens=8)
    raises_before_network(
        fake,
        ValueError,
        ["min_tokens=8", "max_tokens=1"],
        lambda: model.invoke("hi", max_tokens=1),
    )


def test_prompt_logprobs_in_a_stream(fake: FakeVLLM) -> None:
    model = chat(fake, prompt_logprobs=1)
    raises_before_network(
        fake,
        ValueError,
        ["prompt_logprobs", "stream"],
        lambda: list(model.stream("hi")),
    )
