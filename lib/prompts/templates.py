"""`{{variable}}` templates: which variables a prompt needs, checking what a request gives, rendering.

A placeholder is `{{name}}` (spaces inside the braces allowed), `name` a letter or `_` followed by
letters, digits or `_`. Anything else in braces is text, so JSON examples in a prompt are safe.
Rendering is one pass: a value that itself contains `{{x}}` is inserted as it is, never expanded.
Values that are not strings are inserted as JSON (`3`, `true`, `{"a": 1}`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lib import errors

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
LATEST = "latest"  # not a stored label: always the newest version
PRODUCTION = "production"  # what a request gets when it names neither a label nor a version


@dataclass(frozen=True)
class PromptVersion:
    """One immutable version of a prompt, as stored."""

    name: str
    version: int
    kind: str  # text | chat
    template: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content) pairs
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    variables: tuple[str, ...] = ()
    commit_message: str | None = None
    created_by: str | None = None
    created_at: Any = None

    def texts(self) -> list[str]:
        return [self.template or ""] if self.kind == "text" else [content for _, content in self.messages or ()]

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "version": self.version, "kind": self.kind}
        if self.kind == "text":
            data["template"] = self.template
        else:
            data["messages"] = [{"role": role, "content": content} for role, content in self.messages or ()]
        data.update(model=self.model, params=dict(self.params), variables=list(self.variables),
                    commit_message=self.commit_message, created_by=self.created_by, created_at=self.created_at)
        return data

    def same_content(self, other: PromptVersion) -> bool:
        """Whether two versions say the same thing (ignoring who made them and when)."""
        return (self.kind, self.template, self.messages, self.model, dict(self.params)) == (
            other.kind, other.template, other.messages, other.model, dict(other.params))


def placeholders(texts: Iterable[str]) -> tuple[str, ...]:
    """The variables the texts use, in order of first use."""
    seen: dict[str, None] = {}
    for text in texts:
        for match in PLACEHOLDER.finditer(text):
            seen.setdefault(match.group(1), None)
    return tuple(seen)


def check_variables(version: PromptVersion, given: Mapping[str, Any], where: str = "template.variables",
                    provided: Iterable[str] = ()) -> None:
    """A 422 naming each variable the version needs and `given` lacks, and each one it does not use.
    `provided` are filled in by the function itself (rag's `query` and `context`): a request may not
    send them."""
    provided = set(provided)
    needed = [v for v in version.variables if v not in provided]
    details = [{"field": f"{where}.{name}", "message": f"is required by prompt {version.name!r} "
                f"version {version.version}"} for name in needed if name not in given]
    for name in given:
        if name in provided:
            message = "is filled in by this function; do not send it"
        elif name not in version.variables:
            uses = ", ".join(needed) or "none"
            message = f"is not a variable of prompt {version.name!r} version {version.version} (it uses: {uses})"
        else:
            continue
        details.append({"field": f"{where}.{_printable(name)}", "message": message})
    if details:
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
        raise errors.ValidationFailed(f"invalid request: {summary}", details=details)


def fill(text: str, values: Mapping[str, Any]) -> str:
    """`text` with each placeholder replaced by its value (see the module docstring)."""
    return PLACEHOLDER.sub(lambda m: as_text(values[m.group(1)]), text)


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render(version: PromptVersion, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The version's messages with the values filled in; a text prompt is one user message.
    The caller has checked the variables (check_variables)."""
    if version.kind == "text":
        return [("user", fill(version.template or "", values))]
    return [(role, fill(content, values)) for role, content in version.messages or ()]


def _printable(name: str) -> str:
    return name if len(name) <= 100 else name[:100] + "..."
