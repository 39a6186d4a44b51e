"""Servers behind gateways that forward only `/v1/*`.

vLLM serves `/tokenize` and `/version` at its root; API gateways, generic OpenAI
proxies and ingress rules in front of it often forward only `/v1/*` (and their
`/v1/models` may drop `max_model_len`). What the package does then:

* token counts and ids: the same prompt is sent as a one-token generation through
  `/v1` with `return_token_ids`, and its `prompt_token_ids` are the answer (exact;
  each call costs one generated token, and repeated texts are cached as before);
* the prompt text (`get_prompt_text`, without `/detokenize`): the same, with
  `return_prompt_text` (vLLM 0.32+), whose `prompt_text` is the answer;
* the version check for structured outputs: a server that does not answer
  `/version` is taken for a current vLLM (`structured_outputs`, vLLM 0.12+);
* the context window: no `max_input_tokens` in the profile (nothing is guessed);
  a prompt that does not fit still raises `VLLMContextOverflowError`.
"""

from __future__ import annotations

import warnings
from typing import Any

import openai

from langchain_vllm.errors import VLLMModelNotFoundError

UNKNOWN_VERSION = ""
"""The version of a server whose `/version` is not reachable."""

_NOT_ECHOED = ("return_token_strs",)


def require_route_missing(error: openai.NotFoundError) -> None:
    """Re-raise an HTTP 404 that is not for the route itself (an unknown model)."""
    if isinstance(error, VLLMModelNotFoundError):
        raise error


def tokenize_probe(base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The `/v1` request whose answer carries the token ids `/tokenize` would give.

    A chat body (`messages`) goes to `/chat/completions`, a text (`prompt`) to
    `/completions`, each with `max_tokens=1` and `return_token_ids`.
    """
    path = "/chat/completions" if "messages" in body else "/completions"
    probe = {k: v for k, v in body.items() if k not in _NOT_ECHOED}
    probe.update(max_tokens=1, return_token_ids=True)
    return f"{base_url}{path}", probe


def prompt_text_probe(
    base_url: str, body: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The `/v1/chat/completions` request whose answer carries the prompt text."""
    url, probe = tokenize_probe(base_url, body)
    del probe["return_token_ids"]
    probe["return_prompt_text"] = True
    return url, probe


def probe_tokens(answer: Any) -> dict[str, Any] | None:
    """A `/tokenize`-shaped result from a probe's answer (None: no token ids)."""
    ids = answer.get("prompt_token_ids") if isinstance(answer, dict) else None
    if ids is None and isinstance(answer, dict) and answer.get("choices"):
        ids = answer["choices"][0].get("prompt_token_ids")
    if not isinstance(ids, list):
        return None
    return {"tokens": ids, "count": len(ids), "max_model_len": None}


def warn_fallback(root_url: str) -> None:
    """Say once per server link that counts go through `/v1` generation requests."""
    warnings.warn(
        f"{root_url}/tokenize is not reachable (HTTP 404: a gateway that forwards "
        "only /v1/*?). Token counts and ids come from one-token generation requests "
        "through /v1 instead: exact, each costs one generated token.",
        UserWarning,
        stacklevel=4,
    )
