"""Chat prompt templates with checked variables, and a view of the server's prompt.

`chat_prompt` builds the usual "system template + human template" chat prompt (the
shape of vLLM's chat walkthrough), optionally with few-shot example pairs and a
chat-history placeholder. The result is a `CheckedChatPromptTemplate`: a
`ChatPromptTemplate` that refuses a missing *or an unexpected* variable with a
`PromptVariablesError` naming it, where LangChain's own template silently ignores a
misspelt extra variable. `translation_prompt` is the walkthrough's translator.

`render_prompt` shows the exact text the model sees: the server's chat template
applied to the formatted messages (through `ChatVLLM.get_prompt_text`).

Example:
    ```python
    from langchain_core.output_parsers import StrOutputParser
    from langchain_vllm import ChatVLLM
    from langchain_vllm.prompts import render_prompt, translation_prompt

    prompt = translation_prompt()
    chat = ChatVLLM(temperature=0, max_tokens=16)
    chain = prompt | chat | StrOutputParser()
    chain.invoke(
        {
            "input_language": "English",
            "output_language": "Italian",
            "text": "I love programming.",
        }
    )
    print(
        render_prompt(
            chat,
            prompt,
            input_language="English",
            output_language="Italian",
            text="I love programming.",
        )
    )
    ```
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import (
    BasePromptTemplate,
    ChatPromptTemplate,
    MessagesPlaceholder,
)
from langchain_core.runnables import RunnableConfig

from langchain_vllm import _seams as seams

if TYPE_CHECKING:
    from langchain_core.language_models import LanguageModelInput

    from langchain_vllm.chat_models import ChatVLLM

__all__ = [
    "TRANSLATION_HUMAN",
    "TRANSLATION_SYSTEM",
    "CheckedChatPromptTemplate",
    "PromptVariablesError",
    "chat_prompt",
    "render_prompt",
    "translation_prompt",
]

TRANSLATION_SYSTEM = (
    "You are a helpful assistant that translates {input_language} to {output_language}."
)
"""System template of the walkthrough's translator."""

TRANSLATION_HUMAN = "{text}"
"""Human template of the walkthrough's translator."""


class PromptVariablesError(KeyError, ValueError):
    """A prompt was formatted with missing or unexpected variables.

    A `KeyError` (what LangChain raises for a missing variable) and a `ValueError`
    (bad input), so existing `except` clauses for either keep working.
    """

    def __init__(
        self,
        message: str,
        *,
        missing: Sequence[str] = (),
        extra: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.missing: tuple[str, ...] = tuple(missing)
        """Required variables that were not given."""
        self.extra: tuple[str, ...] = tuple(extra)
        """Given variables the template does not use."""

    def __str__(self) -> str:
        # KeyError's own __str__ would show the message as a quoted repr.
        return self.message


class CheckedChatPromptTemplate(ChatPromptTemplate):
    """A `ChatPromptTemplate` whose variables are checked when it is formatted.

    Formatting (`format_messages`, `format_prompt`, `format`, `invoke` and their
    async forms) raises `PromptVariablesError` before anything is built when a
    required variable is missing or a variable the template does not use is given
    (a misspelt name would otherwise be dropped without a word). Optional variables
    (an optional `MessagesPlaceholder`) and partial variables may be given or not.

    Build one with `chat_prompt` / `translation_prompt`, or like any
    `ChatPromptTemplate`:

    ```python
    prompt = CheckedChatPromptTemplate.from_messages(
        [("system", "Answer in {language}."), ("human", "{question}")]
    )
    prompt.format_messages(language="French", question="Hi?", topic="x")
    # PromptVariablesError: CheckedChatPromptTemplate got unexpected variable(s)
    # ['topic'] ...
    ```
    """

    @classmethod
    def get_lc_namespace(cls) -> builtins.list[str]:
        """The LangChain namespace: `["langchain_vllm", "prompts"]`."""
        return ["langchain_vllm", "prompts"]

    def check_variables(self, given: Any) -> None:
        """Raise `PromptVariablesError` unless `given` fits the template's variables.

        Args:
            given: The names (or a mapping keyed by the names) passed to format.

        Raises:
            PromptVariablesError: naming the missing and the unexpected variables.
        """
        names = set(given)
        required = set(self.input_variables)
        allowed = required | set(self.optional_variables) | set(self.partial_variables)
        missing = sorted(required - names)
        extra = sorted(names - allowed)
        if not missing and not extra:
            return
        problems = []
        if missing:
            problems.append(f"is missing variable(s) {missing}")
        if extra:
            problems.append(f"got unexpected variable(s) {extra}")
        optional = sorted(set(self.optional_variables) | set(self.partial_variables))
        msg = (
            f"{type(self).__name__} {' and '.join(problems)}. "
            f"Required: {sorted(required)}"
            + (f"; optional: {optional}" if optional else "")
            + "."
        )
        if extra:
            msg += (
                " Check the spelling, or add the variable to a template "
                "(write literal braces as '{{' and '}}')."
            )
        raise PromptVariablesError(msg, missing=missing, extra=extra)

    # The check runs inside the parent's traced run, in its input validation
    # (`_seams.PROMPT_VALIDATION`); without that hook, in `invoke` before it.
    def _validate_input(self, inner_input: Any) -> builtins.dict[str, Any]:
        if isinstance(inner_input, dict) and seams.PROMPT_VALIDATION.ok:
            self.check_variables(inner_input)
        return super()._validate_input(inner_input)

    def invoke(
        self, input: builtins.dict, config: RunnableConfig | None = None, **kwargs: Any
    ) -> PromptValue:
        """Format the prompt, after checking the variables.

        Raises:
            PromptVariablesError: a required variable is missing or an unknown
                variable was given.
        """
        if isinstance(input, dict) and not seams.PROMPT_VALIDATION.ok:
            self.check_variables(input)
        return super().invoke(input, config, **kwargs)

    async def ainvoke(
        self, input: builtins.dict, config: RunnableConfig | None = None, **kwargs: Any
    ) -> PromptValue:
        """Async `invoke`, with the same checks."""
        if isinstance(input, dict) and not seams.PROMPT_VALIDATION.ok:
            self.check_variables(input)
        return await super().ainvoke(input, config, **kwargs)

    def format_messages(self, **kwargs: Any) -> builtins.list[BaseMessage]:
        """Format the template into messages, after checking the variables.

        Raises:
            PromptVariablesError: a required variable is missing or an unknown
                variable was given.
        """
        self.check_variables(kwargs)
        return super().format_messages(**kwargs)

    async def aformat_messages(self, **kwargs: Any) -> builtins.list[BaseMessage]:
        """Async `format_messages`, with the same checks."""
        self.check_variables(kwargs)
        return await super().aformat_messages(**kwargs)


def chat_prompt(
    system: str | None,
    human: str = "{input}",
    *,
    examples: Sequence[tuple[str, str]] = (),
    history: str | None = None,
    template_format: Literal["f-string", "mustache", "jinja2"] = "f-string",
) -> CheckedChatPromptTemplate:
    """Build a checked chat prompt: system template, examples, history, human.

    The messages come in this order: the system message (if `system` is given),
    the few-shot examples as literal human/AI message pairs, the chat history
    (if `history` names a placeholder), then the human message.

    Args:
        system: System message template, e.g. `"Answer in {language}."`; None for
            no system message.
        human: Human message template.
        examples: Few-shot `(human, ai)` text pairs, put in as written (braces in
            them are not template variables).
        history: Name of an optional `MessagesPlaceholder` for earlier turns,
            e.g. `"history"`; formatting without it means an empty history.
        template_format: Template syntax of `system` and `human`.

    Returns:
        A `CheckedChatPromptTemplate`.

    Raises:
        TypeError: An example is not a pair of strings.
        ValueError: `history` is also a template variable, or the templates are
            not valid in `template_format`.

    Example:
        ```python
        prompt = chat_prompt(
            "You answer with one word in {language}.",
            "{question}",
            examples=[("Capital of France?", "Paris")],
            history="history",
        )
        prompt.format_prompt(language="English", question="Capital of Italy?")
        ```
    """
    messages: list[Any] = []
    if system is not None:
        messages.append(("system", system))
    for i, pair in enumerate(examples):
        if (
            not isinstance(pair, tuple | list)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            msg = f"examples[{i}] must be a (human, ai) pair of strings, got {pair!r}"
            raise TypeError(msg)
        messages += [HumanMessage(content=pair[0]), AIMessage(content=pair[1])]
    if history is not None:
        if not history.isidentifier():
            msg = f"history must be a variable name, got {history!r}"
            raise ValueError(msg)
        used = ChatPromptTemplate.from_messages(
            [*messages, ("human", human)], template_format=template_format
        ).input_variables
        if history in used:
            msg = (
                f"The history placeholder {history!r} is also a variable of the "
                "system or human template; give it another name."
            )
            raise ValueError(msg)
        messages.append(MessagesPlaceholder(history, optional=True))
    messages.append(("human", human))
    return cast(
        "CheckedChatPromptTemplate",
        CheckedChatPromptTemplate.from_messages(
            messages, template_format=template_format
        ),
    )


def translation_prompt(
    *,
    examples: Sequence[tuple[str, str]] = (),
    history: str | None = None,
) -> CheckedChatPromptTemplate:
    """The walkthrough's translator prompt.

    System: "You are a helpful assistant that translates {input_language} to
    {output_language}."; human: "{text}".

    Args:
        examples: Few-shot `(source text, translation)` pairs.
        history: Name of an optional chat-history placeholder.

    Returns:
        A `CheckedChatPromptTemplate` with variables `input_language`,
        `output_language` and `text`.

    Example:
        ```python
        translation_prompt().format_prompt(
            input_language="English",
            output_language="Italian",
            text="I love programming.",
        ).to_messages()
        ```
    """
    return chat_prompt(
        TRANSLATION_SYSTEM, TRANSLATION_HUMAN, examples=examples, history=history
    )


def render_prompt(
    chat: ChatVLLM,
    prompt: PromptValue | BasePromptTemplate | LanguageModelInput,
    /,
    *,
    tools: Sequence[Any] | None = None,
    **variables: Any,
) -> str:
    """The exact prompt text `chat`'s server builds: its chat template applied.

    The server tokenizes the messages with its chat template (`/tokenize`, cached)
    and turns the tokens back into text (`/detokenize`); the result is what the
    model reads, special tokens and generation prompt included.

    Args:
        chat: The `ChatVLLM` whose server and settings (`chat_template`,
            `chat_template_kwargs`, ...) apply.
        prompt: A prompt value (`template.format_prompt(...)`), a prompt template
            (formatted with `variables` first), a message list or a string.
        tools: Tools to show to the template, as for `bind_tools`.
        **variables: Template variables when `prompt` is a template.

    Returns:
        The prompt text.

    Raises:
        TypeError: `chat` is not a `ChatVLLM`, or `variables` were given without a
            template.
        PromptVariablesError: A checked template got missing or extra variables.

    Example:
        ```python
        print(render_prompt(chat, [("human", "Hi!")]))
        # <|im_start|>system ... <|im_start|>user
        # Hi!<|im_end|>
        # <|im_start|>assistant
        ```
    """
    from langchain_vllm.chat_models import ChatVLLM

    if not isinstance(chat, ChatVLLM):
        msg = f"render_prompt needs a ChatVLLM, got {type(chat).__name__}"
        raise TypeError(msg)
    if isinstance(prompt, BasePromptTemplate):
        prompt = prompt.format_prompt(**variables)
    elif variables:
        msg = (
            f"Template variables {sorted(variables)} were given, but the prompt is "
            f"a {type(prompt).__name__}, not a template."
        )
        raise TypeError(msg)
    if isinstance(prompt, PromptValue):
        prompt = prompt.to_messages()
    return chat.get_prompt_text(prompt, tools=tools)
