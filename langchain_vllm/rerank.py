"""vLLM document reranking (vLLM's `/v1/rerank`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import openai
from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from langchain_vllm._client import VLLMClient, check_texts
from langchain_vllm._json_client import (
    ANY_KEYWORD,
    AsyncJSONEndpoint,
    JSONEndpoint,
    check_keywords,
)
from langchain_vllm._link import ServerLink
from langchain_vllm._loop import in_event_loop
from langchain_vllm._settings import DEFAULT_API_BASE, make_clients
from langchain_vllm.errors import VLLMModelNotFoundError, VLLMServerFeatureError
from langchain_vllm.models import describe
from langchain_vllm.params import VLLMPoolingParams

__all__ = [
    "VLLMRerank",
]


class VLLMRerank(VLLMClient, BaseDocumentCompressor, VLLMPoolingParams):
    """Rerank documents with a model served by vLLM (`POST /v1/rerank`).

    A LangChain document compressor: give it the documents a retriever found and the
    query, get back the `top_n` most relevant, most relevant first, each with its
    score in `metadata["relevance_score"]`. vLLM serves `/rerank` for cross-encoder
    rerankers (e.g. `BAAI/bge-reranker-v2-m3`) and for embedding models (cosine
    similarity).

    Setup:
        Install `langchain-vllm` and start a vLLM server with a reranker or an
        embedding model:

        ```bash
        pip install -U langchain-vllm
        vllm serve BAAI/bge-reranker-v2-m3  # or an embedding model, --runner pooling
        ```

        `VLLM_API_BASE` and `VLLM_API_KEY` point it at the server, as for `ChatVLLM`.

    Key init args — rerank params:
        model: str | None
            The served reranker (or embedding model); omitted, the only model
            `GET /v1/models` lists, asked on first use.
        top_n: int | None
            How many documents to keep (default 3); None keeps all, reordered.
        truncate_prompt_tokens: int | None
            Keep only the last N tokens of each query-document pair.

    Key init args — client params:
        base_url, api_key, timeout, max_retries:
            As for `ChatVLLM`: the server from `VLLM_API_BASE`, the key from
            `VLLM_API_KEY`, else their defaults.
            vLLM serves `/v1/rerank`, also through gateways that forward only `/v1/*`.

    Instantiate:
        ```python
        from langchain_vllm import VLLMRerank

        reranker = VLLMRerank(top_n=2)  # model discovered on first use
        ```

    Compress documents:
        ```python
        from langchain_core.documents import Document

        docs = [
            Document(page_content="Bananas are yellow."),
            Document(page_content="Paris is the capital of France."),
            Document(page_content="Dogs bark at night."),
        ]
        best = reranker.compress_documents(docs, "What is the capital of France?")
        best[0].page_content, best[0].metadata["relevance_score"]
        # ('Paris is the capital of France.', 0.89...)
        ```

    Rerank texts:
        ```python
        reranker.rerank("capital of France", ["Bananas", "Paris is in France"])
        # [{'index': 1, 'relevance_score': 0.7...}, {'index': 0, ...}]
        ```

    Async:
        ```python
        await reranker.acompress_documents(docs, "What is the capital of France?")
        await reranker.arerank("capital of France", ["Bananas", "Paris"])
        ```

    With a retriever:
        ```python
        from langchain_classic.retrievers import ContextualCompressionRetriever

        retriever = ContextualCompressionRetriever(
            base_compressor=reranker, base_retriever=vectorstore.as_retriever()
        )
        ```
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model: str | None = None
    """Served model name; None discovers the only served model on first use."""

    top_n: int | None = Field(default=3, gt=0)
    """Number of documents to return, most relevant first; None returns all."""

    request_timeout: float | None = Field(default=None, alias="timeout")
    """Timeout in seconds for requests (None: the openai client's default)."""

    max_retries: int | None = None
    """Max retries of failed requests (None: the openai client's default)."""

    default_headers: dict[str, str] | None = None
    """Headers sent with every request."""

    http_client: Any | None = Field(default=None, exclude=True)
    """Optional `httpx.Client` for sync calls."""

    http_async_client: Any | None = Field(default=None, exclude=True)
    """Optional `httpx.AsyncClient` for async calls (else one per event loop)."""

    extra_body: dict[str, Any] | None = None
    """Extra JSON fields for every `/rerank` request; merged under per-call ones."""

    _endpoint: JSONEndpoint = PrivateAttr()
    _aendpoint: AsyncJSONEndpoint = PrivateAttr()

    _vllm_params: ClassVar[type[BaseModel]] = VLLMPoolingParams
    _path: ClassVar[str] = "/rerank"
    _model_field: ClassVar[str] = "model"

    @model_validator(mode="after")
    def _link_vllm_rerank_server(self) -> Self:
        client, async_client = make_clients(
            self.openai_api_base or DEFAULT_API_BASE,
            self.openai_api_key,
            timeout=self.request_timeout,
            max_retries=self.max_retries,
            default_headers=self.default_headers,
        )
        if self.http_client is not None:
            client = client.copy(http_client=self.http_client)
        if self.http_async_client is not None:
            async_client = async_client.copy(http_client=self.http_async_client)
        self._endpoint, self._aendpoint = self._connect(
            client, async_client, ANY_KEYWORD
        )
        return self

    @property
    def _endpoint_url(self) -> str:
        return f"{self._link.base_url}/rerank"

    # -- rerank ----------------------------------------------------------------------
    def rerank(
        self,
        query: str,
        texts: Sequence[str],
        *,
        top_n: int | None = -1,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """Score `texts` against `query`.

        Args:
            query: The query.
            texts: The texts to rank.
            top_n: How many to return; -1 (default) uses the instance's `top_n`,
                None returns all.
            **kwargs: vLLM parameters for this call (`truncate_prompt_tokens`,
                ...) and `extra_body` (other `/rerank` request fields).

        Returns:
            `{"index": i, "relevance_score": s}` per returned text, highest score
            first; `index` is the text's position in `texts`.
        """
        texts = _check_inputs(query, texts)
        if not texts:
            return []
        body = self._body(query, texts, top_n, kwargs)
        try:
            response = self._endpoint.create(**body)
        except openai.APIError as e:
            raise self._feature_error(self._link.translate(e)) from e
        except ValueError as e:  # a body that is not JSON
            raise self._malformed(e) from e
        return self._results(response, len(texts))

    async def arerank(
        self,
        query: str,
        texts: Sequence[str],
        *,
        top_n: int | None = -1,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """Async `rerank`."""
        texts = _check_inputs(query, texts)
        if not texts:
            return []
        await self._link.aclient()  # this loop's client, made off the loop
        if not self.model:
            await self._link.aresolve_model(None)
        body = self._body(query, texts, top_n, kwargs)
        try:
            response = await self._aendpoint.create(**body)
        except openai.APIError as e:
            raise self._feature_error(await self._link.atranslate(e)) from e
        except ValueError as e:  # a body that is not JSON
            raise self._malformed(e) from e
        return self._results(response, len(texts))

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """The `top_n` documents most relevant to `query`, most relevant first.

        Args:
            documents: The retrieved documents.
            query: The query.
            callbacks: Unused (kept for the compressor interface).

        Returns:
            Copies of the chosen documents with `metadata["relevance_score"]`.
        """
        ranked = self.rerank(query, [doc.page_content for doc in documents])
        return _pick(documents, ranked)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async `compress_documents`."""
        ranked = await self.arerank(query, [doc.page_content for doc in documents])
        return _pick(documents, ranked)

    # -- internals -------------------------------------------------------------------
    def _body(
        self,
        query: str,
        texts: list[str],
        top_n: int | None,
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        kwargs = dict(kwargs)
        vllm_body = self._call_body(kwargs)
        check_keywords(kwargs, frozenset())  # other fields go in `extra_body`
        n = self.top_n if top_n == -1 else top_n
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            msg = f"top_n must be a positive int or None, got {n!r}"
            raise ValueError(msg)
        body: dict[str, Any] = {
            "model": self._link.resolve_model(self.model),
            "query": query,
            "documents": texts,
            **vllm_body,
        }
        if n is not None:
            body["top_n"] = min(n, len(texts))
        return body

    def _results(self, response: Any, count: int) -> list[dict[str, Any]]:
        results = response.get("results") if isinstance(response, dict) else None
        try:
            ranked = [
                {
                    "index": int(r["index"]),
                    "relevance_score": float(r["relevance_score"]),
                }
                for r in results or ()
            ]
        except (KeyError, TypeError, ValueError):
            ranked = None
        if (
            ranked is None
            or results is None
            or any(not 0 <= r["index"] < count for r in ranked)
        ):
            raise self._malformed(f"no rerank results in {response!r:.200}")
        ranked.sort(key=lambda r: r["relevance_score"], reverse=True)
        return ranked

    def _feature_error(self, error: BaseException) -> BaseException:
        """A model that cannot rerank answers 404 without naming a model."""
        if isinstance(error, openai.NotFoundError) and not isinstance(
            error, VLLMModelNotFoundError
        ):
            model = self.model or _served(self._link)
            return VLLMServerFeatureError(
                f"The vLLM server at {self._link.root_url} cannot rerank with model "
                f"{model!r}: POST /v1/rerank answered {error.status_code} Not Found. "
                "Serve a reranker (cross-encoder, e.g. BAAI/bge-reranker-v2-m3) or an "
                "embedding model started with `--runner pooling`, and point "
                "`base_url` at that server.",
                response=error.response,
                body=error.body,
            )
        return error


def _served(link: ServerLink) -> str:
    try:
        cards = link.known_models() if in_event_loop() else link.models()
        return describe(cards) if cards else "unknown"
    except Exception:
        return "unknown"


def _check_inputs(query: str, texts: Sequence[str]) -> list[str]:
    if not isinstance(query, str):
        msg = f"query must be a str, not {type(query).__name__}"
        raise TypeError(msg)
    return check_texts(texts, "texts must be a list of strings, not one string")


def _pick(
    documents: Sequence[Document], ranked: list[dict[str, Any]]
) -> list[Document]:
    picked = []
    for result in ranked:
        doc = documents[result["index"]]
        metadata = {**doc.metadata, "relevance_score": result["relevance_score"]}
        picked.append(
            Document(page_content=doc.page_content, metadata=metadata, id=doc.id)
        )
    return picked
