"""Unit tests of the test rig (`rig.py` at the root of the clone), without vLLM.

The rig is not part of the installed package; these tests check its presets, its
cache layout and the servers it builds (never started here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import rig
from langchain_vllm.server import VLLMServerError
from rig import RIG_SERVER_ENV, RIG_SERVERS, rig_cache_dir, rig_server
from tests.unit_tests._scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty rig cache; no VLLM_PYTHON."""
    monkeypatch.setenv("LANGCHAIN_VLLM_CACHE", str(tmp_path))
    monkeypatch.delenv("VLLM_PYTHON", raising=False)
    return tmp_path


def _build(cache: Path) -> Path:
    """A rig cache with the vLLM venv's python and the chat model folder."""
    python = cache / "vllm-venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    (cache / "models" / "smollm2-135m-instruct").mkdir(parents=True)
    return python


def test_rig_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LANGCHAIN_VLLM_CACHE", str(tmp_path))
    assert rig_cache_dir() == tmp_path
    assert rig.rig_models_dir() == tmp_path / "models"
    assert rig.rig_python() == tmp_path / "vllm-venv" / "bin" / "python"
    assert rig.router_python() == tmp_path / "router-venv" / "bin" / "python"
    monkeypatch.delenv("LANGCHAIN_VLLM_CACHE")
    assert rig_cache_dir() == Path.home() / ".cache" / "langchain-vllm"


def test_rig_presets() -> None:
    assert set(RIG_SERVERS) == {
        "chat",
        "reasoning",
        "plain",
        "vision",
        "lora",
        "embeddings",
    }
    assert "--tool-call-parser" in RIG_SERVERS["chat"].args
    assert "--reasoning-parser" in RIG_SERVERS["reasoning"].args
    plain = RIG_SERVERS["plain"]
    assert plain.model_dir == RIG_SERVERS["chat"].model_dir
    assert plain.served_model_name != RIG_SERVERS["chat"].served_model_name
    assert "--tool-call-parser" not in plain.args
    assert "--reasoning-parser" not in plain.args


def test_reasoning_preset_has_the_strict_template() -> None:
    """A file of the clone (absolute path: servers start from any folder)."""
    args = RIG_SERVERS["reasoning"].args
    template = Path(args[args.index("--chat-template") + 1])
    assert template == rig.STRICT_TEMPLATE
    assert template.is_absolute()
    assert template.is_file()
    text = template.read_text()
    assert "raise_exception('System message must be at the beginning.')" in text
    assert "enable_thinking is defined" in text
    assert "thinking is defined" in text
    assert "__THINK_DEFAULT__" not in text  # a finished template, not baked


def test_vision_preset_flags() -> None:
    vision = RIG_SERVERS["vision"]
    assert vision.model_dir == "smolvlm-135m-synthetic"
    # The chat server's flags (tools, JSON), plus the per-prompt image limit that
    # the live tests exceed on purpose.
    assert vision.args[: len(RIG_SERVERS["chat"].args)] == RIG_SERVERS["chat"].args
    assert vision.args[-2:] == ("--limit-mm-per-prompt", '{"image": 2}')


def test_chat_preset_flags() -> None:
    assert RIG_SERVERS["chat"].args == (
        "--max-model-len",
        "2048",
        "--dtype",
        "bfloat16",
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        "--structured-outputs-config",
        '{"backend": "xgrammar", "disable_any_whitespace": true}',
        "--enable-per-request-metrics",
    )
    assert RIG_SERVERS["reasoning"].args[-2:] == ("--reasoning-parser", "holo2")
    assert RIG_SERVERS["embeddings"].args == (
        "--dtype",
        "float32",
        "--runner",
        "pooling",
    )


def test_rig_server_missing_cache(cache: Path) -> None:
    with pytest.raises(VLLMServerError, match=r"setup_rig\.py.*make rig") as err:
        rig_server("chat")
    assert "smollm2-135m-instruct" in str(err.value)
    (cache / "models" / "smollm2-135m-instruct").mkdir(parents=True)
    with pytest.raises(VLLMServerError, match=r"vllm-venv.*setup_rig.*VLLM_PYTHON"):
        rig_server("chat")
    with pytest.raises(ValueError, match="chat"):
        rig_server("nope")


def test_rig_server_builds(cache: Path) -> None:
    python = _build(cache)
    server = rig_server("plain", port=8000, args=["--seed", "1"])
    assert server.python == str(python)
    assert server.model == str(cache / "models" / "smollm2-135m-instruct")
    assert server.served_model_name == "smollm2-135m-plain"
    assert server.command[-7:] == [
        "--max-model-len",
        "2048",
        "--dtype",
        "bfloat16",
        "--enforce-eager",
        "--seed",
        "1",
    ]
    assert not server.is_running
    compiled = rig_server("chat", eager=False, port=8000)
    assert "--enforce-eager" not in compiled.command
    assert "--enable-auto-tool-choice" in compiled.command


def test_lora_preset(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lora = RIG_SERVERS["lora"]
    # The chat server's model and flags, under a name of its own.
    assert lora.model_dir == RIG_SERVERS["chat"].model_dir
    assert lora.args == RIG_SERVERS["chat"].args
    assert lora.served_model_name != RIG_SERVERS["chat"].served_model_name
    assert dict(lora.lora_modules) == {"pineapple": rig.LORA_ADAPTER_DIR}
    assert not RIG_SERVERS["chat"].lora_modules
    _build(cache)
    with pytest.raises(VLLMServerError, match=r"smollm2-135m-lora-pineapple.*setup"):
        rig_server("lora")
    (cache / "models" / rig.LORA_ADAPTER_DIR).mkdir()
    monkeypatch.delenv("VLLM_ALLOW_RUNTIME_LORA_UPDATING", raising=False)
    server = rig_server("lora", port=8000)
    adapter = cache / "models" / rig.LORA_ADAPTER_DIR
    command = server.command
    flags = ["--enable-lora", "--lora-modules", f"pineapple={adapter}"]
    start = command.index("--enable-lora")
    assert command[start : start + 5] == [*flags, "--max-lora-rank", "8"]
    assert server.server_env()["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "1"
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    assert server.server_env()["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    chat = rig_server("chat", port=8000)
    assert "--enable-lora" not in chat.command
    assert "VLLM_CPU_OMP_THREADS_BIND" not in chat.server_env()


def test_rig_server_python_choice(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (cache / "models" / "smollm2-135m-instruct").mkdir(parents=True)
    # No rig venv needed when the caller names an interpreter.
    assert rig_server("chat", python="/given/python").python == "/given/python"
    monkeypatch.setenv("VLLM_PYTHON", "/env/python")
    assert rig_server("chat").python == "/env/python"


def test_rig_server_env(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _build(cache)
    for name in (*RIG_SERVER_ENV, "VLLM_NO_USAGE_STATS"):
        monkeypatch.delenv(name, raising=False)
    env = rig_server("chat").server_env()
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env["VLLM_NO_USAGE_STATS"] == "1"  # the launcher's own default
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "4")
    env = rig_server("chat", env={"HF_HUB_OFFLINE": "0"}).server_env()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "4"  # the caller's environment wins
    assert env["HF_HUB_OFFLINE"] == "0"  # and `env` wins over everything


def test_rig_module_needs_only_the_standard_library() -> None:
    """`scripts/setup_rig.py` imports it before anything is installed."""
    code = "import sys, rig; sys.exit('langchain_vllm' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert done.returncode == 0


def test_setup_script_shares_the_cache_dir() -> None:
    assert load_script("setup_rig").rig_cache_dir is rig.rig_cache_dir


def test_rig_is_not_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "langchain_vllm"
    ]
    import langchain_vllm.server

    assert not hasattr(langchain_vllm.server, "rig_server")
    assert not hasattr(langchain_vllm.server, "RIG_SERVERS")
