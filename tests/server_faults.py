"""Fault helpers for tests that start a `VLLMServer` ("the server died")."""

from __future__ import annotations

import contextlib
import os
import signal

from langchain_vllm.server import VLLMServer


def kill(server: VLLMServer) -> None:
    """Kill the server's whole process group with SIGKILL at once (no cleanup).

    The server then counts as stopped (`restart` starts it again). Safe when not
    running.
    """
    pid = server.pid  # start_new_session: the server leads its own group
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    server.stop()  # reaps the dead process: nothing is left to signal
