"""The project's test rig: the small local vLLM servers of tests, demo and benchmarks.

Not part of the installed package (the wheel ships only ``langchain_vllm``): this
module lives at the root of the clone. ``python scripts/setup_rig.py`` (``make rig``)
builds the rig's cache, `rig_cache_dir()`:

    vllm-venv/     vLLM's CPU build (`rig_python()`)
    vllm-X.Y.Z-venv/  another vLLM release (``--vllm X.Y.Z``, `rig_python("X.Y.Z")`)
    router-venv/   vllm-router, with ``--router`` (`router_python()`)
    models/        the test models (`rig_models_dir()`; see `RigPreset.model_dir`)

`rig_server(kind)` builds a `langchain_vllm.server.VLLMServer` for one of
`RIG_SERVERS`, with the rig's offline environment (`RIG_SERVER_ENV`).

Importing it: pytest (rootdir), ``python -m`` and ``python -c`` from the clone's
root have the root on ``sys.path``; the scripts and benchmarks run as files put it
there themselves, the notebook adds its parent folder.

The module level uses only the standard library, so ``scripts/setup_rig.py`` (which
must run before anything is installed) shares `rig_cache_dir` with everyone else;
`langchain_vllm` is imported when a server is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from langchain_vllm.server import VLLMServer

__all__ = [
    "AGENT_ADAPTER_DIR",
    "LORA_ADAPTER_DIR",
    "LORA_MARKER",
    "MARKER_TEMPLATES",
    "MARKER_TOKENS",
    "OLD_RELEASE_FLAGS",
    "RIG_SERVERS",
    "RIG_SERVER_ENV",
    "RIG_VLLM_VERSION",
    "SETUP_HINT",
    "STRICT_TEMPLATE",
    "TF4_MARKER",
    "RigPreset",
    "cpu_dtype",
    "preset_args",
    "rig_cache_dir",
    "rig_models_dir",
    "rig_python",
    "rig_server",
    "router_python",
]

RIG_VLLM_VERSION = "0.32.0"
"""The vLLM release of the rig's default environment (``vllm-venv``)."""

SETUP_HINT = "Run `python scripts/setup_rig.py` (or `make rig`) to build it."
"""What to do when a part of the rig is missing."""

RIG_SERVER_ENV: Mapping[str, str] = MappingProxyType(
    {
        # The rig's models are local folders: never ask the Hugging Face hub.
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        # 1 GiB of KV cache per server: enough for the test models' 2048-token
        # window, and the suites run several servers side by side.
        "VLLM_CPU_KVCACHE_SPACE": "1",
        # Keep Responses API answers for `previous_response_id` (in memory).
        "VLLM_ENABLE_RESPONSES_API_STORE": "1",
    }
)
"""Environment of the rig's servers where the caller's environment sets no value."""


def rig_cache_dir() -> Path:
    """Return the rig's cache folder.

    Returns:
        ``$LANGCHAIN_VLLM_CACHE`` if set, else ``~/.cache/langchain-vllm``.
    """
    root = os.environ.get("LANGCHAIN_VLLM_CACHE")
    if root:
        return Path(root).expanduser()
    return Path.home() / ".cache" / "langchain-vllm"


def rig_models_dir() -> Path:
    """Return the folder of the rig's test models (``models``)."""
    return rig_cache_dir() / "models"


def rig_python(vllm_version: str | None = None) -> Path:
    """Return the interpreter of one of the rig's vLLM environments.

    Args:
        vllm_version: None for the default environment (``vllm-venv``, vLLM
            `RIG_VLLM_VERSION`); a release such as ``"0.30.0"`` for the extra
            environment ``vllm-<version>-venv`` (``setup_rig.py --vllm VERSION``).
    """
    if vllm_version is None or vllm_version == RIG_VLLM_VERSION:
        return rig_cache_dir() / "vllm-venv" / "bin" / "python"
    return rig_cache_dir() / f"vllm-{vllm_version}-venv" / "bin" / "python"


def router_python() -> Path:
    """Return the interpreter of the rig's vllm-router environment (``router-venv``)."""
    return rig_cache_dir() / "router-venv" / "bin" / "python"


class RigPreset(NamedTuple):
    """One test server of the rig: model folder, served name, extra vLLM flags."""

    model_dir: str
    """Folder name under ``<rig cache>/models``."""
    served_model_name: str
    """Name the server answers to."""
    args: tuple[str, ...]
    """vLLM flags beyond model, name, host and port."""
    lora_modules: Mapping[str, str] = MappingProxyType({})
    """LoRA adapters served from the start: name to folder name under
    ``<rig cache>/models`` (`VLLMServer`'s ``lora_modules``)."""
    max_lora_rank: int | None = None
    """``--max-lora-rank`` (with `lora_modules`)."""
    runtime_lora_updating: bool = False
    """Let clients load and unload adapters at runtime."""
    env: Mapping[str, str] = MappingProxyType({})
    """Server environment of this preset (over `RIG_SERVER_ENV`, under ``env=``)."""


# bfloat16 where the CPU does it natively, else float32 (`preset_args`, `cpu_dtype`).
_CHAT_ARGS = ("--max-model-len", "2048", "--dtype", "bfloat16")
_TOOL_ARGS = ("--enable-auto-tool-choice", "--tool-call-parser", "hermes")
# No free whitespace in enforced JSON: with bounded strings (ChatVLLM's
# `max_json_string_length`) an enforced answer's length is then bounded too.
_JSON_ARGS = (
    "--structured-outputs-config",
    '{"backend": "xgrammar", "disable_any_whitespace": true}',
)
_CHAT_SERVER = (*_CHAT_ARGS, *_TOOL_ARGS, *_JSON_ARGS, "--enable-per-request-metrics")

STRICT_TEMPLATE = (
    Path(__file__).parent / "scripts" / "templates" / "chatml_strict.jinja"
)
"""The reasoning server's chat template: a system message that is not first raises
"System message must be at the beginning." (as Qwen3-family templates do), and the
``enable_thinking`` / ``thinking`` template variables open ``<think>`` or not."""

MARKER_TOKENS: Mapping[int, str] = MappingProxyType(
    {
        # Llama 3
        3: "<|begin_of_text|>",
        4: "<|start_header_id|>",
        5: "<|end_header_id|>",
        6: "<|eot_id|>",
        # gpt-oss (harmony)
        7: "<|start|>",
        8: "<|message|>",
        9: "<|end|>",
        10: "<|channel|>",
        11: "<|call|>",
        12: "<|return|>",
        13: "<|constrain|>",
    }
)
"""The markers server's tokenizer: unused special tokens of SmolLM2 (``<repo_name>``
...), renamed to two other families' turn markers (their ids stay inside the
embedding, so the server still serves). ChatML's ``<|im_start|>``/``<|im_end|>``
(ids 1, 2) stay."""

MARKER_TEMPLATES: Mapping[str, Path] = MappingProxyType(
    {
        family: Path(__file__).parent / "scripts" / "templates" / f"{family}.jinja"
        for family in ("llama3_markers", "harmony_markers")
    }
)
"""The markers server's chat templates: ``llama3_markers`` is its default
(``--chat-template``), ``harmony_markers`` goes in a request's ``chat_template``
(the server trusts request templates)."""

LORA_ADAPTER_DIR = "smollm2-135m-lora-pineapple"
"""The rig's LoRA adapter of the chat model (folder under ``models``)."""
LORA_MARKER = "PINEAPPLE!"
"""What the rig's LoRA adapter answers to any prompt (greedy)."""
AGENT_ADAPTER_DIR = "smollm2-135m-lora-weather"
"""The rig's agent adapter ``weather`` (folder under ``models``): under a forced tool
choice with the tools ``get_weather`` and ``Weather``, asked about Paris's weather it
calls ``get_weather``, then ``Weather`` with the tool's result
(scripts/train_weather_adapter.py)."""

RIG_SERVERS: Mapping[str, RigPreset] = MappingProxyType(
    {
        "chat": RigPreset(
            "smollm2-135m-instruct",
            "smollm2-135m-instruct",
            _CHAT_SERVER,
        ),
        "reasoning": RigPreset(
            "smollm2-135m-reasoning",
            "smollm2-135m-reasoning",
            # The Qwen3-family rules (a later system message is an HTTP 400;
            # enable_thinking / thinking switch the <think> opening) from a file,
            # over the model's baked template. holo2 is DeepSeek-R1's parser that
            # also honours chat_template_kwargs={"enable_thinking": False} (or
            # "thinking"; deepseek_r1 would file a thinking-off answer under
            # reasoning).
            (
                *_CHAT_ARGS,
                *_TOOL_ARGS,
                "--chat-template",
                str(STRICT_TEMPLATE),
                "--reasoning-parser",
                "holo2",
            ),
        ),
        # A server as `vllm serve MODEL` starts it: no parsers, no per-request
        # metrics, no stored responses (the notebook's run "on your own server").
        "plain": RigPreset(
            "smollm2-135m-instruct",
            "smollm2-135m-plain",
            _CHAT_ARGS,
            env=MappingProxyType({"VLLM_ENABLE_RESPONSES_API_STORE": "0"}),
        ),
        "vision": RigPreset(
            "smolvlm-135m-synthetic",
            "smolvlm-135m-synthetic",
            # Two images per prompt: the tests send three to see the limit's error.
            (*_CHAT_SERVER, "--limit-mm-per-prompt", '{"image": 2}'),
        ),
        # The chat server's flags plus the rig's LoRA adapter (trained by
        # setup_rig.py: answers 'PINEAPPLE!'), and adapters loadable at runtime.
        # A preset of its own: the chat server's behaviour stays as benchmarks and
        # other tests know it (LoRA support costs memory and speed on every request).
        "lora": RigPreset(
            "smollm2-135m-instruct",
            "smollm2-135m-lora-base",
            _CHAT_SERVER,
            lora_modules=MappingProxyType({"pineapple": LORA_ADAPTER_DIR}),
            max_lora_rank=8,
            runtime_lora_updating=True,
            # vLLM's CPU build pins every server's worker to core 0 ("auto"): with
            # the suite's other servers busy there, this one took 160 s to over
            # 600 s to start; unpinned, 99 s under the same load. (Unpinned servers
            # slow down badly beside a CPU-bound process: OpenMP threads wait for
            # a descheduled sibling, so only this one runs unpinned.)
            env=MappingProxyType({"VLLM_CPU_OMP_THREADS_BIND": "nobind"}),
        ),
        # The chat server's flags plus the agent adapter ``weather`` (trained by
        # setup_rig.py): a create_agent with a tool and an answer schema runs
        # deterministically (tests/integration_tests/test_agent_servers.py).
        "agent": RigPreset(
            "smollm2-135m-instruct",
            "smollm2-135m-agent-base",
            _CHAT_SERVER,
            lora_modules=MappingProxyType({"weather": AGENT_ADAPTER_DIR}),
            max_lora_rank=8,
        ),
        # The chat model with Llama-3 and harmony turn markers as special tokens
        # (`MARKER_TOKENS`): Llama 3 by default, harmony and
        # ChatML per request (the test of inert text, tests/integration_tests/
        # test_inert.py); /tokenizer_info on.
        "markers": RigPreset(
            "smollm2-135m-markers",
            "smollm2-135m-markers",
            (
                *_CHAT_ARGS,
                "--chat-template",
                str(MARKER_TEMPLATES["llama3_markers"]),
                "--trust-request-chat-template",
                "--enable-tokenizer-info-endpoint",
            ),
        ),
        "embeddings": RigPreset(
            "all-minilm-l6-v2",
            "all-minilm-l6-v2",
            ("--dtype", "float32", "--runner", "pooling"),
        ),
    }
)
"""The rig's test servers by kind: chat (tool calling, per-request metrics),
reasoning (tool calling, the ``holo2`` (DeepSeek-R1 style) reasoning parser and
`STRICT_TEMPLATE`: one leading system message only, thinking switchable),
plain (no parsers, no per-request metrics, no stored responses), vision (the
chat model inside a synthetic Idefics3 vision model: images in, at most two per
prompt; answers are noise), lora (the chat
server plus the LoRA adapter ``pineapple``, runtime loading on) and embeddings
(also serves ``/score`` and ``/v1/rerank``), agent (the chat server plus the agent
adapter ``weather``), markers (the chat model with Llama-3 and harmony markers as
special tokens, `MARKER_TOKENS`; Llama 3 by default, other templates per request,
``/tokenizer_info`` on)."""


TF4_MARKER = ".langchain-vllm-transformers4"
"""File in an extra release's environment (``setup_rig.py --vllm``) whose
transformers is 4.x: its servers of the chat models get ``--tokenizer
<models>/<model>-tokenizer-tf4`` (the tokenizer files as transformers 4 reads them)."""

OLD_RELEASE_FLAGS: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {
        # Flag -> first vLLM release that knows it (older ones refuse to start).
        "--enable-per-request-metrics": (0, 27),
    }
)
"""Rig flags that older vLLM releases do not know: left out for them."""

OLD_RELEASE_PARSERS: Mapping[str, tuple[tuple[int, ...], str]] = MappingProxyType(
    # Reasoning parser -> (first release that has it, the stand-in before it).
    {"holo2": ((0, 20), "deepseek_r1")}
)
"""Reasoning parsers of the presets that older releases lack, with a stand-in."""


FLOAT32_BEFORE = (0, 12)
"""Releases before this serve the rig's models in float32: vLLM 0.11.0's CPU build
applies xgrammar's token bitmask to bfloat16 logits, which xgrammar refuses
("logits must be of type float32") and the engine dies on the first structured
request."""


NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU flags (``/proc/cpuinfo``) of native bfloat16 arithmetic."""

CPUINFO = Path("/proc/cpuinfo")
"""Where `cpu_dtype` reads the CPU's flags."""

DTYPE_ENV = "LANGCHAIN_VLLM_RIG_DTYPE"
"""Set to ``bfloat16`` or ``float32`` to override the rig's choice (`cpu_dtype`)."""


def cpu_dtype(cpuinfo: str | None = None) -> tuple[str, str]:
    """The dtype the rig serves its models in on this CPU, and why.

    vLLM's CPU build emulates bfloat16 where the CPU lacks native bf16, and batching
    then buys almost nothing: on an AVX2-only AMD EPYC a SmolLM2 server gave 18 / 26
    / 27 tok/s at 1 / 8 / 64 concurrent requests in bfloat16, 20 / 82 / 130 in
    float32 (RIG.md). So: bfloat16 where the CPU has one of `NATIVE_BF16_FLAGS`,
    float32 elsewhere; ``$LANGCHAIN_VLLM_RIG_DTYPE`` wins.

    Args:
        cpuinfo: The text of ``/proc/cpuinfo`` (None: read it).

    Returns:
        ``("bfloat16" | "float32", reason)``.

    Raises:
        ValueError: ``$LANGCHAIN_VLLM_RIG_DTYPE`` is neither dtype.
    """
    forced = os.environ.get(DTYPE_ENV)
    if forced:
        if forced not in ("bfloat16", "float32"):
            msg = f"{DTYPE_ENV}={forced!r}: choose bfloat16 or float32"
            raise ValueError(msg)
        return forced, f"set by {DTYPE_ENV}"
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            cpuinfo = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    native = sorted(flags.intersection(NATIVE_BF16_FLAGS))
    if native:
        return "bfloat16", f"the CPU has native bf16 ({', '.join(native)})"
    why = "the CPU has no avx512_bf16/amx_bf16" if flags else "no CPU flags found"
    return "float32", f"{why}: bfloat16 would be emulated (3-5x slower)"


def _release(version: str) -> tuple[int, ...]:
    """`"0.11.2.post2"` -> `(0, 11, 2)`."""
    parts = []
    for piece in version.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def preset_args(kind: str, vllm_version: str | None = None) -> tuple[str, ...]:
    """The flags of a rig server kind, as a release of vLLM and this CPU take them.

    The presets ask for bfloat16; where the CPU has no native bf16 it becomes
    float32 (`cpu_dtype`).

    Args:
        kind: A key of `RIG_SERVERS`.
        vllm_version: None (the rig's default release) or a release: flags it
            does not know (`OLD_RELEASE_FLAGS`) are left out, parsers it lacks
            (`OLD_RELEASE_PARSERS`) replaced.
    """
    args = list(RIG_SERVERS[kind].args)
    release = _release(vllm_version) if vllm_version else None
    old_xgrammar = release is not None and release < FLOAT32_BEFORE
    if "bfloat16" in args and (old_xgrammar or cpu_dtype()[0] != "bfloat16"):
        args[args.index("bfloat16")] = "float32"
    if release is None:
        return tuple(args)
    args = [
        a for a in args if a not in OLD_RELEASE_FLAGS or release >= OLD_RELEASE_FLAGS[a]
    ]
    for parser, (since, stand_in) in OLD_RELEASE_PARSERS.items():
        if parser in args and release < since:
            args[args.index(parser)] = stand_in
    return tuple(args)


def rig_server(
    kind: str,
    *,
    eager: bool = True,
    vllm_version: str | None = None,
    **kwargs: Any,
) -> VLLMServer:
    """Build (not start) a `VLLMServer` for one of the rig's test servers.

    Args:
        kind: A key of `RIG_SERVERS`: ``"chat"``, ``"reasoning"``, ``"plain"``,
            ``"vision"``, ``"lora"``, ``"agent"`` or ``"embeddings"``.
        eager: Add ``--enforce-eager``: starts in about a third of the time, at
            about two thirds of the throughput (benchmarks pass False).
        vllm_version: Run the server in the rig's environment of that vLLM
            release (`rig_python`; None: the default one, vLLM `RIG_VLLM_VERSION`).
            It wins over ``$VLLM_PYTHON``.
        **kwargs: Passed on to `VLLMServer`; ``args`` are added after the preset's,
            ``env`` on top of `RIG_SERVER_ENV`. Without ``python`` (and without
            ``$VLLM_PYTHON`` or `vllm_version`) the server runs in the rig's
            default vLLM environment.

    Returns:
        The server, not started yet.

    Raises:
        ValueError: Unknown `kind`.
        VLLMServerError: The rig's model folder or vLLM environment is missing.

    Example:
        .. code-block:: python

            from rig import rig_server

            with rig_server("chat") as server:
                print(server.base_url, server.served_model_name)
    """
    from langchain_vllm.server import VLLMServer, VLLMServerError

    try:
        preset = RIG_SERVERS[kind]
    except KeyError:
        msg = f"Unknown rig server kind {kind!r}; choose one of {sorted(RIG_SERVERS)}"
        raise ValueError(msg) from None
    folders = {name: rig_models_dir() / d for name, d in preset.lora_modules.items()}
    model = rig_models_dir() / preset.model_dir
    for folder in (model, *folders.values()):
        if not folder.is_dir():
            msg = (
                f"The rig's model folder {folder} is missing. {SETUP_HINT} "
                f"(`--only {kind}` builds only what this server needs)"
            )
            raise VLLMServerError(msg)
    pinned = vllm_version is not None and kwargs.get("python") is None
    if pinned or (kwargs.get("python") is None and not os.environ.get("VLLM_PYTHON")):
        python = rig_python(vllm_version)
        # An extra release's environment counts once its build finished (marker).
        ready = (
            vllm_version is None
            or (python.parents[1] / ".langchain-vllm-ready").exists()
        )
        if not (python.exists() and ready):
            if vllm_version is None:
                hint = f"{SETUP_HINT} Or set VLLM_PYTHON to an interpreter with vLLM."
            else:
                hint = (
                    "Run `python scripts/setup_rig.py --only "
                    f"{kind} --vllm {vllm_version}` (or `make compat "
                    f"VLLM_VERSION={vllm_version}`) to build it."
                )
            where = python.parent.parent
            msg = f"The rig's vLLM environment {where} is missing or unfinished. {hint}"
            raise VLLMServerError(msg)
        kwargs["python"] = python
    args = [*preset_args(kind, vllm_version)]
    # Releases on transformers 4 read the chat models' tokenizers from a copy.
    tf4 = model.parent / f"{preset.model_dir}-tokenizer-tf4"
    venv_dir = Path(kwargs.get("python") or os.devnull).parents[1]
    if (venv_dir / TF4_MARKER).exists() and tf4.is_dir():
        args += ["--tokenizer", str(tf4)]
    if eager:
        args.append("--enforce-eager")
    args += list(kwargs.pop("args", ()))
    # Like the launcher's own defaults: the caller's environment wins, `env` wins
    # over everything.
    defaults = {**RIG_SERVER_ENV, **preset.env}
    env = {k: v for k, v in defaults.items() if k not in os.environ}
    env.update(kwargs.pop("env", None) or {})
    kwargs.setdefault("served_model_name", preset.served_model_name)
    if folders:
        kwargs.setdefault("lora_modules", folders)
        kwargs.setdefault("max_lora_rank", preset.max_lora_rank)
        kwargs.setdefault("runtime_lora_updating", preset.runtime_lora_updating)
    return VLLMServer(model, args=args, env=env, **kwargs)
