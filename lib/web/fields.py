"""Field types that request models share, declared once so every function validates them alike.

Kept out of `lib.web` itself so a function without request models (health) never imports pydantic.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# A namespace keys documents, S3 key prefixes and API-key scopes, in bodies and query strings
# alike; the narrow alphabet keeps it safe in an object key and readable in a log line.
Namespace = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@/-]+$")]

# The name of a stored prompt or experiment: letters, digits and . _ - /, starting with a letter
# or digit (a `/` groups prompts into folders, as in `support/triage`).
ResourceName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")]
# A prompt label (production, staging, ...) or an experiment variant's name.
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


def actions(*models: type[BaseModel], default: str) -> Any:
    """A body that is one of `models`, told apart by its `action` field, `default` when it has none
    (`{"action": "label", ...}` moves a label; a body without `action` creates)."""

    def default_action(body: Any) -> Any:
        return {**body, "action": default} if isinstance(body, dict) and "action" not in body else body

    # The before-validator is listed after the discriminator so that it wraps it, and so runs first.
    union = models[0]
    for model in models[1:]:
        union = union | model
    return Annotated[union, Field(discriminator="action"), BeforeValidator(default_action)]


class TemplateRef(BaseModel):
    """`"template": {"name", "label" | "version", "variables"}` in ai_execute and rag: a stored prompt
    (lib/prompts) to run. Neither label nor version means the `production` label."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: ResourceName
    label: Label | None = None
    version: int | None = Field(None, ge=1, le=2**31 - 1)
    variables: dict[str, Any] = Field(default_factory=dict, max_length=200)

    @model_validator(mode="after")
    def label_or_version(self) -> TemplateRef:
        if self.label is not None and self.version is not None:
            raise ValueError("send `label` or `version`, not both")
        return self
