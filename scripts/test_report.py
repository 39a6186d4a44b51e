"""`make test` reports itself: each part's wall time and the slowest tests of all parts.

    python scripts/test_report.py run PART CMD...   # time CMD; its pytest runs write
                                                    # .test-reports/PART.xml (JUnit)
    python scripts/test_report.py summary           # the parts' totals, the slowest tests

``run`` adds ``--junitxml`` to ``$PYTEST_ADDOPTS``, so every part's own make target
stays as it is. A part that fails prints the summary so far, then fails with the
command's exit code (`make test` goes on with the next part); ``summary`` fails when
any part did. Only the standard library: it runs before the suite does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPORTS = Path(os.environ.get("TEST_REPORTS", ".test-reports"))
"""Where the parts' times (``PART.json``) and JUnit files (``PART.xml``) go."""
SLOWEST = 15
"""How many of the slowest tests the summary lists."""


def run(part: str, cmd: list[str]) -> int:
    REPORTS.mkdir(parents=True, exist_ok=True)
    junit = (REPORTS / f"{part}.xml").resolve()
    env = dict(os.environ)
    env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} --junitxml={junit}"
    began = time.monotonic()
    code = subprocess.call(cmd, env=env)
    took = time.monotonic() - began
    record = {"part": part, "seconds": round(took, 1), "exit": code, "at": time.time()}
    (REPORTS / f"{part}.json").write_text(json.dumps(record))
    print(f"[test-report] part {part}: {took:.0f} s, exit {code}", flush=True)
    if code:
        summary()  # the parts so far
    return code


def _tests(part: str) -> list[tuple[float, str, str]]:
    path = REPORTS / f"{part}.xml"
    if not path.exists():
        return []
    rows = []
    for case in ET.parse(path).iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        rows.append((float(case.get("time") or 0), part, name))
    return rows


def summary() -> int:
    records = [json.loads(p.read_text()) for p in REPORTS.glob("*.json")]
    records.sort(key=lambda r: r["at"])
    total = sum(r["seconds"] for r in records)
    print(f"\n[test-report] make test: {total / 60:.1f} min in all", flush=True)
    failed = [r["part"] for r in records if r["exit"]]
    for r in records:
        state = "passed" if r["exit"] == 0 else f"FAILED (exit {r['exit']})"
        print(f"  {r['part']:<12} {r['seconds'] / 60:6.1f} min  {state}")
    rows = sorted((row for r in records for row in _tests(r["part"])), reverse=True)
    print(f"[test-report] the {SLOWEST} slowest tests (setup + call + teardown):")
    for seconds, part, name in rows[:SLOWEST]:
        print(f"  {seconds:7.1f} s  {part:<12} {name}")
    if failed:
        print(f"[test-report] FAILED: {', '.join(failed)}")
    sys.stdout.flush()
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["run"] and len(argv) >= 3:
        return run(argv[1], argv[2:])
    if argv == ["summary"]:
        return summary()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
