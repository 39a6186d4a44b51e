"""The rig's live servers of a test session: started on first use, shared, stopped
at the end (the integration suite's and the compat smoke's)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

import pytest

from langchain_vllm.server import VLLMServer
from rig import cpu_dtype, rig_server


def dtype_header() -> str:
    """The line the live suites print first: which dtype the rig serves in, and why."""
    dtype, why = cpu_dtype()
    return f"rig servers in {dtype}: {why}"


def say_dtype(session: pytest.Session) -> None:
    """Print `dtype_header` at the start of a live session (also under ``-q``)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(dtype_header())


class RigServers:
    """The rig's servers by kind (the keys of `rig.RIG_SERVERS`).

    Args:
        vllm_version: The vLLM release they run (None: the rig's own).
        max_servers: At most this many live: a new kind stops the one started
            first (None: no limit).
        own_env: Kind -> environment variable that points its tests at a server of
            your own instead.
    """

    def __init__(
        self,
        *,
        vllm_version: str | None = None,
        max_servers: int | None = None,
        own_env: Mapping[str, str] | None = None,
    ) -> None:
        self.vllm_version = vllm_version
        self.max_servers = max_servers
        self.own_env = dict(own_env or {})
        self._servers: dict[str, VLLMServer] = {}
        self._errors: dict[str, BaseException] = {}
        self._lock = threading.Lock()

    def server(self, kind: str) -> VLLMServer:
        where = f" on vLLM {self.vllm_version}" if self.vllm_version else ""
        with self._lock:
            if kind in self._errors:
                msg = (
                    f"The {kind} test server{where} failed to start earlier in this "
                    "session"
                )
                raise RuntimeError(msg) from self._errors[kind]
            if kind not in self._servers:
                while self.max_servers and len(self._servers) >= self.max_servers:
                    self._servers.pop(next(iter(self._servers))).stop()
                try:
                    server = rig_server(kind, vllm_version=self.vllm_version)
                    self._servers[kind] = server.start()
                except BaseException as e:
                    self._errors[kind] = e
                    raise
            return self._servers[kind]

    def url(self, kind: str) -> str:
        own = os.environ.get(self.own_env.get(kind, ""))
        return own or self.server(kind).base_url

    def release(self, kind: str) -> None:
        """Stop one server now (its memory back); a later `server(kind)` restarts it."""
        with self._lock:
            server = self._servers.pop(kind, None)
        if server is not None:
            server.stop()

    def stop_all(self) -> None:
        for server in self._servers.values():
            server.stop()
