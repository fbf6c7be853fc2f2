"""What /api/experiments and /api/feedback accept.

Experiments: one body model per `action` (a body without it creates, or replaces a draft), and the
query of GET. Feedback: a score on one of three scales, normalized to 0..1 (see `FeedbackBody`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lib import errors
from lib.prompts.request import PromptParams, VersionNumber
from lib.prompts.templates import LATEST
from lib.web.fields import Label, ResourceName, actions

Unit = Literal["user", "conversation", "request"]
Metric = Literal["feedback_score", "positive_feedback_rate", "latency", "cost", "error_rate"]
RequestId = Annotated[str, Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class PromptPin(_Strict):
    """A prompt version a variant runs: pinned by number, since labels move."""

    name: ResourceName
    version: VersionNumber


class VariantIn(_Strict):
    """One arm: a prompt version and/or a model and parameters (none: the request as it was sent)."""

    name: Label
    weight: float = Field(1.0, gt=0, le=1_000_000)
    prompt: PromptPin | None = None
    model: str | None = Field(None, min_length=1, max_length=200)
    params: PromptParams = Field(default_factory=PromptParams)


class CreateExperiment(_Strict):
    action: Literal["create"] = "create"
    name: ResourceName
    description: str = Field("", max_length=2000)
    unit: Unit = "user"
    metric: Metric = "feedback_score"
    variants: list[VariantIn] = Field(min_length=2, max_length=20)
    control: Label | None = None  # default: the first variant
    start: bool = False

    @model_validator(mode="after")
    def _variants(self) -> CreateExperiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not one of the variants")
        return self


class ChangeStatus(_Strict):
    """start (a draft or a paused experiment), pause (a running one), stop (for good)."""

    action: Literal["start", "pause", "stop"]
    name: ResourceName


class PickWinner(_Strict):
    """Stop the experiment with a winner, which then serves every request that names it; when the
    winner runs a prompt version, `label` (default `production`; null: none) is moved to it."""

    action: Literal["winner"]
    name: ResourceName
    variant: Label
    label: Label | None = "production"

    @field_validator("label")
    @classmethod
    def _movable(cls, label: str | None) -> str | None:
        if label == LATEST:
            raise ValueError("`latest` always means the newest version; it cannot be moved")
        return label


ExperimentBody = actions(CreateExperiment, ChangeStatus, PickWinner, default="create")


class ExperimentQuery(_Strict):
    """`GET` lists experiments; `?name=` is one experiment's report."""

    name: ResourceName | None = None


class FeedbackBody(_Strict):
    """Feedback on one answer, by the caller who asked for it.

    Scales, and the 0..1 value each score is normalized to:
      thumbs  -1 or 1           -> 0 or 1
      0-1     0 to 1            -> as sent
      1-5     1 to 5 (stars)    -> (score - 1) / 4
    Without `scale`: -1 and 1 are thumbs, other values from 0 to 1 are the 0-1 scale, values above
    1 up to 5 the 1-5 scale. A five-point "1" (the worst) must therefore say `"scale": "1-5"`.
    """

    request_id: RequestId
    score: float = Field(ge=-1, le=5)
    scale: Literal["thumbs", "0-1", "1-5"] | None = None
    comment: str | None = Field(None, max_length=4000)

    def normalized(self) -> tuple[str, float]:
        """(scale, value in 0..1); a score outside its scale is a 422."""
        score, scale = self.score, self.scale
        if scale is None:
            scale = "thumbs" if score in (-1, 1) else "0-1" if 0 <= score <= 1 else "1-5" if score > 1 else None
            if scale is None:
                raise errors.field_error("score", "use -1 or 1 (thumbs), 0 to 1, or 1 to 5 (with scale 1-5)")
        if scale == "thumbs":
            if score not in (-1, 1):
                raise errors.field_error("score", "a thumbs score is -1 or 1")
            return scale, (score + 1) / 2
        if scale == "0-1":
            if not 0 <= score <= 1:
                raise errors.field_error("score", "a 0-1 score is from 0 to 1")
            return scale, score
        if not 1 <= score <= 5:
            raise errors.field_error("score", "a 1-5 score is from 1 to 5")
        return scale, (score - 1) / 4


class FeedbackQuery(_Strict):
    """`GET ?request_id=`: the caller's feedback on that request, with what it is tied to."""

    request_id: RequestId
