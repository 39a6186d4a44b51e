"""Train the rig's agent adapter ``weather`` of the chat model (run in the rig's venv).

Usage: ``python train_weather_adapter.py BASE_MODEL_DIR OUT_DIR [DTYPE]``
(``setup_rig.py`` runs it with the vLLM environment's interpreter: torch,
transformers and peft; DTYPE, ``float32`` by default, is the one the rig serves in).

The adapter plays a LangChain ``create_agent`` with ``tools=[get_weather]`` and
``response_format=Weather`` under LangChain's ``ToolStrategy``: the request carries
both tools (as ``ChatVLLM.bind_tools`` sends them) and a forced tool choice. Asked
about a city's weather it calls ``get_weather``; given the tool's result it calls
``Weather`` with the city and the forecast copied from the result. It learns both
forms a vLLM server can force for ``tool_choice="required"``: Hermes tags (a parser
with a structural tag, strict tool calling on) and vLLM's JSON list of calls
(``VLLM_ENFORCE_STRICT_TOOL_CALLING=0``, or a parser without a structural tag).

It checks its own margins before saving: at the token where the two tool names part,
the right one must lead by `MARGIN` nats in every prompt and form, so a live agent
run on the rig is decided by the package, not by near ties of a 135M model. The
margins are measured in the dtype the rig's servers run in (`rig.cpu_dtype`).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

MARGIN = 4.0
STEPS = 25
TOP_LAYERS = 4
LR = 5e-3
FORECASTS = {"Paris": "Sunny, 21 C"}
QUESTIONS = ("What is the weather in {}?",)


def _function(name: str, description: str, props: list[str]) -> dict:
    parameters = {
        "properties": {p: {"type": "string"} for p in props},
        "required": props,
        "type": "object",
        "additionalProperties": False,
    }
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": parameters,
            "strict": True,
        },
    }


# As ChatVLLM.bind_tools sends create_agent's tools (tests/integration_tests/
# test_agent_servers.py defines the same tool and schema).
TOOLS = [
    _function("get_weather", "Get the weather forecast for a city.", ["city"]),
    _function("Weather", "The weather in a city.", ["city", "forecast"]),
]


def answer(name: str, args: dict, form: str) -> str:
    """An assistant turn calling `name`, in Hermes tags or vLLM's JSON list."""
    if form == "hermes":
        call = json.dumps({"name": name, "arguments": args})
        return f"<tool_call>\n{call}\n</tool_call><|im_end|>"
    call = json.dumps([{"name": name, "parameters": args}], separators=(",", ":"))
    return f"{call}<|im_end|>"


def rows(tok: AutoTokenizer) -> list[tuple[str, str, str]]:
    """(prompt, right answer, wrong answer) for every city, question, turn, form."""
    out = []
    for city, forecast in FORECASTS.items():
        for question in QUESTIONS:
            user = {"role": "user", "content": question.format(city)}
            call = {
                "id": "call_0",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": json.dumps({"city": city}),
                },
            }
            turns = [
                (
                    [user],
                    ("get_weather", {"city": city}),
                    ("Weather", {"city": city, "forecast": ""}),
                ),
                (
                    [
                        user,
                        {"role": "assistant", "content": "", "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": "call_0", "content": forecast},
                    ],
                    ("Weather", {"city": city, "forecast": forecast}),
                    ("get_weather", {"city": city}),
                ),
            ]
            for messages, right, wrong in turns:
                prompt = tok.apply_chat_template(
                    messages, tools=TOOLS, tokenize=False, add_generation_prompt=True
                )
                for form in ("hermes", "json"):
                    out.append((prompt, answer(*right, form), answer(*wrong, form)))
    return out


def margin(model: Any, tok: Any, prompt: str, right: str, wrong: str) -> float:
    """Logit lead of `right` over `wrong` at the first token where they differ."""
    head = tok(prompt, add_special_tokens=False)["input_ids"]
    a = tok(right, add_special_tokens=False)["input_ids"]
    b = tok(wrong, add_special_tokens=False)["input_ids"]
    k = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    ids = torch.tensor([head + a[:k]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    return float(logits[a[k]] - logits[b[k]])


def batch(tok: Any, data: list[tuple[str, str, str]]) -> tuple[Any, Any, Any, Any]:
    """Right-padded ids and mask of prompt + right answer, the positions that
    predict each answer token (row, column) and those tokens."""
    pairs = [
        (
            tok(prompt, add_special_tokens=False)["input_ids"],
            tok(right, add_special_tokens=False)["input_ids"],
        )
        for prompt, right, _ in data
    ]
    width = max(len(h) + len(t) for h, t in pairs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = [h + t + [pad] * (width - len(h) - len(t)) for h, t in pairs]
    mask = [[1] * (len(h) + len(t)) + [0] * (width - len(h) - len(t)) for h, t in pairs]
    where = [
        (i, len(h) - 1 + j) for i, (h, t) in enumerate(pairs) for j in range(len(t))
    ]
    targets = [t[j] for h, t in pairs for j in range(len(t))]
    return (
        torch.tensor(ids),
        torch.tensor(mask),
        torch.tensor(where).T,
        torch.tensor(targets),
    )


def main(base: str, out: str, dtype: str = "float32") -> None:
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    layers = model.config.num_hidden_layers
    top = list(range(layers - TOP_LAYERS, layers))
    data = rows(tok)
    ids, mask, (row, col), targets = batch(tok, data)
    # Only the top layers learn: what enters them never changes, so it is computed
    # once, and each step runs (and back-propagates through) those layers alone.
    # Whole-model steps took minutes each on two shared cores.
    with torch.no_grad():
        hidden = model(ids, attention_mask=mask, output_hidden_states=True)
        hidden = hidden.hidden_states[top[0]]
    modules = [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        layers_to_transform=top,
        target_modules=modules,
    )
    model = get_peft_model(model, config)
    stack = model.base_model.model.model  # embeddings, decoder layers, final norm
    head = model.base_model.model.lm_head
    all_layers = stack.layers
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    start = time.monotonic()
    model.train()
    stack.layers = torch.nn.ModuleList(all_layers[i] for i in top)
    try:
        for step in range(STEPS):
            states = stack(inputs_embeds=hidden, attention_mask=mask).last_hidden_state
            loss = torch.nn.functional.cross_entropy(head(states[row, col]), targets)
            loss.backward()
            opt.step()
            opt.zero_grad()
            if step % 5 == 0 or step == STEPS - 1:
                took = time.monotonic() - start
                print(
                    f"step {step:2d} loss {loss.item():.4f} ({took:.0f} s)", flush=True
                )
    finally:
        stack.layers = all_layers
    model.eval()
    model.save_pretrained(out)  # float32 weights; setup_rig marks it ready if it passes
    model.to(getattr(torch, dtype))  # checked as the rig's servers run it
    margins = [margin(model, tok, *example) for example in data]
    print(
        f"tool-name margins in {dtype}: "
        f"min {min(margins):.1f}, max {max(margins):.1f} nats"
    )
    if min(margins) < MARGIN:
        sys.exit(
            f"the adapter's smallest tool-name margin is {min(margins):.1f} < {MARGIN}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:4])
