"""What `/api/experiments` and `/api/feedback` answer: per POST action the experiment as it now is
(create, 201; start, pause, stop; winner, with the label it moved), per GET the list or one
experiment's report; feedback as stored, with what it is tied to.

Documentation models (see lib/shapes.py): the handlers return plain dicts, and the tests hold
real answers to these.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lib.experiments.request import Metric, PromptPin, Unit
from lib.prompts.request import PromptParams
from lib.prompts.response import LabelMove
from lib.shapes import Shape

Instant = str  # ISO 8601, as every time in these answers
Interval = list[float | None]  # [low, high]; null where a bound is not finite


class VariantDefinition(Shape):
    name: str
    weight: float
    prompt: PromptPin | None = Field(description="the prompt version the variant runs, pinned by number")
    model: str | None
    params: PromptParams


class ExperimentDefinition(Shape):
    """An experiment as it now is: what create, start, pause and stop answer."""

    name: str
    description: str
    unit: Unit
    metric: Metric
    control: str = Field(description="the variant the others are compared with")
    status: Literal["draft", "running", "paused", "stopped"]
    winner: str | None
    variants: list[VariantDefinition]
    created_by: str | None
    created_at: Instant = Field(description="ISO 8601")
    started_at: Instant | None = Field(description="ISO 8601; null until it first runs")
    stopped_at: Instant | None = Field(description="ISO 8601")
    updated_by: str | None
    updated_at: Instant = Field(description="ISO 8601")


class PickedWinner(ExperimentDefinition):
    """`action: winner`: the experiment, stopped with its winner, and the label moved to the
    winner's prompt version (null when the winner runs no prompt or `label` was null)."""

    label_moved: LabelMove | None


class ExperimentSummary(ExperimentDefinition):
    exposures: int = Field(description="units assigned so far")


class ExperimentList(Shape):
    """`GET`: every experiment, newest first."""

    experiments: list[ExperimentSummary]


class ControlComparison(Shape):
    """A variant against control on one metric."""

    difference: float | None = Field(description="variant minus control")
    relative: float | None = Field(description="the difference over control's value")
    ci95: Interval | None
    p_value: float | None
    sequential_p_value: float | None = Field(description="always valid (mSPRT): the one verdicts rest on")
    test: str = Field(description="welch_t, two_proportion_z or delta_method_z")
    verdict: Literal["better", "worse", "inconclusive"]


class MeanMetric(Shape):
    """A mean over units (feedback_score, latency in ms, cost in USD)."""

    units: int
    mean: float | None
    ci95: Interval | None
    vs_control: ControlComparison | None = Field(None, description="absent on control; null when not comparable yet")


class RateMetric(Shape):
    """A rate over units' trials (positive_feedback_rate, error_rate)."""

    units: int
    successes: float
    trials: float
    rate: float | None
    ci95: Interval | None
    vs_control: ControlComparison | None = Field(None, description="absent on control; null when not comparable yet")


class VariantMetrics(Shape):
    feedback_score: MeanMetric
    latency: MeanMetric
    cost: MeanMetric
    positive_feedback_rate: RateMetric
    error_rate: RateMetric


class VariantReport(VariantDefinition):
    control: bool
    exposures: int
    units: int = Field(description="units with a recorded request")
    requests: int
    metrics: VariantMetrics


class SampleRatioCheck(Shape):
    """Exposures against the weights (chi-square); flagged, the results are not trustworthy."""

    chi_square: float | None
    df: int
    p_value: float | None
    flagged: bool
    warning: str | None = None


class Decision(Shape):
    """The verdict on the experiment's own metric."""

    metric: Metric
    higher_is_better: bool
    significant: bool
    best: str | None
    better: list[str]
    worse: list[str]
    trustworthy: bool
    summary: str


class ReportMethod(Shape):
    unit_of_analysis: Unit
    means: str
    rates: str
    sequential: str
    significant_when: str


class ExperimentReport(ExperimentDefinition):
    """`GET ?name=`: per variant exposures, requests and every metric with its interval, against
    control with p-values; the sample-ratio check and the decision."""

    alpha: float
    variants: list[VariantReport]  # type: ignore[assignment]
    srm: SampleRatioCheck
    decision: Decision
    method: ReportMethod


class ExperimentArm(Shape):
    name: str
    variant: str


class Feedback(Shape):
    """A caller's feedback on one of its requests, and what answered that request."""

    request_id: str
    score: float = Field(description="as sent")
    scale: Literal["thumbs", "0-1", "1-5"]
    value: float = Field(description="the score normalized to 0..1")
    comment: str | None
    created_at: Instant = Field(description="ISO 8601")
    updated_at: Instant = Field(description="ISO 8601; POST answers 201 when it equals created_at (new), else 200")
    model: str | None = Field(description="the model that answered, from the usage ledger")
    prompt: PromptPin | None = Field(description="the stored prompt version it ran")
    experiment: ExperimentArm | None = Field(description="the experiment variant that served it")
