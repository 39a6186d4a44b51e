"""The API key never leaks: repr, str, model_dump, dumps, logs, tracing, errors.

Every class the package ships that holds a key is listed explicitly in `CLASSES`
(adding a class means adding a row here).
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx2
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.load import dumps
from langchain_core.messages import BaseMessage

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI, VLLMRerank
from langchain_vllm.errors import VLLMAuthenticationError
from tests.unit_tests.fake_vllm import BASE_URL, FakeVLLM

KEY = "sk-vllm-SECRET-4b1d2f8e"


@dataclass
class Spec:
    """How to build and call one class."""

    cls: type
    call: Callable[[Any], Any]
    acall: Callable[[Any], Any]
    traced: bool  # a LangChain model that reports to callbacks / LangSmith


CLASSES: dict[str, Spec] = {
    "ChatVLLM": Spec(
        ChatVLLM,
        lambda o: o.invoke("hi"),
        lambda o: o.ainvoke("hi"),
        traced=True,
    ),
    "VLLMOpenAI": Spec(
        VLLMOpenAI,
        lambda o: o.invoke("hi"),
        lambda o: o.ainvoke("hi"),
        traced=True,
    ),
    "VLLMEmbeddings": Spec(
        VLLMEmbeddings,
        lambda o: o.embed_query("hi"),
        lambda o: o.aembed_query("hi"),
        traced=False,
    ),
    "VLLMRerank": Spec(
        VLLMRerank,
        lambda o: o.compress_documents([Document("a"), Document("b")], "hi"),
        lambda o: o.acompress_documents([Document("a"), Document("b")], "hi"),
        traced=False,
    ),
}
NAMES = list(CLASSES)
TRACED = [name for name, spec in CLASSES.items() if spec.traced]


def build(name: str, fake: FakeVLLM, **kwargs: Any) -> Any:
    return CLASSES[name].cls(model="smollm2", api_key=KEY, **fake.kwargs(), **kwargs)


def assert_clean(text: str, where: str) -> None:
    assert KEY not in text, f"the API key leaked into {where}"


# -- the object itself --
@pytest.mark.parametrize("name", NAMES)
def test_repr_and_str(fake: FakeVLLM, name: str) -> None:
    obj = build(name, fake)
    assert_clean(repr(obj), "repr")
    assert_clean(str(obj), "str")
    assert_clean(f"{obj!r:}", "format")


@pytest.mark.parametrize("name", NAMES)
def test_key_is_still_usable(fake: FakeVLLM, name: str) -> None:
    """The tests below would pass vacuously if the key were dropped: it is sent."""
    CLASSES[name].call(build(name, fake))
    sent = [r.headers.get("authorization") for r in fake.requests]
    assert sent
    assert all(h == f"Bearer {KEY}" for h in sent)


@pytest.mark.parametrize("name", NAMES)
def test_model_dump(fake: FakeVLLM, name: str) -> None:
    obj = build(name, fake)
    assert_clean(str(obj.model_dump()), "model_dump()")
    assert_clean(repr(obj.model_dump()), "repr(model_dump())")
    assert_clean(
        json.dumps(
            obj.model_dump(mode="json", fallback=repr),
            default=repr,
        ),
        "model_dump(mode='json')",
    )


@pytest.mark.parametrize("name", NAMES)
def test_dumps(fake: FakeVLLM, name: str) -> None:
    obj = build(name, fake)
    assert_clean(dumps(obj), "dumps")
    assert_clean(dumps(obj, pretty=True), "dumps(pretty)")


@pytest.mark.parametrize("name", TRACED)
def test_serialized_secret_points_at_vllm_env(fake: FakeVLLM, name: str) -> None:
    data = json.loads(dumps(build(name, fake)))
    secrets = [
        v
        for v in data["kwargs"].values()
        if isinstance(v, dict) and v.get("type") == "secret"
    ]
    assert secrets == [{"lc": 1, "type": "secret", "id": ["VLLM_API_KEY"]}]


def test_key_from_env_not_in_repr(
    fake: FakeVLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    for name in NAMES:
        obj = CLASSES[name].cls(model="smollm2", **fake.kwargs())
        assert obj.openai_api_key.get_secret_value() == KEY
        assert_clean(repr(obj) + str(obj.model_dump()) + dumps(obj), f"{name} (env)")


@pytest.mark.parametrize("name", ["ChatVLLM", "VLLMOpenAI"])
def test_bound_runnables(fake: FakeVLLM, name: str) -> None:
    bound = build(name, fake).bind(stop=["x"])
    assert_clean(repr(bound), "repr(bind(...))")
    assert_clean(dumps(bound), "dumps(bind(...))")


def test_structured_output_runnable(fake: FakeVLLM) -> None:
    runnable = build("ChatVLLM", fake).with_structured_output(
        {"title": "A", "type": "object", "properties": {"a": {"type": "string"}}}
    )
    assert_clean(repr(runnable), "repr(with_structured_output(...))")


# -- logs --
@pytest.mark.parametrize("name", NAMES)
def test_debug_logs(
    fake: FakeVLLM, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for logger in ("openai", "httpx", "httpx2", "httpcore", "langchain_vllm"):
        caplog.set_level(logging.DEBUG, logger=logger)
    obj = build(name, fake)
    CLASSES[name].call(obj)
    assert caplog.records, "no debug records: the check would be vacuous"
    for record in caplog.records:
        assert_clean(record.getMessage(), f"log record of {record.name}")
        assert_clean(repr(record.args), f"log args of {record.name}")
        assert_clean(repr(vars(record)), f"log record fields of {record.name}")


@pytest.mark.parametrize("name", NAMES)
async def test_debug_logs_async(
    fake: FakeVLLM, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for logger in ("openai", "httpx", "httpx2", "httpcore", "langchain_vllm"):
        caplog.set_level(logging.DEBUG, logger=logger)
    await CLASSES[name].acall(build(name, fake))
    assert caplog.records
    for record in caplog.records:
        assert_clean(repr(vars(record)), f"async log record of {record.name}")


# -- tracing --
class Capture(BaseCallbackHandler):
    """Keeps what callbacks (and so LangSmith) are given at the start of a run."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self.seen.append(json.dumps(serialized, default=repr))
        self.seen.append(repr(kwargs))

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self.seen.append(json.dumps(serialized, default=repr))
        self.seen.append(repr(kwargs))


@pytest.mark.parametrize("name", TRACED)
def test_tracing_metadata(fake: FakeVLLM, name: str) -> None:
    obj = build(name, fake)
    assert_clean(repr(obj._get_ls_params()), "_get_ls_params")
    assert_clean(repr(obj._identifying_params), "_identifying_params")
    capture = Capture()
    obj.invoke("hi", config={"callbacks": [capture]})
    assert len(capture.seen) == 2, "the callback saw no run start"
    assert "VLLM_API_KEY" in capture.seen[0] or "secret" not in capture.seen[0]
    for text in capture.seen:
        assert_clean(text, "callback start payload (serialized, invocation params)")


# -- errors --
def _failing_kwargs(error: Exception) -> dict[str, Any]:
    def fail(request: httpx2.Request) -> httpx2.Response:
        raise error

    async def afail(request: httpx2.Request) -> httpx2.Response:
        raise error

    return {
        "base_url": BASE_URL,
        "http_client": httpx2.Client(transport=httpx2.MockTransport(fail)),
        "http_async_client": httpx2.AsyncClient(transport=httpx2.MockTransport(afail)),
        "max_retries": 0,
    }


def error_text(error: BaseException) -> str:
    """Everything a user would see of an error, causes and context included."""
    return "".join(traceback.format_exception(error)) + repr(error) + str(error.args)


@pytest.mark.parametrize("name", NAMES)
def test_authentication_error(fake: FakeVLLM, name: str) -> None:
    fake.status = 401
    fake.error_body = {"error": "Unauthorized"}
    with pytest.raises(VLLMAuthenticationError) as info:
        CLASSES[name].call(build(name, fake))
    assert "VLLM_API_KEY" in str(info.value)
    assert_clean(error_text(info.value), "the authentication error")


@pytest.mark.parametrize("name", NAMES)
async def test_authentication_error_async(fake: FakeVLLM, name: str) -> None:
    fake.status = 401
    fake.error_body = {"error": "Unauthorized"}
    with pytest.raises(VLLMAuthenticationError) as info:
        await CLASSES[name].acall(build(name, fake))
    assert_clean(error_text(info.value), "the async authentication error")


@pytest.mark.parametrize(
    "error",
    [
        httpx2.ConnectError("connection refused"),
        httpx2.ReadTimeout("timed out"),
    ],
    ids=["connect", "timeout"],
)
@pytest.mark.parametrize("name", NAMES)
def test_transport_errors(name: str, error: Exception) -> None:
    obj = CLASSES[name].cls(model="smollm2", api_key=KEY, **_failing_kwargs(error))
    with pytest.raises(Exception) as info:  # noqa: PT011 - any error; checked below
        CLASSES[name].call(obj)
    assert type(info.value).__module__.startswith("langchain_vllm")
    assert_clean(error_text(info.value), f"the {type(info.value).__name__}")


def test_bad_request_error_with_key_in_body_is_not_ours_to_hide(fake: FakeVLLM) -> None:
    """Local validation errors echo the bad value, never the key."""
    with pytest.raises(ValueError) as info:  # noqa: PT011
        ChatVLLM(model="smollm2", api_key=KEY, min_p=7, **fake.kwargs())
    assert_clean(error_text(info.value), "a validation error")
