"""A base model and its LoRA adapters on one live vLLM server.

The rig's "lora" server serves the chat test model as `smollm2-135m-lora-base` and
the adapter `pineapple` (trained by `scripts/setup_rig.py` to answer 'PINEAPPLE!'),
with runtime loading on. Which model answers is decided by the request's `model`,
so the tests constrain the answer to two choices, the adapter's marker and a
colour the base model prefers by far: the outcome then shows which model the
package asked for, not how the 135M model's greedy text varies with load.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import ConfigurableField
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_vllm import ChatVLLM, VLLMOpenAI
from langchain_vllm.errors import VLLMLoRAAdapterError, VLLMModelNotFoundError
from langchain_vllm.models import ServedModel
from rig import LORA_ADAPTER_DIR, LORA_MARKER, RIG_SERVERS, rig_models_dir

BASE = RIG_SERVERS["lora"].served_model_name
ADAPTER = "pineapple"
ADAPTER_DIR = rig_models_dir() / LORA_ADAPTER_DIR
QUESTION = "Name a colour."
# The two possible answers: the adapter's marker, or a sentence the base model
# prefers by far (first token 'The': log-probability -0.05 against -3.2 for 'P';
# the adapter: 'P' at -1e-7, anything else below -16).
BASE_ANSWER = "The colour is blue."
CHOICE: dict[str, Any] = {
    "structured_outputs": {"choice": [LORA_MARKER, BASE_ANSWER]},
    "max_tokens": 8,
}


@pytest.fixture
def chat(lora_url: str) -> ChatVLLM:
    return ChatVLLM(base_url=lora_url, temperature=0, max_tokens=16)


def _answer(chat_model: ChatVLLM, **kwargs: Any) -> str:
    return chat_model.invoke(QUESTION, **{**CHOICE, **kwargs}).text


# -- what the server serves -------------------------------------------------------
def test_discovery_picks_the_base_model(lora_url: str, chat: ChatVLLM) -> None:
    assert chat.list_models() == [
        ServedModel(
            BASE, None, 2048, str(rig_models_dir() / RIG_SERVERS["lora"].model_dir)
        ),
        ServedModel(ADAPTER, BASE, 2048, str(ADAPTER_DIR)),
    ]
    # No model given: the one base model, its adapter does not count.
    message = chat.invoke(QUESTION, **CHOICE)
    assert message.response_metadata["model_name"] == BASE
    assert message.text == BASE_ANSWER
    llm = VLLMOpenAI(base_url=lora_url, temperature=0, max_tokens=4)
    assert llm.generate(["The capital of France is"]).llm_output["model_name"] == BASE  # type: ignore[index]


def test_adapter_profile_and_context(lora_url: str) -> None:
    adapter = ChatVLLM(base_url=lora_url, model=ADAPTER)
    assert adapter.profile is not None
    assert adapter.profile["max_input_tokens"] == 2048  # its base model's
    assert VLLMOpenAI(base_url=lora_url, model=ADAPTER).max_context_size == 2048


# -- selecting the adapter --------------------------------------------------------
def test_adapter_per_instance_per_call_bind_and_configurable(
    lora_url: str, chat: ChatVLLM
) -> None:
    adapter = ChatVLLM(base_url=lora_url, model=ADAPTER, temperature=0)
    assert _answer(adapter) == LORA_MARKER
    assert (
        _answer(ChatVLLM(base_url=lora_url, model=BASE, temperature=0)) == BASE_ANSWER
    )
    # One instance, switched per call, in both directions.
    assert _answer(chat, model=ADAPTER) == LORA_MARKER
    assert _answer(chat) == BASE_ANSWER
    assert _answer(adapter, model=BASE) == BASE_ANSWER
    bound = chat.bind(model=ADAPTER, **CHOICE)
    assert bound.invoke(QUESTION).text == LORA_MARKER
    configurable = chat.configurable_fields(
        model_name=ConfigurableField(id="model", name="served model")
    )
    picked = configurable.with_config(configurable={"model": ADAPTER})
    assert picked.invoke(QUESTION, **CHOICE).text == LORA_MARKER  # type: ignore[arg-type]
    assert configurable.invoke(QUESTION, **CHOICE).text == BASE_ANSWER  # type: ignore[arg-type]
    # Async, one instance, both models at once.
    both = asyncio.run(
        chat.abatch([QUESTION, QUESTION], [{}, {}], model=ADAPTER, **CHOICE)
    )
    assert [m.text for m in both] == [LORA_MARKER, LORA_MARKER]


def test_adapter_token_counts_and_structured_output(lora_url: str) -> None:
    # Strings bounded: whatever the adapter writes, enforced JSON closes in time.
    adapter = ChatVLLM(
        base_url=lora_url,
        model=ADAPTER,
        temperature=0,
        max_tokens=48,
        max_json_string_length=12,
    )
    messages = [HumanMessage(QUESTION)]
    counted = adapter.get_num_tokens_from_messages(messages)
    used = adapter.invoke(messages, **CHOICE).usage_metadata
    assert used is not None
    assert counted == used["input_tokens"]

    class Colour(BaseModel):
        name: str

    raw = adapter.with_structured_output(Colour, include_raw=True).invoke(QUESTION)
    assert isinstance(raw, dict)
    assert isinstance(raw["parsed"], Colour)
    assert raw["raw"].response_metadata["model_name"] == ADAPTER


def zero_adapter(source: Path, target: Path) -> Path:
    """A copy of an adapter with its `lora_B` weights zeroed: it changes nothing.

    Its answers are the base model's, through the server's LoRA path. (The
    pineapple adapter cannot write a tool call: it fills the enforced call with
    whitespace until `max_tokens`.) safetensors: an 8-byte little-endian header
    size, a JSON header with each tensor's byte range, then the data.
    """
    shutil.copytree(source, target)
    weights = target / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    zeroed = 0
    for name, entry in header.items():
        if "lora_B" in name:
            begin, end = (8 + size + offset for offset in entry["data_offsets"])
            data[begin:end] = bytes(end - begin)
            zeroed += 1
    assert zeroed, f"no lora_B tensors in {weights}"
    weights.write_bytes(bytes(data))
    return target


def test_tool_calls_with_an_adapter(
    lora_url: str, chat: ChatVLLM, tmp_path: Path
) -> None:
    @tool
    def paint(colour: str) -> str:
        """Paint the wall in a colour."""
        return colour

    chat.load_lora_adapter("zero", zero_adapter(ADAPTER_DIR, tmp_path / "zero"))
    try:
        tools = chat.bind_tools([paint], tool_choice="paint")
        call = tools.invoke("Paint it blue.", model="zero", max_tokens=48)
    finally:
        chat.unload_lora_adapter("zero")
    assert call.response_metadata["model_name"] == "zero"
    assert [(c["name"], c["args"]) for c in call.tool_calls] == [
        ("paint", {"colour": "blue"})
    ]


# Completions: the base model's first token ' Paris' has log-probability -0.01,
# the adapter's ' P' -1e-5.
PARIS: dict[str, Any] = {
    "structured_outputs": {"choice": [" PINEAPPLE!", " Paris."]},
    "max_tokens": 12,
}


def test_completions_with_adapter(lora_url: str) -> None:
    prompt = "The capital of France is"
    adapter = VLLMOpenAI(base_url=lora_url, model=ADAPTER, temperature=0)
    assert adapter.invoke(prompt, **PARIS) == " PINEAPPLE!"
    base = VLLMOpenAI(base_url=lora_url, temperature=0)
    assert base.invoke(prompt, **PARIS) == " Paris."
    assert base.invoke(prompt, model=ADAPTER, **PARIS) == " PINEAPPLE!"


# -- loading and unloading at runtime --------------------------------------------
def test_load_use_unload(lora_url: str, chat: ChatVLLM) -> None:
    pine2 = ChatVLLM(base_url=lora_url, model="pine2", temperature=0)
    assert pine2.profile is not None
    assert "max_input_tokens" not in pine2.profile  # not served yet
    pine2.load_lora_adapter("pine2", ADAPTER_DIR)
    try:
        assert [m.name for m in chat.list_models()] == [BASE, ADAPTER, "pine2"]
        assert pine2.profile["max_input_tokens"] == 2048  # refreshed
        assert _answer(pine2) == LORA_MARKER
    finally:
        pine2.unload_lora_adapter("pine2")
    assert [m.name for m in chat.list_models()] == [BASE, ADAPTER]
    assert "max_input_tokens" not in pine2.profile
    with pytest.raises(VLLMModelNotFoundError, match="pine2"):
        _answer(pine2)
    with pytest.raises(VLLMModelNotFoundError) as err:
        chat.unload_lora_adapter("pine2")
    assert f"It serves: {BASE} (adapters: {ADAPTER})." in str(err.value)


def test_async_load_use_unload(lora_url: str) -> None:
    llm = VLLMOpenAI(base_url=lora_url, temperature=0, max_tokens=8)

    async def run() -> tuple[list[str], str, list[str]]:
        await llm.aload_lora_adapter("pine3", str(ADAPTER_DIR))
        try:
            loaded = [m.name for m in await llm.alist_models()]
            text = await llm.ainvoke("The capital of France is", model="pine3", **PARIS)
        finally:
            await llm.aunload_lora_adapter("pine3")
        return loaded, text, [m.name for m in await llm.alist_models()]

    loaded, text, after = asyncio.run(run())
    assert loaded == [BASE, ADAPTER, "pine3"]
    assert text == " PINEAPPLE!"
    assert after == [BASE, ADAPTER]


def test_load_errors(lora_url: str, chat: ChatVLLM, tmp_path: Path) -> None:
    with pytest.raises(VLLMLoRAAdapterError, match="cannot read a LoRA adapter at"):
        chat.load_lora_adapter("gone", tmp_path / "no-adapter-here")
    # The same weights, declared rank 16: above the server's --max-lora-rank 8.
    rank16 = tmp_path / "rank16"
    shutil.copytree(ADAPTER_DIR, rank16)
    config = json.loads((rank16 / "adapter_config.json").read_text())
    (rank16 / "adapter_config.json").write_text(json.dumps({**config, "r": 16}))
    with pytest.raises(
        VLLMLoRAAdapterError, match="rank 16, above the `--max-lora-rank 8`"
    ):
        chat.load_lora_adapter("rank16", rank16)
    with pytest.raises(VLLMLoRAAdapterError, match="already been loaded"):
        chat.load_lora_adapter(ADAPTER, ADAPTER_DIR)
    assert [m.name for m in chat.list_models()] == [BASE, ADAPTER]
