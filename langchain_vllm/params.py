"""The one declaration of vLLM's own request parameters.

Each parameter is a pydantic field of exactly one of the mixins below: its type and
constraints are its validation, its docstring is its documentation (docs/parameters.md
and API docs are generated from it), and the request body is built by iterating the
mixin's fields. Classes pick the mixin for their endpoint:

* `VLLMPoolingParams` -- every endpoint (embeddings, rerank, completions, chat).
* `VLLMSamplingParams` -- generation endpoints (completions and chat).
* `VLLMChatParams` -- chat completions only.
* `VLLMCompletionParams` -- completions only.

Per-call values (`invoke(..., top_k=1)`, `.bind(top_k=1)`) are checked against the same
field declarations by `validate_call_params`.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from langchain_vllm.structured import StructuredOutputs

__all__ = [
    "RepetitionDetection",
    "VLLMChatParams",
    "VLLMCompletionParams",
    "VLLMPoolingParams",
    "VLLMSamplingParams",
]


def _non_empty(value: list[Any]) -> list[Any]:
    if not value:
        msg = "must not be an empty list"
        raise ValueError(msg)
    return value


def _no_empty_words(value: list[str]) -> list[str]:
    for word in value:
        if not word:
            msg = "bad_words must not contain empty strings"
            raise ValueError(msg)
    return value


class RepetitionDetection(BaseModel):
    """vLLM's `repetition_detection`: end generation when an N-gram repeats.

    Example:
        ```python
        # stop once any 1- to 8-token pattern has appeared 4 times in a row
        RepetitionDetection(max_pattern_size=8, min_count=4)
        ```
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pattern_size: Annotated[int, Field(ge=1)]
    """Longest pattern (in tokens) to look for."""
    min_pattern_size: Annotated[int, Field(ge=0)] = 0
    """Shortest pattern (0: 1 token); at most `max_pattern_size`."""
    min_count: Annotated[int, Field(ge=2)]
    """Repetitions in a row that end generation (at least 2)."""

    @model_validator(mode="after")
    def _sizes_in_order(self) -> Self:
        if self.min_pattern_size > self.max_pattern_size:
            msg = "min_pattern_size must not exceed max_pattern_size"
            raise ValueError(msg)
        return self


class VLLMPoolingParams(BaseModel):
    """vLLM request parameters every endpoint accepts."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    truncate_prompt_tokens: Annotated[int, Field(ge=-1)] | None = None
    """Keep only the last N prompt tokens (left truncation); -1 keeps as many as the
    model's context allows."""

    add_special_tokens: bool | None = None
    """Add the tokenizer's special tokens (e.g. BOS) to the prompt. vLLM's chat default
    is False because the chat template adds them."""

    priority: int | None = None
    """Scheduling priority (lower runs earlier) for a server started with
    `--scheduling-policy priority`."""


class VLLMSamplingParams(VLLMPoolingParams):
    """vLLM sampling parameters beyond OpenAI's, for completions and chat."""

    top_k: Annotated[int, Field(ge=-1)] | None = None
    """Sample from the K most likely tokens only; -1 or 0 considers all tokens."""

    min_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """Minimum probability of a token, relative to the most likely one, in [0, 1]."""

    repetition_penalty: Annotated[float, Field(gt=0.0)] | None = None
    """Penalty (> 0) on tokens already in the prompt or output; > 1 discourages
    repetition, < 1 encourages it."""

    length_penalty: float | None = None
    """Length penalty for beam search."""

    use_beam_search: bool | None = None
    """Decode with beam search instead of sampling (`n` is the beam width)."""

    min_tokens: NonNegativeInt | None = None
    """Generate at least this many tokens before EOS or stop strings may end it."""

    stop_token_ids: list[NonNegativeInt] | None = None
    """Token ids that end generation, in addition to `stop` strings."""

    ignore_eos: bool | None = None
    """Keep generating after the EOS token (useful for benchmarks)."""

    include_stop_str_in_output: bool | None = None
    """Keep the matched stop string at the end of the output."""

    skip_special_tokens: bool | None = None
    """Drop special tokens from the decoded output (unset: vLLM 0.33+ follows the
    model's generation config, default True; older servers True)."""

    spaces_between_special_tokens: bool | None = None
    """Put spaces between special tokens in the decoded output."""

    bad_words: Annotated[list[str], AfterValidator(_no_empty_words)] | None = None
    """Words (strings) the model must not generate."""

    allowed_token_ids: (
        Annotated[list[NonNegativeInt], AfterValidator(_non_empty)] | None
    ) = None
    """Restrict generation to these token ids."""

    prompt_logprobs: Annotated[int, Field(ge=-1)] | None = None
    """Return this many log-probabilities per prompt token (-1: the whole
    vocabulary); they come back in the response's `prompt_logprobs`."""

    structured_outputs: StructuredOutputs | None = None
    """A server-enforced constraint on the output: exactly one of `choice`, `regex`,
    `json` (a JSON schema dict, pydantic model or TypedDict), `grammar` or
    `structural_tag`."""

    cache_salt: Annotated[str, Field(min_length=1)] | None = None
    """Salt for the prefix cache: requests only share cached prefixes when their salts
    match (isolates tenants)."""

    vllm_xargs: dict[str, Any] | None = None
    """Extra arguments for custom vLLM extensions (logits processors and the like)."""

    kv_transfer_params: dict[str, Any] | None = None
    """KV-cache transfer settings for disaggregated prefill deployments."""

    return_token_ids: bool | None = None
    """Return the prompt's and the output's token ids in the response."""

    return_weight_versions: bool | None = None
    """Return, per choice, which weight version sampled which output tokens (vLLM
    0.33+): chat `response_metadata["weight_versions"]` (a stream's last chunk),
    completions `generation_info`."""

    request_id: Annotated[str, Field(min_length=1)] | None = None
    """Request id the server uses in its logs and metrics (per call)."""

    session_id: Annotated[str, Field(min_length=1)] | None = None
    """Stable id shared by the requests of one conversation or agent session
    (unlike `request_id`); vLLM logs it, routers may place a session by it."""

    truncation_side: Literal["left", "right"] | None = None
    """Which end `truncate_prompt_tokens` cuts: "left" keeps the last N tokens
    (vLLM's default), "right" the first N."""

    logprob_token_ids: (
        Annotated[list[NonNegativeInt], AfterValidator(_non_empty)] | None
    ) = None
    """Return the log-probabilities of exactly these token ids at each generated
    position, instead of the most likely ones (with `logprobs=True`)."""

    repetition_detection: RepetitionDetection | None = None
    """End generation early when a short token pattern keeps repeating."""

    stream_interval: Annotated[int, Field(ge=1)] | None = None
    """Tokens per streamed chunk for this request (at least the server's
    `--stream-interval`; the first and last chunks are sent at once)."""

    return_tokens_as_token_ids: bool | None = None
    """Represent tokens in logprobs as `token_id:N` strings instead of text."""

    thinking_token_budget: NonNegativeInt | None = None
    """Cap on reasoning tokens: the server ends the thinking section after this many
    tokens."""

    watermarking: bool | None = None
    """Apply the watermark the server is configured with to this request."""

    ec_transfer_params: dict[str, Any] | None = None
    """Encoder-cache transfer settings for disaggregated encoder deployments."""


class VLLMChatParams(VLLMSamplingParams):
    """vLLM parameters of `/v1/chat/completions` only."""

    echo: bool | None = None
    """Prefix the response with the last message if it has the assistant role."""

    add_generation_prompt: bool | None = None
    """Let the chat template add the assistant turn's opening (vLLM default True)."""

    continue_final_message: bool | None = None
    """Continue the last (assistant) message instead of starting a new one. Use with
    `add_generation_prompt=False`."""

    documents: list[dict[str, str]] | None = None
    """Documents for retrieval-augmented chat templates, each a dict such as
    `{"title": ..., "text": ...}`."""

    chat_template: Annotated[str, Field(min_length=1)] | None = None
    """A Jinja chat template that replaces the model's own for this request."""

    chat_template_kwargs: dict[str, Any] | None = None
    """Extra variables for the chat template (e.g. `{"enable_thinking": False}`)."""

    mm_processor_kwargs: dict[str, Any] | None = None
    """Extra arguments for the model's multimodal (Hugging Face) processor, e.g.
    image sizes; what it reads depends on the model. vLLM 0.32 refuses them unless
    the server runs with `--trust-request-mm-kwargs`."""

    media_io_kwargs: dict[str, dict[str, Any]] | None = None
    """Arguments for the server's media loaders, by modality (e.g.
    `{"video": {"num_frames": 8}}`); merged with the server's `--media-io-kwargs`."""

    thinking: bool | None = None
    """One switch for the model's thinking, whatever its family: sets both chat
    template variables real templates read, `enable_thinking` (Qwen3, Granite,
    Holo, ...) and `thinking` (DeepSeek V3.1+), in `chat_template_kwargs`. None
    leaves the template's default. Not a field of vLLM's own: sent only as those
    two keys. A `chat_template_kwargs` key with the other value, or a
    `reasoning_effort` that says the opposite, raises ValueError."""

    include_reasoning: bool | None = None
    """Return the model's reasoning text (servers with `--reasoning-parser`); False
    drops it from the response."""

    return_prompt_text: bool | None = None
    """Return the prompt the chat template produced, in `response_metadata`
    (`prompt_text`; a stream's first chunk)."""


class VLLMCompletionParams(VLLMSamplingParams):
    """vLLM parameters of `/v1/completions` only.

    None beyond the sampling ones today: OpenAI's `echo` and `suffix` are the
    parent's, and `prompt_embeds` (tensors) is not supported.
    """


RESPONSES_PARAMS: frozenset[str] = frozenset(
    {
        "priority",
        "top_k",
        "min_p",
        "repetition_penalty",
        "stop_token_ids",
        "ignore_eos",
        "include_stop_str_in_output",
        "skip_special_tokens",
        "structured_outputs",
        "cache_salt",
        "vllm_xargs",
        "kv_transfer_params",
        "ec_transfer_params",
        "request_id",
        "session_id",
        "watermarking",
        "chat_template_kwargs",
        "mm_processor_kwargs",
        "media_io_kwargs",
        "include_reasoning",
    }
)
"""The chat parameters above that vLLM's `/v1/responses` reads too (its
`ResponsesRequest`, vLLM 0.32). With `use_responses_api=True` ChatVLLM refuses the
others by name: the server would accept and ignore them."""

TEMPLATE_SWITCHES: frozenset[str] = frozenset({"thinking"})
"""Declared chat parameters that are no field of vLLM's: ChatVLLM sends them as
`chat_template_kwargs` keys (which `/v1/responses` reads too)."""


class OpenAIRanges(BaseModel):
    """Ranges vLLM enforces on OpenAI's own sampling parameters (HTTP 400 otherwise).

    `ChatOpenAI` declares these fields without bounds; `check_openai_params` checks
    them against the bounds here. Not sent from here: the parent sends them.
    """

    temperature: Annotated[float, Field(ge=0.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    top_logprobs: Annotated[int, Field(ge=0)] | None = None


def check_openai_params(values: dict[str, Any]) -> None:
    """Raise ValueError naming an OpenAI sampling parameter out of vLLM's range.

    Keys that are not in `OpenAIRanges` are ignored.
    """
    ranged = {k: v for k, v in values.items() if k in _RANGED}
    validate_call_params(OpenAIRanges, ranged, "")


_RANGED = frozenset(OpenAIRanges.model_fields)


@cache
def param_names(mixin: type[BaseModel]) -> tuple[str, ...]:
    """The request parameter names a mixin declares (its fields)."""
    return tuple(mixin.model_fields)


@cache
def _adapter(mixin: type[BaseModel], name: str) -> TypeAdapter[Any]:
    field = mixin.model_fields[name]
    annotation: Any = field.annotation
    if field.metadata:
        annotation = Annotated[(annotation, *field.metadata)]
    return TypeAdapter(annotation)


def validate_call_params(
    mixin: type[BaseModel], values: dict[str, Any], kind: str = "vLLM parameter "
) -> dict[str, Any]:
    """Check per-call values against the mixin's declarations (None ones dropped).

    Raises:
        ValueError: naming the parameter and the problem.
    """
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        try:
            checked[name] = _adapter(mixin, name).validate_python(value)
        except ValidationError as e:
            problems = "; ".join(err["msg"] for err in e.errors())
            msg = f"Invalid value for {kind}`{name}`={value!r}: {problems}"
            raise ValueError(msg) from None
    return checked


def request_body(model: BaseModel, mixin: type[BaseModel]) -> dict[str, Any]:
    """The set (non-None) vLLM parameters of `model` as request-body entries."""
    # Every parameter defaults to None: only fields given or assigned can be set.
    given = model.model_fields_set & _name_set(mixin)
    if not given:
        return {}
    fields = model.__dict__
    return {
        name: to_wire(value)
        for name in param_names(mixin)
        if name in given and (value := fields[name]) is not None
    }


@cache
def _name_set(mixin: type[BaseModel]) -> frozenset[str]:
    names = frozenset(mixin.model_fields)
    defaults = [n for n, f in mixin.model_fields.items() if f.get_default() is not None]
    if defaults:  # `request_body` reads only given fields
        msg = f"{mixin.__name__} parameters default to None, not: {defaults}"
        raise TypeError(msg)
    return names


def to_wire(value: Any) -> Any:
    """Turn a validated parameter value into JSON-ready data."""
    if isinstance(value, StructuredOutputs):
        return value.to_wire()
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    return value
