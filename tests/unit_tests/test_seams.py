"""Each private upstream seam taken away in turn: the public path, the same results.

`langchain_vllm._seams` holds every private name of openai, httpx2, langchain-openai,
langchain-core and pydantic the package touches. Here each seam is made to fail its
check (as if the upstream name were gone), then ChatVLLM (invoke, stream, ainvoke,
astream, a retry after a 500, a 404, raw responses with headers, the Responses API),
VLLMOpenAI and VLLMEmbeddings (the same calls) and the checked prompt template run
against the fake server (httpx MockTransport), and must give what they give with
every seam in place: the same messages, chunks, vectors and errors, and the same
requests on the wire. Each seam that the calls use must log exactly one debug line
naming it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompt_values import ChatPromptValue, StringPromptValue

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI
from langchain_vllm import _seams as seams
from langchain_vllm.prompts import chat_prompt
from tests.unit_tests.fake_vllm import RawFakeVLLM, sse
from tests.unit_tests.test_responses import recorded

UNUSED = {seams.CONVERT_INPUT}
"""Seams no call here goes through: LangChain hands `_generate` a message list,
which `_chat_request` takes as it is; `convert_input` (other inputs, e.g.
`get_prompt_text("...")`) is checked on its own below."""


class FlakyFake(RawFakeVLLM):
    """A fake whose next `fail` requests to a generation route answer 500."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if self.fail and path.endswith(("/completions", "/embeddings", "/responses")):
            self.fail -= 1
            self.requests.append(request)
            return httpx2.Response(
                500,
                json={"error": {"message": "busy", "type": "Error", "code": 500}},
                headers={"retry-after-ms": "1"},
            )
        return super().handler(request)


# -- what a run gives, in comparable form -----------------------------------------
def _dump(message: Any) -> dict[str, Any]:
    return message.model_dump(exclude={"id"})  # ids are made per run


def _error(e: BaseException) -> tuple[str, str, str]:
    return ("error", f"{type(e).__module__}.{type(e).__qualname__}", str(e))


def _collect(run: Callable[[], Any]) -> Any:
    try:
        return run()
    except Exception as e:
        return _error(e)


async def _acollect(run: Callable[[], Any]) -> Any:
    try:
        return await run()
    except Exception as e:
        return _error(e)


async def _alist(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def _chat_calls(chat: ChatVLLM, **kw: Any) -> dict[str, Any]:
    """invoke, stream, ainvoke, astream of one model: dumps (or errors)."""
    return {
        "invoke": _collect(lambda: _dump(chat.invoke("Hi", **kw))),
        "stream": _collect(lambda: [_dump(c) for c in chat.stream("Hi", **kw)]),
        "ainvoke": asyncio.run(_acollect(lambda: _adump(chat.ainvoke("Hi", **kw)))),
        "astream": asyncio.run(_acollect(lambda: _adumps(chat.astream("Hi", **kw)))),
    }


async def _adump(call: Any) -> dict[str, Any]:
    return _dump(await call)


async def _adumps(stream: Any) -> list[dict[str, Any]]:
    return [_dump(c) for c in await _alist(stream)]


def _wire(fake: RawFakeVLLM) -> list[tuple[str, str, Any]]:
    """Each request's method, path and JSON body (the SDK orders keys its way)."""
    return [
        (r.method, r.url.path, json.loads(r.content) if r.content else None)
        for r in fake.requests
    ]


def chat_runs() -> dict[str, Any]:
    """ChatVLLM on Chat Completions: plain, retried, refused, with raw headers."""
    out: dict[str, Any] = {}
    fake = FlakyFake()
    out["chat"] = _chat_calls(ChatVLLM(**fake.kwargs()))
    out["chat wire"] = _wire(fake)
    fake = FlakyFake()
    retried = ChatVLLM(**{**fake.kwargs(), "max_retries": 2})
    fake.fail = 1
    out["retry invoke"] = _collect(lambda: _dump(retried.invoke("Hi")))
    fake.fail = 1
    out["retry astream"] = asyncio.run(
        _acollect(lambda: _adumps(retried.astream("Hi")))
    )
    out["retry wire"] = _wire(fake)
    fake = FlakyFake()
    fake.status = 404
    out["404"] = _chat_calls(ChatVLLM(**fake.kwargs()))
    fake = FlakyFake()
    headers = ChatVLLM(**fake.kwargs(), include_response_headers=True)
    out["raw"] = _chat_calls(headers)
    out["raw per-call"] = _chat_calls(headers, extra_headers={"x-a": "1"})
    out["raw wire"] = _wire(fake)
    return out


def responses_runs() -> dict[str, Any]:
    """ChatVLLM on the Responses API: a text answer, whole and streamed."""
    events = recorded("text")
    fake = FlakyFake()
    chat = ChatVLLM(use_responses_api=True, **fake.kwargs())
    fake.raw["/responses"] = (200, "text/event-stream", sse(*events, done=False))
    streamed = {
        "stream": _collect(lambda: [c.text for c in chat.stream("Hi")]),
        "astream": asyncio.run(_acollect(lambda: _atexts(chat.astream("Hi")))),
    }
    whole = events[-1]["response"]
    fake.raw["/responses"] = (200, "application/json", _json(whole))
    return {
        **streamed,
        "invoke": _collect(lambda: chat.invoke("Hi").text),
        "wire": _wire(fake),
    }


async def _atexts(stream: Any) -> list[str]:
    return [c.text for c in await _alist(stream)]


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def other_runs() -> dict[str, Any]:
    """VLLMOpenAI and VLLMEmbeddings: calls, a retry and a 404."""
    fake = FlakyFake()
    llm = VLLMOpenAI(**{**fake.kwargs(), "max_retries": 2})
    emb = VLLMEmbeddings(**{**fake.kwargs(), "max_retries": 2})
    out: dict[str, Any] = {
        "llm invoke": _collect(lambda: llm.invoke("Hi")),
        "llm stream": _collect(lambda: list(llm.stream("Hi"))),
        "llm ainvoke": asyncio.run(_acollect(lambda: llm.ainvoke("Hi"))),
        "llm astream": asyncio.run(_acollect(lambda: _alist(llm.astream("Hi")))),
        "emb docs": _collect(lambda: emb.embed_documents(["a", "bc"])),
        "emb aquery": asyncio.run(_acollect(lambda: emb.aembed_query("abc"))),
    }
    fake.fail = 1
    out["llm retry"] = _collect(lambda: llm.invoke("Hi"))
    fake.fail = 1
    out["emb retry"] = asyncio.run(_acollect(lambda: emb.aembed_documents(["x"])))
    fake.status = 404
    out["llm 404"] = _collect(lambda: llm.invoke("Hi"))
    out["emb 404"] = asyncio.run(_acollect(lambda: emb.aembed_query("x")))
    out["wire"] = _wire(fake)
    return out


def prompt_runs() -> dict[str, Any]:
    """The checked prompt template: formatted, and refused variables."""
    prompt = chat_prompt("You speak {lang}.")
    return {
        "invoke": _collect(lambda: prompt.invoke({"lang": "it", "input": "hi"})),
        "missing": _collect(lambda: prompt.invoke({"lang": "it"})),
        "extra": asyncio.run(
            _acollect(lambda: prompt.ainvoke({"lang": "it", "input": "x", "typo": 1}))
        ),
        "batch": _collect(lambda: prompt.batch([{"lang": "it"}])),
    }


def all_runs() -> dict[str, Any]:
    return {
        "chat": chat_runs(),
        "responses": responses_runs(),
        "other": other_runs(),
        "prompt": prompt_runs(),
    }


@pytest.fixture(scope="module")
def fast() -> dict[str, Any]:
    """Every run with every seam in place (the fast paths)."""
    for seam in (*seams.SEAMS, *seams.DERIVED):
        assert seam.ok, f"{seam.name} does not hold here: test_contract says why"
    return all_runs()


def take_away(monkeypatch: pytest.MonkeyPatch, seam: seams.Seam) -> None:
    """Make `seam` fail its check at its next use, as if upstream dropped it."""

    def gone() -> Any:
        msg = f"{seam.name} taken away by the test"
        raise AttributeError(msg)

    monkeypatch.setattr(seam, "_load", gone)
    for checked in (*seams.SEAMS, *seams.DERIVED):
        monkeypatch.setattr(checked, "_value", seams.UNCHECKED)


@pytest.fixture
def seam_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="langchain_vllm"):
        yield caplog


@pytest.mark.parametrize("seam", seams.SEAMS, ids=lambda seam: seam.name)
def test_each_seam_taken_away_gives_the_same_results(
    seam: seams.Seam,
    fast: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    seam_log: pytest.LogCaptureFixture,
) -> None:
    take_away(monkeypatch, seam)
    public = all_runs()
    for part, runs in fast.items():
        for name, expected in runs.items():
            assert public[part][name] == expected, f"{part}: {name}"
    lines = [r for r in seam_log.records if seam.name in r.getMessage()]
    if seam in UNUSED:
        assert not lines
    else:
        assert len(lines) == 1, [r.getMessage() for r in seam_log.records]
        assert lines[0].levelno == logging.DEBUG
        assert seam.public in lines[0].getMessage()


def test_the_runs_exercise_what_they_claim(fast: dict[str, Any]) -> None:
    """The baseline is not vacuous: answers, retries, typed errors, headers."""
    chat = fast["chat"]
    assert chat["chat"]["invoke"]["content"] == "Hello!"
    assert "".join(c["content"] for c in chat["chat"]["stream"]) == "Hello!"
    assert chat["retry invoke"] == chat["chat"]["invoke"]
    posts = [w for w in chat["retry wire"] if w[1].endswith("/chat/completions")]
    assert len(posts) == 4  # two calls, each retried once
    for name in ("invoke", "stream", "ainvoke", "astream"):
        kind, error, _ = chat["404"][name]
        assert kind == "error"
        assert error.endswith("ModelNotFoundError")  # typed: a NotFoundError too
    assert "headers" in chat["raw"]["invoke"]["response_metadata"]
    assert "headers" in chat["raw per-call"]["invoke"]["response_metadata"]
    assert "".join(fast["responses"]["stream"]) == fast["responses"]["invoke"]
    other = fast["other"]
    assert other["llm retry"] == other["llm invoke"] == " Paris."
    assert other["emb 404"][0] == other["llm 404"][0] == "error"
    assert fast["prompt"]["missing"][1] == "langchain_vllm.prompts.PromptVariablesError"
    assert fast["prompt"]["extra"][1] == "langchain_vllm.prompts.PromptVariablesError"


def test_import_never_checks_a_seam() -> None:
    """Importing the package looks up no private name (checks are lazy)."""
    import subprocess
    import sys

    code = (
        "import langchain_vllm, langchain_vllm._seams as s;"
        "print(sum(x._value is not s.UNCHECKED for x in s.SEAMS))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"


@pytest.mark.parametrize(
    "given",
    [
        "hi",
        [HumanMessage("hi"), AIMessage("yo")],
        [("human", "hi"), ("ai", "yo")],
        ChatPromptValue(messages=[HumanMessage("hi")]),
        StringPromptValue(text="hi"),
        42,
    ],
)
def test_convert_input_public_path_equals_the_private(
    given: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = ChatVLLM(model="m", base_url="http://vllm.test/v1")
    private = _collect(lambda: seams.convert_input(chat, given))
    take_away(monkeypatch, seams.CONVERT_INPUT)
    public = _collect(lambda: seams.convert_input(chat, given))
    assert public == private
    assert not seams.CONVERT_INPUT.ok


GONE = """
import json, logging, sys
import httpx2, openai
import openai._constants, openai._httpx2, openai._models, openai._streaming
import openai._utils._json
import langchain_openai.chat_models.base as lc_base
# what openai 3.0-3.29 lacked, and more: names our fast paths read, gone
sys.modules["openai._streaming_cleanup"] = None  # importing it fails
for module, name in (
    (openai._httpx2, "request_exceptions"), (openai._models, "FinalRequestOptions"),
    (openai._streaming, "SSEDecoder"), (openai._utils._json, "openapi_dumps"),
    (openai._constants, "RAW_RESPONSE_HEADER"),
    (lc_base, "_convert_responses_chunk_to_generation_chunk"),
):
    delattr(module, name)
logging.basicConfig(level=logging.DEBUG, format="%(name)s %(message)s")
for noisy in ("httpcore", "httpx2", "openai", "asyncio"):
    logging.getLogger(noisy).setLevel(logging.WARNING)

from langchain_vllm import ChatVLLM

def answer(request):
    body = json.loads(request.content)
    message = {"role": "assistant", "content": "Hello!"}
    if body.get("stream"):
        chunks = [
            {"choices": [{"index": 0, "delta": message, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        text = "".join(f"data: {json.dumps(c)}\\n\\n" for c in chunks)
        return httpx2.Response(200, text=text + "data: [DONE]\\n\\n",
                               headers={"content-type": "text/event-stream"})
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return httpx2.Response(200, json={"choices": [choice], "model": "m"})

chat = ChatVLLM(model="m", base_url="http://vllm.test/v1", max_retries=0,
                http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))
print("ANSWER", chat.invoke("Hi").text, "".join(c.text for c in chat.stream("Hi")))
"""


def test_import_and_calls_work_with_the_private_modules_gone() -> None:
    """In a fresh process without the private names (a module that cannot be
    imported, others without the names read), the package imports and answers,
    logging which seams it found missing."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", GONE], capture_output=True, text=True, check=True
    )
    assert "ANSWER Hello! Hello!" in out.stdout
    assert "upstream seam openai._httpx2.request_exceptions" in out.stderr
