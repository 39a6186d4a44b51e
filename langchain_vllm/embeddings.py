"""vLLM embeddings."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol, Self

import openai
from langchain_openai import OpenAIEmbeddings
from pydantic import BaseModel, Field, model_validator

from langchain_vllm._client import VLLMClient, check_texts
from langchain_vllm._json_client import (
    EMBEDDINGS_KEYWORDS,
    embedding_floats,
)
from langchain_vllm._seams import resource_client
from langchain_vllm.errors import (
    VLLMBadRequestError,
    VLLMContextOverflowError,
    VLLMMultiVectorEmbeddingError,
)
from langchain_vllm.params import VLLMPoolingParams

__all__ = [
    "VLLMEmbeddings",
]


class VLLMEmbeddings(VLLMClient, OpenAIEmbeddings, VLLMPoolingParams):  # type: ignore[misc]
    """vLLM embedding model, through vLLM's OpenAI-compatible `/v1/embeddings`.

    `OpenAIEmbeddings` made safe for vLLM: texts go to the server as strings (never
    tiktoken, never token arrays, so it works offline and with any tokenizer), the
    model is discovered from the server when not given, and vLLM's pooling
    parameters (`truncate_prompt_tokens`, ...) are typed fields. One vector per
    text: a per-token (multi-vector, ColBERT-style) model, whose answer vLLM 0.33+
    gives as a matrix per text, raises `VLLMMultiVectorEmbeddingError`.

    Setup:
        Install `langchain-vllm` and start a vLLM server with an embedding model:

        ```bash
        pip install -U langchain-vllm
        vllm serve sentence-transformers/all-MiniLM-L6-v2 --runner pooling
        ```

        `VLLM_API_BASE` and `VLLM_API_KEY` point it at the server, as for `ChatVLLM`.

    Key init args — embedding params:
        model: str | None
            Served model name. Omitted: the one model the server serves, asked from
            `GET /v1/models` on first use.
        dimensions: int | None
            Output dimensions, for models trained for it (Matryoshka); others are
            refused by the server with a clear error.
        truncate_prompt_tokens: int | None
            Keep only the last N tokens of each text (-1: as many as the model's
            context allows); longer texts are otherwise refused by the server.
        chunk_size: int
            Texts per request (default 1000).
        show_progress_bar: bool
            Show progress over the requests (tqdm if installed, else on stderr).

    Key init args — client params:
        base_url, api_key, timeout, max_retries, max_connections:
            As for `ChatVLLM`: the server from `VLLM_API_BASE`, the key from
            `VLLM_API_KEY`, else their defaults.

    Instantiate:
        ```python
        from langchain_vllm import VLLMEmbeddings

        embed = VLLMEmbeddings(truncate_prompt_tokens=-1)  # model discovered
        ```

    Embed single text:
        ```python
        vector = embed.embed_query("The meaning of life is 42")
        len(vector)  # 384 for all-MiniLM-L6-v2
        ```

    Embed multiple texts:
        ```python
        vectors = embed.embed_documents(["Document 1...", "Document 2..."])
        len(vectors), len(vectors[0])
        ```

    Async:
        ```python
        vector = await embed.aembed_query("The meaning of life is 42")
        vectors = await embed.aembed_documents(["Document 1...", "Document 2..."])
        ```

    Per-call vLLM parameters:
        ```python
        embed.embed_documents(long_texts, truncate_prompt_tokens=128)
        ```
    """

    model: str | None = None  # type: ignore[assignment]
    """Served model name; None discovers the only served model on first use."""

    chunk_size: int = Field(default=1000, gt=0)
    """Maximum number of texts sent in one request."""

    deployment: str | None = None
    """Unused (an Azure setting of the parent class)."""

    check_embedding_ctx_length: bool = False
    """Always False: texts are sent as strings and the server tokenizes them. Use
    `truncate_prompt_tokens` for texts longer than the model's context."""

    tiktoken_enabled: bool = False
    """Always False: vLLM models are not OpenAI's; tiktoken is never used."""

    extra_body: dict[str, Any] | None = None
    """Extra JSON fields for every request (other vLLM embedding options such as
    `normalize`); merged under the per-call ones."""

    _vllm_params: ClassVar[type[BaseModel]] = VLLMPoolingParams
    _path: ClassVar[str] = "/embeddings"
    _kind: ClassVar[str] = "vllm-embeddings"
    _model_field: ClassVar[str] = "model"

    # Unique validator name: pydantic replaces (does not chain) a parent validator
    # with the same name.
    @model_validator(mode="after")
    def _link_vllm_embeddings_server(self) -> Self:
        if self.check_embedding_ctx_length or self.tiktoken_enabled:
            msg = (
                "VLLMEmbeddings sends texts as strings and never tokenizes them "
                "locally: `check_embedding_ctx_length` and `tiktoken_enabled` must "
                "stay False. To cut long texts, set `truncate_prompt_tokens` "
                "(-1 keeps as many tokens as the model's context allows)."
            )
            raise ValueError(msg)
        self.client, self.async_client = self._connect(
            resource_client(self.client),
            resource_client(self.async_client),
            EMBEDDINGS_KEYWORDS,
        )
        return self

    # -- request building ----------------------------------------------------------
    def _request_params(
        self, model: str, call_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Keyword arguments for `embeddings.create` (without `input`)."""
        kwargs = dict(call_kwargs)
        extra = self._call_body(kwargs)
        params: dict[str, Any] = {**self.model_kwargs, **kwargs, "model": model}
        if self.dimensions is not None:
            params.setdefault("dimensions", self.dimensions)
        # float32 bytes: decoding them is ~10x cheaper than parsing JSON numbers.
        params.setdefault("encoding_format", "base64")
        if extra:
            params["extra_body"] = extra
        return params

    def _batches(self, texts: list[str], chunk_size: int | None) -> list[list[str]]:
        size = self.chunk_size if chunk_size is None else chunk_size
        if size <= 0:
            msg = f"chunk_size must be a positive number of texts, got {size}"
            raise ValueError(msg)
        return [texts[i : i + size] for i in range(0, len(texts), size)]

    # -- calls -----------------------------------------------------------------------
    def embed_documents(
        self, texts: list[str], chunk_size: int | None = None, **kwargs: Any
    ) -> list[list[float]]:
        """Embed texts, `chunk_size` of them per request.

        Args:
            texts: The texts to embed (sent as strings).
            chunk_size: Texts per request; None uses the instance's `chunk_size`.
            **kwargs: Per-call request parameters: vLLM's (`truncate_prompt_tokens`,
                ...), `dimensions`, `extra_body`.

        Returns:
            One embedding per text, in the order of `texts`.
        """
        texts = _check_texts(texts)
        if not texts:
            return []
        batches = self._batches(texts, chunk_size)
        try:
            params = self._request_params(self._link.resolve_model(self.model), kwargs)
            vectors: list[list[float]] = []
            with _progress(self.show_progress_bar, len(texts)) as bar:
                for batch in batches:
                    response = self.client.create(input=batch, **params)
                    vectors.extend(self._vectors(response, len(batch)))
                    bar.update(len(batch))
        except openai.APIError as e:
            raise _with_truncation_hint(self._link.translate(e)) from e
        except json.JSONDecodeError as e:  # the answer is not JSON
            raise self._malformed(e) from e
        return vectors

    async def aembed_documents(
        self, texts: list[str], chunk_size: int | None = None, **kwargs: Any
    ) -> list[list[float]]:
        """Async `embed_documents` (one HTTP client per event loop)."""
        texts = _check_texts(texts)
        if not texts:
            return []
        batches = self._batches(texts, chunk_size)
        try:
            await self._link.aclient()  # this loop's client, made off the loop
            model = await self._link.aresolve_model(self.model)
            params = self._request_params(model, kwargs)
            vectors: list[list[float]] = []
            with _progress(self.show_progress_bar, len(texts)) as bar:
                for batch in batches:
                    response = await self.async_client.create(input=batch, **params)
                    vectors.extend(self._vectors(response, len(batch)))
                    bar.update(len(batch))
        except openai.APIError as e:
            raise _with_truncation_hint(await self._link.atranslate(e)) from e
        except json.JSONDecodeError as e:  # the answer is not JSON
            raise self._malformed(e) from e
        return vectors

    def embed_query(self, text: str, **kwargs: Any) -> list[float]:
        """Embed one text.

        Args:
            text: The text to embed.
            **kwargs: Per-call request parameters, as for `embed_documents`.

        Returns:
            Its embedding.
        """
        return self.embed_documents([text], **kwargs)[0]

    async def aembed_query(self, text: str, **kwargs: Any) -> list[float]:
        """Async `embed_query`."""
        return (await self.aembed_documents([text], **kwargs))[0]

    def _vectors(self, response: Any, expected: int) -> list[list[float]]:
        """The float vectors of an answer (decoded JSON), in input order."""
        items = response.get("data") if isinstance(response, dict) else None
        if not isinstance(items, list) or len(items) != expected:
            got = len(items) if isinstance(items, list) else "no"
            problem = f"{got} embeddings for {expected} texts"
            raise self._malformed(problem)
        vectors: list[list[float]] = []
        indices: list[int] = []
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise self._malformed(f"item {position} has no list of numbers")
            try:
                vector = embedding_floats(item.get("embedding"))
            except ValueError as e:  # binascii.Error too
                raise self._malformed(f"bad base64 vector: {e}") from e
            if vector is None and _is_matrix(item.get("embedding")):
                raise _multi_vector(f"text {position} got a matrix of vectors")
            if vector is None:
                raise self._malformed(f"item {position} has no list of numbers")
            vectors.append(vector)
            index = item.get("index", position)
            indices.append(index if isinstance(index, int) else position)
        if indices == sorted(indices):  # vLLM answers in order: no reordering
            return vectors
        order = sorted(range(len(vectors)), key=indices.__getitem__)
        return [vectors[i] for i in order]


def _is_matrix(embedding: Any) -> bool:
    return isinstance(embedding, list) and all(isinstance(v, list) for v in embedding)


def _multi_vector(problem: str) -> VLLMMultiVectorEmbeddingError:
    return VLLMMultiVectorEmbeddingError(
        "The server's embedding model gives one vector per token (a per-token, "
        f"multi-vector pooling model: {problem}), not one vector per text, which "
        "is what LangChain's Embeddings interface returns: no vector is picked "
        "for you. Serve a model that pools one vector per text; for this one, "
        "rank with late-interaction scores (`/rerank`: VLLMRerank) or read the "
        "token vectors from the server's `/v1/embeddings` directly."
    )


def _with_truncation_hint(error: BaseException) -> BaseException:
    """Point an embedding context overflow at `truncate_prompt_tokens`.

    Also: vLLM 0.33+ answers 400 to `encoding_format="base64"` (the default
    here) for a per-token embedding model, whose `/v1/embeddings` takes "float"
    only: that is a `VLLMMultiVectorEmbeddingError`.
    """
    message = str(error)
    if (
        isinstance(error, VLLMBadRequestError)
        and "encoding_format" in message
        and "Input should be 'float'" in message
    ):
        return _multi_vector("its /v1/embeddings takes encoding_format 'float' only")
    if isinstance(error, VLLMContextOverflowError):
        msg = (
            "A text is longer than the embedding model's context. Set "
            "`truncate_prompt_tokens=-1` (keep what fits) or a token count, or split "
            f"the text. Server said: {error.server_message}"
        )
        hinted = VLLMContextOverflowError(msg, response=error.response, body=error.body)
        hinted.server_message = error.server_message
        return hinted
    return error


def _check_texts(texts: Any) -> list[str]:
    return check_texts(
        texts,
        "embed_documents takes a list of texts, not one string; use "
        "embed_query(text) for a single text.",
    )


class _Progress(Protocol):
    def update(self, n: int) -> Any: ...


class _StderrProgress:
    """A minimal progress line on stderr, used when tqdm is not installed."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    def update(self, n: int) -> None:
        self.done += n
        sys.stderr.write(f"\rEmbedding: {self.done}/{self.total} texts")
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class _NoProgress:
    def update(self, n: int) -> None:
        pass


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[_Progress]:
    """Progress over texts: tqdm when installed, else a line on stderr."""
    if not enabled:
        yield _NoProgress()
        return
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        yield _StderrProgress(total)
        return
    bar = tqdm(total=total, desc="Embedding", unit="text")
    try:
        yield bar
    finally:
        bar.close()
