"""What `/api/prompts` answers: per POST action a new version (create, 201), a label move (label)
or the rendered messages (render); per GET the list of prompts, one prompt's history, or one
version.

Documentation models (see lib/shapes.py): the handlers return plain dicts, and the tests hold
real answers to these.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lib.prompts.request import PromptParams
from lib.shapes import Shape

Instant = str  # ISO 8601, as every time in these answers


class PromptMessage(Shape):
    role: Literal["system", "user", "assistant"]
    content: str


class PromptVersionRecord(Shape):
    """One immutable version: a text prompt has `template`, a chat prompt `messages`."""

    name: str
    version: int
    kind: Literal["text", "chat"]
    template: str | None = Field(None, description="text prompts only; `{{variable}}` placeholders")
    messages: list[PromptMessage] | None = Field(None, description="chat prompts only")
    model: str | None = Field(description="provider/model the version runs with, unless the request names one")
    params: PromptParams
    variables: list[str] = Field(description="the placeholders the version uses, in order of first use")
    commit_message: str | None
    created_by: str | None = Field(description="the caller that created it")
    created_at: Instant = Field(description="ISO 8601")


class LabelledPromptVersion(PromptVersionRecord):
    """One version with the labels that point at it: what `create` made (201; `labels` are those it
    was given) or what `GET ?name=&label=` (or `&version=`) found."""

    labels: list[str]


class LabelMove(Shape):
    """`action: label`: where the label points now. Pointing it where it already was records
    nothing (`moved: false`, no `moved_by` or `moved_at`)."""

    name: str
    label: str
    version: int
    previous_version: int | None = Field(description="null: the label is new")
    moved: bool
    moved_by: str | None = None
    moved_at: Instant | None = Field(None, description="ISO 8601")


class RenderedPrompt(Shape):
    """`action: render`: the messages a version gives with these variables, as ai_execute sends them
    (a text prompt is one user message)."""

    name: str
    version: int
    kind: Literal["text", "chat"]
    model: str | None
    params: PromptParams
    messages: list[PromptMessage]


class PromptSummary(Shape):
    name: str
    latest_version: int
    labels: dict[str, int] = Field(description="label -> version, `latest` included")
    created_at: Instant = Field(description="ISO 8601")
    updated_at: Instant = Field(description="ISO 8601: when its newest version was made")


class PromptList(Shape):
    """`GET`: every prompt, by name."""

    prompts: list[PromptSummary]


class LabelPosition(Shape):
    version: int
    moved_by: str | None
    moved_at: Instant = Field(description="ISO 8601")


class LabelHistoryEntry(Shape):
    label: str
    from_version: int | None = Field(description="null: the label was new")
    to_version: int
    moved_by: str | None
    moved_at: Instant = Field(description="ISO 8601")


class PromptHistory(Shape):
    """`GET ?name=`: every version (newest first), where each label points, and every label move
    (newest first)."""

    name: str
    latest_version: int
    labels: dict[str, LabelPosition]
    versions: list[PromptVersionRecord]
    label_moves: list[LabelHistoryEntry]
