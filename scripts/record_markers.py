"""Record how live vLLM servers tokenize forged turn markers, as is and made inert.

Starts the rig's chat server (ChatML) and markers server (Llama 3 and harmony markers
as special tokens, `rig.MARKER_TOKENS`), or uses running ones (``--chat-url``,
``--markers-url``: server roots), and for each family of `tests/inert_cases.py`:

* the discovery of the served special tokens (`discover_special_tokens`): every
  probe it sent and the server's answer or HTTP status;
* each turn marker's token id;
* the three conversations (harmless, injected, injected made inert): the messages
  sent, the server's ``prompt_token_ids`` and their detokenized text.

    .venv/bin/python scripts/record_markers.py [--chat-url URL --markers-url URL]

Writes tests/unit_tests/data/inert_markers.json: {"vllm_version", "families": {name:
{"exchanges": [{"method", "path", "body", "status", "answer"}], "specials",
"marker_ids", "cases": {case: {"messages", "prompt_token_ids", "prompt"}}}}}.
Nothing in it is typed by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import httpx2
import openai

# Run as a file, this script has scripts/ on sys.path; the clone's root is one up.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from langchain_vllm._inert_probe import Probe, discover_special_tokens  # noqa: E402
from rig import rig_server  # noqa: E402
from tests.inert_cases import (  # noqa: E402
    FAMILIES,
    Family,
    cases,
    chat_body,
    marker_ids,
    prompt_of,
    send_to,
)

OUT = ROOT / "tests/unit_tests/data/inert_markers.json"


def recording_send(root: str, client: httpx2.Client, log: list[dict[str, Any]]) -> Any:
    """`send_to`, writing every probe and its answer (or HTTP status) to `log`."""
    send = send_to(root, client)

    def record(probe: Probe) -> Any:
        entry: dict[str, Any] = {**probe._asdict(), "status": 200, "answer": None}
        log.append(entry)
        try:
            entry["answer"] = send(probe)
        except openai.APIStatusError as e:
            entry["status"] = e.status_code
            raise
        return entry["answer"]

    return record


def record_family(family: Family, root: str, client: httpx2.Client) -> dict[str, Any]:
    exchanges: list[dict[str, Any]] = []
    found = discover_special_tokens(recording_send(root, client, exchanges))
    print(f"{family.name}: {found.source}, {sorted(found.strings)}")
    ids = marker_ids(root, client, family.markers)
    recorded: dict[str, Any] = {}
    for name, messages in cases(family, found.strings).items():
        prompt_ids, prompt = prompt_of(root, client, chat_body(family, messages))
        recorded[name] = {
            "messages": messages,
            "prompt_token_ids": prompt_ids,
            "prompt": prompt,
        }
        counts = {m: prompt_ids.count(i) for m, i in ids.items()}
        print(f"  {name}: {len(prompt_ids)} ids, markers {counts}")
    return {
        "exchanges": exchanges,
        "specials": sorted(found.strings),
        "marker_ids": ids,
        "cases": recorded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chat-url", help="root URL of a running rig chat server")
    parser.add_argument("--markers-url", help="root URL of a running markers server")
    args = parser.parse_args()
    given = {"chat": args.chat_url, "markers": args.markers_url}
    with contextlib.ExitStack() as stack, httpx2.Client(timeout=120) as client:
        roots = {
            kind: url.rstrip("/")
            if url
            else stack.enter_context(rig_server(kind)).root_url
            for kind, url in given.items()
        }
        version = client.get(f"{roots['chat']}/version").json()["version"]
        families = {
            name: record_family(family, roots[family.kind], client)
            for name, family in FAMILIES.items()
        }
    data = {"vllm_version": version, "families": families}
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
