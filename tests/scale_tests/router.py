"""Start and stop vLLM's router (``vllm-router``) in front of vLLM replicas.

`VLLMRouter` runs ``python -m vllm_router.launch_router`` from the rig's router
environment (``scripts/setup_rig.py --router``) in its own process group, waits
until its ``/health`` answers, and stops the group again (also at interpreter exit).
It mirrors `langchain_vllm.server.VLLMServer` for the scale tests.
"""

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
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from rig import router_python

ROUTER_MODULE = "vllm_router.launch_router"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class VLLMRouterError(RuntimeError):
    """The router could not be started (the message carries its log tail)."""


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for a free TCP port on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET `url` directly (no proxy); return status and body ((0, "") if down)."""
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return 0, ""


class VLLMRouter:
    """``vllm-router`` as a child process in front of the given worker URLs.

    Args:
        worker_urls: Root URLs of the vLLM replicas (no ``/v1``).
        policy: Routing policy (``round_robin``, ``consistent_hash``, ...).
        args: Further router flags (retries, health checks, ...).
        python: Interpreter with ``vllm-router``; the rig's router venv by default.
        host: Address to bind (loopback).
        startup_timeout: Seconds to wait for ``/health``.
    """

    def __init__(
        self,
        worker_urls: Sequence[str],
        *,
        policy: str = "round_robin",
        args: Sequence[str] = (),
        python: str | Path | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 120.0,
    ) -> None:
        self.worker_urls = list(worker_urls)
        self.policy = policy
        self.args = [str(a) for a in args]
        self.python = str(python) if python is not None else str(router_python())
        self.host = host
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def root_url(self) -> str:
        """The router's root URL."""
        if self.port is None:
            msg = "the router has no port yet: call start() first"
            raise VLLMRouterError(msg)
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``.../v1``) for ChatVLLM."""
        return f"{self.root_url}/v1"

    @property
    def command(self) -> list[str]:
        """The router's command line."""
        return [
            self.python,
            "-m",
            ROUTER_MODULE,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--prometheus-host",
            self.host,
            "--prometheus-port",
            str(self.metrics_port),
            "--worker-urls",
            *self.worker_urls,
            "--policy",
            self.policy,
            # Workers are healthy before the router starts: do not wait 30 s.
            "--worker-startup-check-interval",
            "1",
            *self.args,
        ]

    def start(self) -> VLLMRouter:
        """Start the router and wait until ``/health`` answers 200."""
        if not Path(self.python).exists():
            msg = (
                f"vllm-router's environment {self.python} is missing: run "
                "`python scripts/setup_rig.py --router` (make scale_test does)."
            )
            raise VLLMRouterError(msg)
        self.port = free_port(self.host)
        self.metrics_port = free_port(self.host)
        fd, name = tempfile.mkstemp(prefix="vllm-router-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        atexit.register(self.stop)
        began = time.monotonic()
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                msg = f"vllm-router exited with code {code}:\n{self.log_tail()}"
                raise VLLMRouterError(msg)
            if http_get(f"{self.root_url}/health", timeout=1.0)[0] == 200:
                break
            if time.monotonic() - began > self.startup_timeout:
                self.stop()
                msg = (
                    f"vllm-router not healthy within {self.startup_timeout:g} s:\n"
                    f"{self.log_tail()}"
                )
                raise VLLMRouterError(msg)
            time.sleep(0.3)
        sys.stderr.write(
            f"[vllm-router] {self.policy} on {self.base_url} -> {self.worker_urls} "
            f"after {time.monotonic() - began:.1f} s (log {self.log_path})\n"
        )
        return self

    def log_tail(self, n: int = 40) -> str:
        """The last `n` lines of the router's log."""
        if self.log_path is None:
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the router's process group, SIGKILL after `timeout`."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> VLLMRouter:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
