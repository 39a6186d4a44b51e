"""Unit tests of `langchain_vllm.server` without vLLM.

A fake "python" (a small script) stands in for vLLM's interpreter: it parses the
same command line and runs a tiny stdlib HTTP server on loopback that answers
``/health``, so start, health polling, stop, kill, restart and the error paths
are exercised for real. Only 127.0.0.1 is reached (``allow_hosts``).
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from langchain_vllm import server as server_mod
from langchain_vllm.server import SERVER_MODULE, VLLMServer, VLLMServerError
from tests.server_faults import kill

loopback = pytest.mark.allow_hosts(["127.0.0.1"])

FAKE_SERVER = r'''#!{python}
"""Fake `python -m vllm.entrypoints.openai.api_server ...` for unit tests."""
import http.server, os, signal, subprocess, sys, time

argv = sys.argv[1:]
assert argv[:2] == ["-m", "vllm.entrypoints.openai.api_server"], argv
opts = dict(zip(argv[2::2], argv[3::2]))
mode = os.environ.get("FAKE_MODE", "ok")
if mode == "novllm":  # what a python without vLLM says, word for word
    print(f"{{sys.argv[0]}}: Error while finding module specification for "
          f"{{argv[1]!r}} (ModuleNotFoundError: No module named 'vllm')", flush=True)
    sys.exit(1)
print("fake vllm starting", " ".join(argv), flush=True)
for i in range(60):
    print(f"log line {{i}}", flush=True)
if os.environ.get("FAKE_ENV_OUT"):
    with open(os.environ["FAKE_ENV_OUT"], "w") as fh:
        for key in sorted(os.environ):
            fh.write(f"{{key}}={{os.environ[key]}}\n")
if mode == "exit":
    print("fatal: no such model", flush=True)
    sys.exit(3)
if os.environ.get("FAKE_CHILD_PIDFILE"):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.environ["FAKE_CHILD_PIDFILE"], "w") as fh:
        fh.write(str(child.pid))
if mode == "ignore_term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "hang":
    time.sleep(120)
    sys.exit(0)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/health" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


time.sleep(float(os.environ.get("FAKE_DELAY", "0")))
httpd = http.server.HTTPServer((opts["--host"], int(opts["--port"])), Handler)
print("fake vllm serving", flush=True)
httpd.serve_forever()
'''


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    script = tmp_path / "fake-python"
    script.write_text(FAKE_SERVER.format(python=sys.executable))
    script.chmod(0o755)
    return script


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_mod, "_POLL_INTERVAL", 0.05)


def _alive(pid: int) -> bool:
    """Whether `pid` is a live process (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in "ZX"


def _wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _health(server: VLLMServer) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{server.root_url}/health", timeout=2) as resp:
        return int(resp.status)


def _make(fake_python: Path, tmp_path: Path, **kwargs: object) -> VLLMServer:
    model = tmp_path / "my-model"
    model.mkdir(exist_ok=True)
    kwargs.setdefault("quiet", True)
    kwargs.setdefault("log_file", tmp_path / "server.log")
    kwargs.setdefault("startup_timeout", 20.0)
    return VLLMServer(model, python=fake_python, **kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------- no processes
def test_command_line(tmp_path: Path) -> None:
    model = tmp_path / "smol"
    model.mkdir()
    server = VLLMServer(
        model,
        python="/opt/py/bin/python",
        port=8123,
        args=["--max-model-len", "2048"],
        api_key="sk-very-secret",
    )
    assert server.command == [
        "/opt/py/bin/python",
        "-m",
        SERVER_MODULE,
        "--model",
        str(model),
        "--served-model-name",
        "smol",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--max-model-len",
        "2048",
        "--api-key",
        "sk-very-secret",
    ]
    assert server.base_url == "http://127.0.0.1:8123/v1"
    assert server.root_url == "http://127.0.0.1:8123"
    assert server.served_model_name == "smol"
    assert "sk-very-secret" not in repr(server)
    assert "sk-very-secret" not in str(server)
    assert not server.is_running
    assert server.pid is None


def test_lora_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(server_mod.RUNTIME_LORA_ENV, raising=False)
    server = VLLMServer(
        "m",
        python="py",
        port=9,
        args=["--enforce-eager"],
        lora_modules={"pineapple": Path("/lora/pine"), "kiwi": "org/kiwi-lora"},
        max_lora_rank=8,
        runtime_lora_updating=True,
    )
    assert server.command[-7:] == [
        "--enable-lora",
        "--lora-modules",
        "pineapple=/lora/pine",
        "kiwi=org/kiwi-lora",
        "--max-lora-rank",
        "8",
        "--enforce-eager",
    ]
    assert server.command.count("--enable-lora") == 1
    assert server.server_env()["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "1"
    # Runtime updating alone still needs --enable-lora; nothing LoRA: no flags.
    runtime = VLLMServer("m", python="py", port=9, runtime_lora_updating=True)
    assert runtime.command[-1] == "--enable-lora"
    plain = VLLMServer("m", python="py", port=9)
    assert not any("lora" in a for a in plain.command)
    assert server_mod.RUNTIME_LORA_ENV not in plain.server_env()
    ranked = VLLMServer("m", python="py", port=9, max_lora_rank=16)
    assert ranked.command[-3:] == ["--enable-lora", "--max-lora-rank", "16"]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"lora_modules": {"a=b": "/p"}}, ValueError, "no '=' or spaces"),
        ({"lora_modules": {"": "/p"}}, ValueError, "non-empty name"),
        ({"lora_modules": {"a": ""}}, ValueError, "empty path"),
        ({"lora_modules": ["a=/p"]}, TypeError, "map adapter names to paths"),
        ({"max_lora_rank": 0}, ValueError, "positive integer"),
        ({"max_lora_rank": "8"}, ValueError, "positive integer"),
        ({"max_lora_rank": True}, ValueError, "positive integer"),
    ],
)
def test_lora_options_checked(
    kwargs: dict[str, object], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        VLLMServer("m", python="py", **kwargs)  # type: ignore[arg-type]


def test_construction_does_no_work(tmp_path: Path) -> None:
    server = VLLMServer(tmp_path / "nowhere", python="/no/such/python")
    assert server.port is None
    assert server.log_path is None
    assert server.log_tail() == ""
    with pytest.raises(VLLMServerError, match="start"):
        _ = server.base_url
    server.stop()  # never started: a no-op
    kill(server)


def test_served_name_and_host(tmp_path: Path) -> None:
    server = VLLMServer("org/some-model", python="py", port=1, served_model_name="x")
    assert server.served_model_name == "x"
    assert VLLMServer("org/some-model", python="py").served_model_name == (
        "org/some-model"
    )
    assert "--api-key" not in server.command
    wildcard = VLLMServer("m", python="py", host="0.0.0.0", port=9)
    assert wildcard.command[wildcard.command.index("--host") + 1] == "0.0.0.0"
    assert wildcard.base_url == "http://127.0.0.1:9/v1"
    v6 = VLLMServer("m", python="py", host="::1", port=9)
    assert v6.base_url == "http://[::1]:9/v1"
    with pytest.raises(TypeError):
        VLLMServer("m", args="--enforce-eager")  # type: ignore[arg-type]


def test_default_python(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VLLM_PYTHON", raising=False)
    # No project cache is consulted: a built rig venv is not the default.
    monkeypatch.setenv("LANGCHAIN_VLLM_CACHE", str(tmp_path))
    rig_python = tmp_path / "vllm-venv" / "bin" / "python"
    rig_python.parent.mkdir(parents=True)
    rig_python.touch()
    assert VLLMServer("m").python == sys.executable
    monkeypatch.setenv("VLLM_PYTHON", "/env/python")
    assert VLLMServer("m").python == "/env/python"
    assert VLLMServer("m", python=Path("/given")).python == "/given"


def test_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_NO_USAGE_STATS", "0")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_CPU_KVCACHE_SPACE"):
        monkeypatch.delenv(name, raising=False)
    env = VLLMServer("m", python="py", env={"DO_NOT_TRACK": "0"}).server_env()
    assert env["VLLM_NO_USAGE_STATS"] == "0"  # the caller's environment wins
    assert env["DO_NOT_TRACK"] == "0"  # and `env` wins over everything
    monkeypatch.delenv("VLLM_NO_USAGE_STATS")
    env = VLLMServer("m", python="py").server_env()
    assert env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["DO_NOT_TRACK"] == "1"
    # Offline mode and the KV cache size are the caller's choice, not defaults.
    assert "HF_HUB_OFFLINE" not in env
    assert "TRANSFORMERS_OFFLINE" not in env
    assert "VLLM_CPU_KVCACHE_SPACE" not in env


def _no_project_words(message: str) -> None:
    """A message of the installed package makes sense without a clone."""
    for pattern in (r"\bmake\b", "scripts/", "setup_rig", r"\brig\b", "CACHE"):
        assert not re.search(pattern, message), (pattern, message)


@loopback
def test_missing_interpreter(tmp_path: Path) -> None:
    server = VLLMServer(
        "m", python=tmp_path / "no-python", quiet=True, log_file=tmp_path / "log"
    )
    with pytest.raises(VLLMServerError, match=r"Cannot run .*no-python") as err:
        server.start()
    message = str(err.value)
    assert str(tmp_path / "no-python") in message
    assert "VLLM_PYTHON" in message
    assert "pip install vllm" in message
    _no_project_words(message)
    assert not server.is_running
    assert server.pid is None


def test_module_docs_name_no_project_tooling() -> None:
    for text in (server_mod.__doc__, VLLMServer.__doc__, server_mod.PYTHON_HINT):
        assert text
        _no_project_words(text)
    assert set(server_mod.__all__) == {"VLLMServer", "VLLMServerError"}


# ------------------------------------------------------- with a fake server
@loopback
def test_start_stop_free_port(fake_python: Path, tmp_path: Path) -> None:
    server = _make(fake_python, tmp_path)
    with server as started:
        assert started is server
        assert server.is_running
        assert server.port is not None
        assert server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert _health(server) == 200
        assert server.startup_seconds is not None
        assert server.log_path is not None
        assert "fake vllm starting" in server.log_tail(100)
        assert server.log_tail(2).count("\n") == 1
        pid = server.pid
        assert pid is not None
        assert server.start() is server  # idempotent
        assert server.pid == pid
    assert not server.is_running
    assert server.pid is None
    assert _wait_dead(pid)
    server.stop()  # twice is fine


@loopback
def test_environment_reaches_server(
    fake_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLLM_NO_USAGE_STATS", raising=False)
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    out = tmp_path / "env.txt"
    with _make(fake_python, tmp_path, env={"FAKE_ENV_OUT": str(out)}):
        pass
    lines = out.read_text().splitlines()
    assert "VLLM_NO_USAGE_STATS=1" in lines
    assert "DO_NOT_TRACK=1" in lines


@loopback
def test_stop_kills_process_group(fake_python: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    server = _make(fake_python, tmp_path, env={"FAKE_CHILD_PIDFILE": str(pidfile)})
    server.start()
    child = int(pidfile.read_text())
    leader = server.pid
    assert leader is not None
    assert _alive(child)
    assert os.getpgid(child) == leader
    server.stop()
    assert _wait_dead(leader)
    assert _wait_dead(child)
    server.stop()


@loopback
def test_stop_escalates_to_sigkill(fake_python: Path, tmp_path: Path) -> None:
    server = _make(fake_python, tmp_path, env={"FAKE_MODE": "ignore_term"})
    server.start()
    pid = server.pid
    assert pid is not None
    began = time.monotonic()
    server.stop(timeout=0.5)
    assert time.monotonic() - began < 5
    assert _wait_dead(pid)


@loopback
def test_kill_and_restart_same_port(fake_python: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    log = tmp_path / "logs" / "server.log"
    server = _make(
        fake_python,
        tmp_path,
        env={"FAKE_CHILD_PIDFILE": str(pidfile)},
        log_file=log,
    )
    server.start()
    port, pid, child = server.port, server.pid, int(pidfile.read_text())
    assert pid is not None
    kill(server)
    assert not server.is_running
    assert _wait_dead(pid)
    assert _wait_dead(child)
    server.restart()
    try:
        assert server.port == port
        assert server.pid != pid
        assert _health(server) == 200
        assert server.log_path == log
        assert log.read_text().count("fake vllm starting") == 2
        server.restart()
        assert server.port == port
        assert _health(server) == 200
    finally:
        server.stop()


@loopback
def test_early_exit_raises_with_log_tail(fake_python: Path, tmp_path: Path) -> None:
    server = _make(fake_python, tmp_path, env={"FAKE_MODE": "exit"})
    with pytest.raises(VLLMServerError, match="exited with code 3") as err:
        server.start()
    message = str(err.value)
    assert "fatal: no such model" in message
    assert "log line 59" in message
    assert "log line 5\n" not in message  # only the tail, about 40 lines
    assert str(server.log_path) in message
    assert not server.is_running


@loopback
def test_python_without_vllm_says_what_to_do(fake_python: Path, tmp_path: Path) -> None:
    server = _make(fake_python, tmp_path, env={"FAKE_MODE": "novllm"})
    with pytest.raises(VLLMServerError, match="exited with code 1") as err:
        server.start()
    message = str(err.value)
    assert f"The interpreter {fake_python} has no vLLM." in message
    assert "VLLM_PYTHON" in message
    assert "No module named 'vllm'" in message  # the log tail follows
    _no_project_words(message)


@loopback
def test_early_exit_without_hint(fake_python: Path, tmp_path: Path) -> None:
    server = _make(fake_python, tmp_path, env={"FAKE_MODE": "exit"})
    with pytest.raises(VLLMServerError) as err:
        server.start()
    assert "has no vLLM" not in str(err.value)


@loopback
def test_timeout_raises_and_kills_group(fake_python: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    server = _make(
        fake_python,
        tmp_path,
        env={"FAKE_MODE": "hang", "FAKE_CHILD_PIDFILE": str(pidfile)},
        startup_timeout=1.0,
    )
    began = time.monotonic()
    with pytest.raises(VLLMServerError, match=r"not healthy.*within 1 s") as err:
        server.start()
    assert time.monotonic() - began < 10
    assert "log line 59" in str(err.value)
    assert not server.is_running
    assert _wait_dead(int(pidfile.read_text()))


@loopback
def test_progress_lines(
    fake_python: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(server_mod, "_PROGRESS_EVERY", 0.2)
    server = _make(fake_python, tmp_path, quiet=False, env={"FAKE_DELAY": "0.7"})
    with server:
        pass
    err = capsys.readouterr().err
    assert f"[vllm-server] waiting for my-model on {server.base_url} ..." in err
    assert "ready" in err


@loopback
def test_port_in_use(fake_python: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = _make(fake_python, tmp_path, port=port)
        with pytest.raises(VLLMServerError, match="already in use"):
            server.start()
        assert server.pid is None


@loopback
def test_atexit_registration(
    fake_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered: list[object] = []
    unregistered: list[object] = []
    monkeypatch.setattr(server_mod.atexit, "register", registered.append)
    monkeypatch.setattr(server_mod.atexit, "unregister", unregistered.append)
    server = _make(fake_python, tmp_path)
    with server:
        assert registered == [server.stop]
    assert server.stop in unregistered
