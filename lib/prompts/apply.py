"""A stored prompt put to work: merged into an ai_execute request, or writing a rag answer's messages.

ai_execute: a text prompt is the whole user prompt (the request then sends no `prompt` or
`messages`). A chat prompt's system messages open the system prompt (the request's `system`
follows); its other messages come first and the request's conversation (`messages`, or `prompt` as
one user message) follows, as useChat sends it. A stored chat keeps its own turns, so with one only
a prompt of system messages applies. The version's model and parameters apply where the request
leaves them unset.

rag: the prompt replaces the built-in answer prompt. It must place the passages with `{{context}}`
and the question with `{{query}}` (both filled in by rag), and have a user message; its system
messages become the system prompt and the rest follow the conversation history. Tools and
response formats do not apply to answers with citations, so a prompt carrying them is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.gateway.request import ExecuteRequest, MessageIn, ResponseFormatIn, ToolIn
from lib.prompts.templates import PromptVersion, check_variables, render

if TYPE_CHECKING:
    from lib.retrieval.answers import AnswerPrompt
    from lib.retrieval.request import RagRequest

RAG_VARIABLES = ("query", "context")


def _described(version: PromptVersion) -> str:
    return f"prompt {version.name!r} version {version.version}"


def settings_update(body: Any, model: str | None, params: Mapping[str, Any], *, override: bool,
                    fields: tuple[str, ...] = ("temperature", "max_tokens", "response_format", "tools")) -> dict:
    """The model and parameters to set on a request body: only where it has none (a prompt's own),
    or always (`override`, an experiment variant's)."""
    update: dict[str, Any] = {}
    if model and (override or getattr(body, "model", None) is None):
        update["model"] = model
    for name in fields:
        value = params.get(name)
        if value is None or not (override or getattr(body, name, None) is None):
            continue
        if name == "response_format":
            value = ResponseFormatIn.model_validate(value)
        elif name == "tools":
            value = [ToolIn.model_validate(tool) for tool in value]
        update[name] = value
    return update


def apply_to_execute(body: ExecuteRequest, version: PromptVersion, variables: Mapping[str, Any], *,
                     stored_chat: bool = False) -> ExecuteRequest:
    """`body` with the version rendered into its system prompt, prompt or messages, and its model and
    parameters as defaults. A missing or unknown variable is a 422 naming it."""
    check_variables(version, variables)
    rendered = render(version, variables)
    update: dict[str, Any] = {"template": None}
    if version.kind == "text":
        if body.prompt is not None or body.messages is not None:
            raise errors.field_error("template", f"{_described(version)} is a text prompt, the whole prompt: send "
                                     "no `prompt` or `messages` with it (a chat prompt takes a conversation)")
        text = rendered[0][1]
        if not text.strip():
            raise errors.field_error("template.variables", f"{_described(version)} renders to empty text")
        update["prompt"] = text
    else:
        system = [content for role, content in rendered if role == "system"]
        opening = [MessageIn(role=role, content=content) for role, content in rendered if role != "system"]
        if opening and stored_chat:
            raise errors.field_error("template", f"{_described(version)} has user or assistant messages, but a "
                                     "stored chat keeps its own turns: use a prompt of system messages, or "
                                     "`store: false`")
        update["system"] = "\n\n".join([*system, *([body.system] if body.system else [])]) or None
        if opening:
            asked = list(body.messages or [])
            if body.prompt is not None:
                asked.append(MessageIn(role="user", content=body.prompt))
            update.update(prompt=None, messages=opening + asked)
    update.update(settings_update(body, version.model, version.params, override=False))
    return body.model_copy(update=update)


def answer_prompt(version: PromptVersion, variables: Mapping[str, Any]) -> AnswerPrompt:
    """The rag answer's prompt from this version; refused (422) when it cannot write one."""
    from lib.providers.types import Message
    from lib.retrieval.answers import AnswerPrompt  # only rag needs the retrieval package

    check_variables(version, variables, provided=RAG_VARIABLES)
    lacking = [f"{{{{{name}}}}}" for name in RAG_VARIABLES if name not in version.variables]
    if lacking:
        raise errors.field_error("template", f"{_described(version)} has no {' or '.join(lacking)}: a rag prompt "
                                 "places the passages with {{context}} and the question with {{query}}")
    if version.kind == "chat" and not any(role == "user" for role, _ in version.messages or ()):
        raise errors.field_error("template", f"{_described(version)} has no user message")
    if version.params.get("tools") or version.params.get("response_format"):
        raise errors.field_error("template", f"{_described(version)} sets tools or a response format, which "
                                 "rag answers (text with citations) do not take")
    fixed = dict(variables)

    def write(query: str, context: str) -> tuple[str | None, list[Message]]:
        rendered = render(version, {**fixed, "query": query, "context": context})
        system = "\n\n".join(content for role, content in rendered if role == "system")
        return system or None, [Message(role, content) for role, content in rendered if role != "system"]

    return AnswerPrompt(write, version.name, version.version)


def rag_settings(body: RagRequest, model: str | None, params: Mapping[str, Any], *, override: bool) -> RagRequest:
    """`body` with a version's (defaults) or a variant's (`override`) model, temperature and max_tokens."""
    update = settings_update(body, model, params, override=override, fields=("temperature", "max_tokens"))
    return body.model_copy(update=update) if update else body
