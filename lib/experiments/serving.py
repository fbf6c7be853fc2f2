"""A request's stored prompt and experiment variant, applied before ai_execute or rag runs it.

    body, served = await serve_execute(request, body)          # ai_execute
    body, served, prompt = await serve_rag(request, body)      # rag (prompt: the answer's AnswerPrompt)

With `"experiment"`, the unit's variant is chosen (lib/experiments/assign.py) and, while the
experiment runs, the request is recorded against it. The variant's prompt version, else the
request's `template`, is rendered with `template.variables`. Precedence of model and parameters:
the variant's, then the request's own, then the prompt version's. `served` says what ran: its
`fields` (`prompt`, `experiment`) go into the JSON response and the stream's finish metadata, and
the prompt's name and version into the ledger through the CallContext. (ai_execute's answer,
lib/assistant, puts `fields` in its JSON, its stream's finish metadata and the stored chat turn.)

Definitions are cached per process like prompt labels (PROMPT_CACHE_TTL_S), so an experiment's
start, pause or stop reaches every instance within that bound.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.prompts.resolve import TtlCache, resolve_prompt
from lib.prompts.templates import PRODUCTION, PromptVersion

if TYPE_CHECKING:
    from lib.assistant.request import AssistantRequest
    from lib.config import Settings
    from lib.experiments.store import Experiment, Variant
    from lib.gateway.chain import CallContext
    from lib.retrieval.answers import AnswerPrompt
    from lib.retrieval.request import RagRequest
    from lib.web import Request
    from lib.web.fields import TemplateRef

_experiments = TtlCache()


@dataclass
class Served:
    """What a request ran besides its own words: a stored prompt version and an experiment variant."""

    prompt: PromptVersion | None = None
    experiment: str | None = None
    variant: str | None = None

    @property
    def fields(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.prompt is not None:
            data["prompt"] = {"name": self.prompt.name, "version": self.prompt.version}
        if self.experiment is not None:
            data["experiment"] = {"name": self.experiment, "variant": self.variant}
        return data

    def tag(self, ctx: CallContext) -> CallContext:
        """The call's context with the prompt version the ledger should record."""
        if self.prompt is None:
            return ctx
        return replace(ctx, prompt_name=self.prompt.name, prompt_version=self.prompt.version)


def forget_experiments() -> None:
    """Drop cached definitions (after a change on this instance, and in tests)."""
    _experiments.clear()


async def cached_experiment(settings: Settings, name: str) -> Experiment | None:
    from lib import db  # imported when a request names an experiment, not by every ai_execute cold start
    from lib.experiments.store import load_experiment

    async def load() -> Experiment | None:
        async with db.connect(settings) as conn:
            return await load_experiment(conn, name)

    return await _experiments.get((settings.database_url, name), settings.prompt_cache_ttl_s, load)


@dataclass
class _Choice:
    experiment: Experiment
    variant: Variant
    unit: str
    counts: bool  # record the request (the experiment is running)


async def _choose(request: Request, name: str, *, user: str | None, conversation: str | None,
                  conversation_field: str) -> _Choice:
    from lib.experiments.assign import unit_key

    experiment = await cached_experiment(request.settings, name)
    if experiment is None:
        raise errors.field_error("experiment", f"no experiment named {name!r}")
    unit = unit_key(experiment.unit, caller=request.caller, request_id=request.request_id, user=user,
                    conversation=conversation)
    if unit is None:
        where = "user" if experiment.unit == "user" else conversation_field
        raise errors.field_error(where, f"experiment {name!r} assigns variants by {experiment.unit}: "
                                 f"send `{where}` so the same {experiment.unit} keeps the same variant")
    variant, counts = experiment.serving(unit)
    return _Choice(experiment, variant, unit, counts)


async def _record(request: Request, choice: _Choice | None) -> None:
    from lib import db
    from lib.experiments.store import record_assignment

    if choice is None or not choice.counts:
        return
    async with db.connect(request.settings) as conn:
        await record_assignment(conn, experiment=choice.experiment.name, variant=choice.variant.name,
                                unit=choice.unit, caller=request.caller, request_id=request.request_id)


async def _prompt(request: Request, template: TemplateRef | None, choice: _Choice | None) -> PromptVersion | None:
    """The version to run: the variant's pinned one, else the one the request's template names."""
    if choice is not None and choice.variant.prompt is not None:
        name, number = choice.variant.prompt
        version = await resolve_prompt(request.settings, name, version=number)
        if version is None:  # checked when the experiment was created; versions are never deleted
            raise errors.ConfigurationError(f"experiment {choice.experiment.name!r} runs prompt {name!r} "
                                            f"version {number}, which no longer exists")
        return version
    if template is None:
        return None
    label = template.label if template.label is not None or template.version is not None else PRODUCTION
    version = await resolve_prompt(request.settings, template.name, label=label, version=template.version)
    if version is not None:
        return version
    if template.version is not None:
        raise errors.field_error("template.version", f"prompt {template.name!r} has no version {template.version}")
    if await resolve_prompt(request.settings, template.name, label="latest") is None:
        raise errors.field_error("template.name", f"no prompt named {template.name!r}")
    raise errors.field_error("template.label", f"prompt {template.name!r} has no label {label!r}; "
                             "name a label or a version")


async def serve_execute(request: Request, body: AssistantRequest) -> tuple[AssistantRequest, Served]:
    """`body` with its template and experiment variant applied, and what served."""
    if body.template is None and body.experiment is None:
        return body, Served()
    from lib.prompts.apply import apply_to_execute, settings_update

    choice = None
    if body.experiment is not None:
        choice = await _choose(request, body.experiment, user=request.user_id, conversation=body.conversation_id or body.id,
                               conversation_field="conversation_id")
    version = await _prompt(request, body.template, choice)
    if version is not None:
        body = apply_to_execute(body, version, body.template.variables if body.template else {},
                                stored_chat=body.chat_id is not None)
    if choice is not None:
        update = settings_update(body, choice.variant.model, choice.variant.params, override=True)
        body = body.model_copy(update={**update, "experiment": None})
    await _record(request, choice)
    served = Served(version, choice.experiment.name if choice else None, choice.variant.name if choice else None)
    return body, served


async def serve_rag(request: Request, body: RagRequest) -> tuple[RagRequest, Served, AnswerPrompt | None]:
    """`body` with the variant's model and parameters, the answer prompt to use, and what served."""
    if body.template is None and body.experiment is None:
        return body, Served(), None
    from lib.prompts.apply import answer_prompt, rag_settings
    from lib.retrieval.answers import EXTRACTIVE_MODEL, choose_model

    field = "template" if body.template is not None else "experiment"
    if not body.answer:
        raise errors.field_error(field, "applies to answers; this request asks for search results (answer: false)")
    choice = None
    if body.experiment is not None:
        choice = await _choose(request, body.experiment, user=request.user_id,
                               conversation=body.conversation_id or body.id, conversation_field="conversation_id")
        if choice.variant.params.get("tools") or choice.variant.params.get("response_format"):
            raise errors.field_error("experiment", f"variant {choice.variant.name!r} sets tools or a response "
                                     "format, which rag answers (text with citations) do not take")
    version = await _prompt(request, body.template, choice)
    prompt = None
    if version is not None:
        prompt = answer_prompt(version, body.template.variables if body.template else {})
        body = rag_settings(body, version.model, version.params, override=False)
    if choice is not None:
        body = rag_settings(body, choice.variant.model, choice.variant.params, override=True)
    if prompt is not None and choose_model(body.model, request.settings) == EXTRACTIVE_MODEL:
        raise errors.field_error(field, f"the answer would come from {EXTRACTIVE_MODEL}, which calls no language "
                                 "model and so uses no prompt: name a model (in the request, the prompt or the "
                                 "variant) or set RAG_MODEL")
    await _record(request, choice)
    served = Served(version, choice.experiment.name if choice else None, choice.variant.name if choice else None)
    return body.model_copy(update={"template": None, "experiment": None}), served, prompt
