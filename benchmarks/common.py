"""Small helpers of the benchmark: statistics, interleaving, the stub process."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Samples:
    """Repeated measurements of one quantity (one value per repetition)."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def spread(self) -> float:
        """Half the range, relative to the median (0.05 = ±5 %)."""
        if len(self.values) < 2 or self.median == 0:
            return 0.0
        return (self.high - self.low) / 2 / self.median


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def rotations(names: Sequence[str], rep: int) -> list[str]:
    """`names` rotated by `rep`: A,B,C then B,C,A then C,A,B ... (no position bias)."""
    k = rep % len(names)
    return [*names[k:], *names[:k]]


def paired_ratios(samples: dict[str, Samples], name: str, reference: str) -> Samples:
    """Per-repetition ratios name/reference (pairs taken within one interleaved rep)."""
    out = Samples()
    for a, b in zip(samples[name].values, samples[reference].values, strict=True):
        out.add(a / b)
    return out


def timed(fn: Callable[[], Any], n: int) -> float:
    """Seconds per call of `fn`, over `n` calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


class StubProcess:
    """The HTTP stub (`benchmarks/stub.py`) in its own process on 127.0.0.1."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.stub"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("PORT "):
            self._proc.kill()
            msg = f"the stub did not start (said {line!r})"
            raise RuntimeError(msg)
        self.port = int(line.split()[1])
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root_url}/v1"

    def stats(self) -> dict[str, int]:
        """Requests counted since the last reset, by `METHOD /path`."""
        import httpx2

        return dict(httpx2.get(f"{self.root_url}/_stats").json())

    def reset(self) -> None:
        """Zero the request counts."""
        import httpx2

        httpx2.post(f"{self.root_url}/_reset")

    def stop(self) -> None:
        self._proc.kill()
        self._proc.wait()

    def __enter__(self) -> StubProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
