"""The models a vLLM server serves: base models and their LoRA adapters.

`GET /v1/models` lists every name a request may ask for. A server started with
`--enable-lora` lists its LoRA adapters beside the base model: an adapter's card has
`"parent": "<base model>"` and `"max_model_len": null`, a base model's card has
`"parent": null`. Discovery (no `model=` given) and context lengths read them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_vllm.errors import VLLMModelDiscoveryError

__all__ = [
    "ServedModel",
]


@dataclass(frozen=True)
class ServedModel:
    """One entry of the server's `GET /v1/models`: a base model or a LoRA adapter.

    Example:
        ```python
        from langchain_vllm import ChatVLLM

        for entry in ChatVLLM().list_models():
            print(entry.name, entry.parent, entry.max_model_len)
        # smollm2 None 2048
        # pineapple smollm2 2048
        ```
    """

    name: str
    """The name a request asks for (`model=`)."""

    parent: str | None
    """The base model of a LoRA adapter; None for a base model."""

    max_model_len: int | None
    """Context length in tokens. For an adapter, its base model's (the server lists
    none for adapters); None when the server gives none."""

    root: str | None
    """What the server loaded: the base model's folder or hub id, or the adapter's
    folder."""

    @property
    def is_adapter(self) -> bool:
        """Whether this entry is a LoRA adapter (it has a parent)."""
        return self.parent is not None


def _length(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def served_models(cards: list[dict[str, Any]]) -> list[ServedModel]:
    """Typed entries of `/v1/models` cards; adapters get their parent's length."""
    lengths = {str(c.get("id")): _length(c.get("max_model_len")) for c in cards}
    entries = []
    for card in cards:
        name, parent = str(card.get("id")), _text(card.get("parent"))
        length = lengths[name]
        if length is None and parent is not None:
            length = lengths.get(parent)
        entries.append(ServedModel(name, parent, length, _text(card.get("root"))))
    return entries


def context_length(cards: list[dict[str, Any]], model: str) -> int | None:
    """The context length of `model` (an adapter's is its parent's), if known."""
    entry = next((m for m in served_models(cards) if m.name == model), None)
    return entry.max_model_len if entry is not None else None


def _bases(models: list[ServedModel]) -> list[str]:
    """The base models' names; an adapter whose parent is not listed counts as one."""
    names = {m.name for m in models}
    return [m.name for m in models if m.parent is None or m.parent not in names]


def describe(cards: list[dict[str, Any]]) -> str:
    """What a server serves, base models each with their adapters.

    Example: ``smollm2 (adapters: pineapple, pine2), qwen``.
    """
    models = served_models(cards)
    parts = []
    for base in _bases(models):
        adapters = [m.name for m in models if m.parent == base and m.name != base]
        parts.append(f"{base} (adapters: {', '.join(adapters)})" if adapters else base)
    return ", ".join(parts)


def choose_model(cards: list[dict[str, Any]], base_url: str) -> str:
    """The model to ask for when none is given: the one base model.

    A server's LoRA adapters do not count: with one base model and its adapters,
    the base model is chosen.

    Raises:
        VLLMModelDiscoveryError: no model, or several base models, are served.
    """
    models = served_models(cards)
    if not models:
        msg = f"The vLLM server at {base_url} serves no model."
        raise VLLMModelDiscoveryError(msg)
    bases = _bases(models)
    if len(bases) == 1:
        return bases[0]
    what = "models" if len(bases) == len(models) else "base models"
    msg = (
        f"The vLLM server at {base_url} serves several {what} "
        f"({describe(cards)}); choose one with `model=`."
    )
    raise VLLMModelDiscoveryError(msg)
