import pytest

from tests.unit_tests.fake_vllm import FakeVLLM


@pytest.fixture(autouse=True)
def _no_vllm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never see a developer's own server settings."""
    for name in ("VLLM_API_BASE", "VLLM_API_KEY", "OPENAI_API_KEY", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> FakeVLLM:
    return FakeVLLM()
