"""`_plain_answer` builds exactly what langchain-openai's validated reader builds.

Every recorded vLLM chat completion (`data/token_answers.json`, `data/vllm_0_3*.json`,
`data/tool_streams/*.json`), and variants of them, is read twice: by `plain_result`
and by `ChatOpenAI._create_chat_result`. Where the plain reader answers, the two
results must be equal, dump equal, and have the same fields set at every level;
everything it declines must be an answer it cannot read alike.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI

from langchain_vllm import ChatVLLM
from langchain_vllm import _seams as seams
from langchain_vllm._plain_answer import plain_result

DATA = Path(__file__).parent / "data"


def _completions(value: Any, out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        if value.get("object") == "chat.completion":
            out.append(value)
        else:
            for item in value.values():
                _completions(item, out)
    elif isinstance(value, list):
        for item in value:
            _completions(item, out)
    return out


def _recorded() -> list[dict[str, Any]]:
    paths = [DATA / "token_answers.json", *sorted(DATA.glob("vllm_0_3*.json"))]
    paths += sorted((DATA / "tool_streams").glob("*.json"))
    answers: list[dict[str, Any]] = []
    for path in paths:
        _completions(json.loads(path.read_text()), answers)
    return answers


RECORDED = _recorded()
TEXT = next(a for a in RECORDED if not a["choices"][0]["message"].get("tool_calls"))


def _variant(change: Any) -> dict[str, Any]:
    answer = copy.deepcopy(TEXT)
    change(answer)
    return answer


def _message(answer: dict[str, Any]) -> dict[str, Any]:
    return answer["choices"][0]["message"]  # type: ignore[no-any-return]


VARIANTS = {
    "content null": lambda a: _message(a).update(content=None),
    "no usage": lambda a: a.pop("usage"),
    "usage null": lambda a: a.update(usage=None),
    "usage empty": lambda a: a.update(usage={}),
    "cached tokens": lambda a: a["usage"].update(
        prompt_tokens_details={"cached_tokens": 3}
    ),
    "no total": lambda a: a["usage"].pop("total_tokens"),
    "other usage field": lambda a: a["usage"].update(reasoning_tokens=2),
    "service tier": lambda a: a.update(service_tier="default"),
    "named, with an id": lambda a: _message(a).update(name="bot", id="msg-1"),
    "no logprobs key": lambda a: a["choices"][0].pop("logprobs"),
    "no id": lambda a: a.pop("id"),
    "no model": lambda a: a.pop("model"),
    "refusal": lambda a: _message(a).update(refusal="no"),
    "audio": lambda a: _message(a).update(audio={"id": "a"}),
    "function call": lambda a: _message(a).update(
        function_call={"name": "f", "arguments": "{}"}
    ),
    "list content": lambda a: _message(a).update(
        content=[{"type": "text", "text": "x"}]
    ),
    "two choices": lambda a: a["choices"].append(copy.deepcopy(a["choices"][0])),
    "not the assistant": lambda a: _message(a).update(role="user"),
    "an error": lambda a: a.update(error={"message": "bad"}),
    "integer id": lambda a: _message(a).update(id=7),
}
CASES = [pytest.param(a, id=f"recorded {i}") for i, a in enumerate(RECORDED)] + [
    pytest.param(_variant(change), id=name) for name, change in VARIANTS.items()
]


@pytest.fixture
def chat() -> ChatVLLM:
    return ChatVLLM(base_url="http://vllm.test/v1", model="m")


def _parent(chat: ChatVLLM, answer: dict[str, Any]) -> Any:
    try:
        return ChatOpenAI._create_chat_result(chat, copy.deepcopy(answer), None)
    except Exception as e:  # the plain reader must decline these
        return e


def test_recorded_answers_are_there() -> None:
    assert len(RECORDED) >= 12
    assert any(_message(a).get("tool_calls") for a in RECORDED)


@pytest.mark.parametrize("answer", CASES)
def test_plain_results_equal_the_validated_ones(
    chat: ChatVLLM, answer: dict[str, Any]
) -> None:
    plain = plain_result(copy.deepcopy(answer), None, chat.model_name)
    parent = _parent(chat, answer)
    if plain is None:
        # declined: something the plain reader does not build (calls, details,
        # several choices, ...) or an answer the parent refuses
        message = _message(answer) if answer.get("choices") else {}
        usage = answer.get("usage") or {}
        assert (
            isinstance(parent, Exception)
            or len(answer["choices"]) != 1
            or any(message.get(n) for n in ("tool_calls", "function_call", "audio"))
            or message.get("refusal")
            or message.get("role") != "assistant"
            or not isinstance(message.get("content") or "", str)
            or not isinstance(message.get("id"), str | None)
            or answer.get("service_tier")
            or set(usage)
            - {"prompt_tokens", "completion_tokens", "total_tokens"}
            - {"prompt_tokens_details", "completion_tokens_details"}
            or usage.get("prompt_tokens_details")
            or (usage and "total_tokens" not in usage)
        ), answer
        return
    assert not isinstance(parent, Exception)
    assert plain == parent
    assert plain.model_dump() == parent.model_dump()
    assert plain.model_fields_set == parent.model_fields_set
    for mine, theirs in zip(plain.generations, parent.generations, strict=True):
        assert mine.model_fields_set == theirs.model_fields_set
        assert mine.message.model_fields_set == theirs.message.model_fields_set
        assert mine.message.__pydantic_extra__ == theirs.message.__pydantic_extra__
        assert mine.text == theirs.text


def test_the_usual_answers_are_plain(chat: ChatVLLM) -> None:
    # vLLM's own text answers take the plain path (else it would be dead code).
    plain = [a for a in RECORDED if plain_result(a, None, "m") is not None]
    assert TEXT in plain
    assert plain_result(TEXT, {"headers": {}}, "m") is None  # headers asked for


def test_results_share_nothing(chat: ChatVLLM) -> None:
    one, two = plain_result(TEXT, None, "m"), plain_result(TEXT, None, "m")
    assert one is not None
    assert two is not None
    message = one.generations[0].message
    assert isinstance(message, AIMessage)
    message.additional_kwargs["x"] = 1
    message.response_metadata["y"] = 2
    message.tool_calls.append({"name": "t", "args": {}, "id": None})
    message.foo = 1  # type: ignore[attr-defined]
    other = two.generations[0].message
    assert isinstance(other, AIMessage)
    assert (other.additional_kwargs, other.response_metadata) == ({}, {})
    assert other.tool_calls == []
    assert "foo" not in other.model_dump()


def test_declined_without_the_pydantic_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seams.PYDANTIC_BUILD, "_value", seams.MISSING)
    assert plain_result(TEXT, None, "m") is None
