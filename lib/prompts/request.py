"""What /api/prompts accepts: one body model per `action` (a body without it creates a version),
and the query string of its GET.

A version's `params` are validated with the same models as ai_execute's own fields, so a prompt
that was accepted can always run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lib.gateway.request import ResponseFormatIn, ToolIn
from lib.prompts.templates import LATEST
from lib.web.fields import Label, ResourceName, actions

MAX_TEMPLATE_CHARS = 200_000
VersionNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ChatMessageIn(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_TEMPLATE_CHARS)


class PromptParams(_Strict):
    """Model parameters a version carries; a request's own values win over them."""

    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    response_format: ResponseFormatIn | None = None
    tools: list[ToolIn] | None = Field(None, max_length=128)


def _not_latest(label: str) -> str:
    if label == LATEST:
        raise ValueError("`latest` always means the newest version; it cannot be moved")
    return label


class CreatePrompt(_Strict):
    """A new version of `name` (the first one creates the prompt)."""

    action: Literal["create"] = "create"
    name: ResourceName
    template: str | None = Field(None, min_length=1, max_length=MAX_TEMPLATE_CHARS)
    messages: list[ChatMessageIn] | None = Field(None, min_length=1, max_length=100)
    model: str | None = Field(None, min_length=1, max_length=200)
    params: PromptParams = Field(default_factory=PromptParams)
    labels: list[Label] = Field(default_factory=list, max_length=20)
    commit_message: str | None = Field(None, max_length=1000)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        return [_not_latest(label) for label in dict.fromkeys(labels)]

    @model_validator(mode="after")
    def _one_body(self) -> CreatePrompt:
        if (self.template is None) == (self.messages is None):
            raise ValueError("send `template` (a text prompt) or `messages` (a chat prompt), not both")
        return self


class MoveLabel(_Strict):
    """Point `label` at `version`; recorded with who moved it, when, and from where."""

    action: Literal["label"]
    name: ResourceName
    version: VersionNumber
    label: Label

    @field_validator("label")
    @classmethod
    def _movable(cls, label: str) -> str:
        return _not_latest(label)


class RenderPrompt(_Strict):
    """A preview: the final messages a version gives with these variables."""

    action: Literal["render"]
    name: ResourceName
    label: Label | None = None
    version: VersionNumber | None = None
    variables: dict[str, Any] = Field(default_factory=dict, max_length=200)

    @model_validator(mode="after")
    def _label_or_version(self) -> RenderPrompt:
        if self.label is not None and self.version is not None:
            raise ValueError("send `label` or `version`, not both")
        return self


class PromptQuery(_Strict):
    """`GET` (every prompt), `?name=` (its versions, labels and label history), or
    `?name=&label=` / `?name=&version=` (one version)."""

    name: ResourceName | None = None
    label: Label | None = None
    version: VersionNumber | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PromptQuery:
        if (self.label is not None or self.version is not None) and self.name is None:
            raise ValueError("`label` and `version` need `name`")
        if self.label is not None and self.version is not None:
            raise ValueError("send `label` or `version`, not both")
        return self


PromptBody = actions(CreatePrompt, MoveLabel, RenderPrompt, default="create")
