"""The public API: what the package root exports, and where public objects live."""

import importlib
import pkgutil

import langchain_vllm

EXPECTED_ALL = [
    "ChatVLLM",
    "ChatVLLMTokenTurns",
    "VLLMEmbeddings",
    "VLLMOpenAI",
    "VLLMRerank",
    "__version__",
]


def _public_modules() -> list[str]:
    return [
        f"langchain_vllm.{info.name}"
        for info in pkgutil.iter_modules(langchain_vllm.__path__)
        if not info.name.startswith("_")
    ]


def test_all_imports() -> None:
    assert sorted(langchain_vllm.__all__) == sorted(EXPECTED_ALL)


def test_public_modules() -> None:
    assert sorted(_public_modules()) == [
        "langchain_vllm.chat_models",
        "langchain_vllm.embeddings",
        "langchain_vllm.errors",
        "langchain_vllm.llms",
        "langchain_vllm.lora",
        "langchain_vllm.models",
        "langchain_vllm.params",
        "langchain_vllm.prompts",
        "langchain_vllm.rerank",
        "langchain_vllm.rollouts",
        "langchain_vllm.server",
        "langchain_vllm.sessions",
        "langchain_vllm.structured",
        "langchain_vllm.token_turns",
    ]


def test_public_objects_live_in_public_modules() -> None:
    """Docs, pickles and tracebacks show `__module__`: never a private module."""
    names = {
        "langchain_vllm": [n for n in langchain_vllm.__all__ if n != "__version__"]
    }
    for module_name in _public_modules():
        module = importlib.import_module(module_name)
        assert hasattr(module, "__all__"), f"{module_name} declares no __all__"
        names[module_name] = list(module.__all__)
    private = {}
    for module_name, public in names.items():
        module = importlib.import_module(module_name)
        for name in public:
            home = getattr(getattr(module, name), "__module__", module_name)
            if any(part.startswith("_") for part in home.split(".")):
                private[f"{module_name}.{name}"] = home
    assert private == {}
