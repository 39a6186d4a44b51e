"""Every private upstream name langchain_vllm touches, each with a public fallback.

The package's fast paths lean on names that openai, httpx2, langchain-openai,
langchain-core and pydantic do not promise to keep: the SDK's request builder and
retry helpers (`_direct`), its stream decoder, a pydantic model built without
validation (`_plain_chunks`), langchain-openai's Responses event converter
(`_responses`), and so on. Each one is a `Seam` (`registry`): looked up and checked
once, lazily (the first call that needs it, never at import), and cached. When a
seam is missing or changed, its `ok` is False, ONE debug line on the
`langchain_vllm` logger names it, and the callers take the public path instead (the
SDK's own `post`/`create`, langchain-openai's own converters and stream readers,
langchain-core's public conversion and validation): slower, same results.

The private names are read only here (`access`), with one exception: the state
check `_direct.client_state` makes on every request reads the client fields that
`CLIENT_FIELDS`, `HEADER_LIST` and `BASE_URL_FIELD` checked, inline, so that a
request stays in one module. `tests/unit_tests/test_seams.py` takes each seam away in
turn; `tests/unit_tests/test_contract.py` fails when one goes missing upstream.
"""

from langchain_vllm._seams.access import (
    base_url_of,
    build_request,
    convert_input,
    drain,
    dumps,
    http_client,
    plain_client,
    raw_header,
    request_exceptions,
    request_options,
    resource_client,
    should_retry,
    sleep_for_retry,
    sse_decoder,
    status_error,
    timeout_exceptions,
)
from langchain_vllm._seams.registry import (
    BASE_URL_FIELD,
    BUILD_REQUEST,
    CLIENT_FIELDS,
    CONVERT_INPUT,
    DERIVED,
    DIRECT,
    DIRECT_PARTS,
    DRAIN,
    DUMPS,
    HEADER_LIST,
    HTTP_CLIENT,
    HTTPX_ERRORS,
    MISSING,
    PROMPT_VALIDATION,
    PYDANTIC_BUILD,
    RAW_HEADER,
    REQUEST_OPTIONS,
    RESOURCE_CLIENT,
    RESPONSES_CONVERTER,
    RESPONSES_CONVERTER_PARAMS,
    RETRY_HELPERS,
    SDK_ONLY,
    SEAMS,
    SSE_DECODER,
    STATUS_ERROR,
    UNCHECKED,
    Seam,
    logger,
    model_builder,
)

__all__ = [
    "BASE_URL_FIELD",
    "BUILD_REQUEST",
    "CLIENT_FIELDS",
    "CONVERT_INPUT",
    "DERIVED",
    "DIRECT",
    "DIRECT_PARTS",
    "DRAIN",
    "DUMPS",
    "HEADER_LIST",
    "HTTPX_ERRORS",
    "HTTP_CLIENT",
    "MISSING",
    "PROMPT_VALIDATION",
    "PYDANTIC_BUILD",
    "RAW_HEADER",
    "REQUEST_OPTIONS",
    "RESOURCE_CLIENT",
    "RESPONSES_CONVERTER",
    "RESPONSES_CONVERTER_PARAMS",
    "RETRY_HELPERS",
    "SDK_ONLY",
    "SEAMS",
    "SSE_DECODER",
    "STATUS_ERROR",
    "UNCHECKED",
    "Seam",
    "base_url_of",
    "build_request",
    "convert_input",
    "drain",
    "dumps",
    "http_client",
    "logger",
    "model_builder",
    "plain_client",
    "raw_header",
    "request_exceptions",
    "request_options",
    "resource_client",
    "should_retry",
    "sleep_for_retry",
    "sse_decoder",
    "status_error",
    "timeout_exceptions",
]
