"""Experiments in Postgres: definitions and their lifecycle, and the assignment of each request.

    draft --start--> running <--pause/start--> paused;  any --stop--> stopped;  winner: -> stopped

Only a draft may be replaced (POST the same name again): once an experiment has served a request
its variants and weights stay as they were, or the hash would move units between variants and
the report would mix two experiments. A change is a new experiment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.experiments.assign import assign

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from lib.experiments.request import CreateExperiment

# action -> (statuses it applies to, the status it leads to)
TRANSITIONS = {"start": (("draft", "paused"), "running"), "pause": (("running",), "paused"),
               "stop": (("draft", "running", "paused"), "stopped")}

_COLUMNS = ("name, description, unit, metric, variants, control, status, winner, created_by, created_at, "
            "started_at, stopped_at, updated_by, updated_at")

_SAVE = f"""
INSERT INTO experiments (name, description, unit, metric, variants, control, status, created_by, updated_by,
                         started_at)
VALUES (%(name)s, %(description)s, %(unit)s, %(metric)s, %(variants)s, %(control)s, %(status)s, %(by)s, %(by)s,
        CASE WHEN %(status)s = 'running' THEN now() END)
ON CONFLICT (name) DO UPDATE SET
    description = EXCLUDED.description, unit = EXCLUDED.unit, metric = EXCLUDED.metric,
    variants = EXCLUDED.variants, control = EXCLUDED.control, status = EXCLUDED.status,
    started_at = EXCLUDED.started_at, updated_by = EXCLUDED.updated_by, updated_at = now()
WHERE experiments.status = 'draft'
RETURNING {_COLUMNS}
"""

# One round trip per served request: the unit's first exposure (kept once) and the request itself.
RECORD_SQL = """
WITH exposure AS (
    INSERT INTO experiment_exposures (experiment, unit, variant, request_id)
    VALUES (%(experiment)s, %(unit)s, %(variant)s, %(request_id)s)
    ON CONFLICT (experiment, unit) DO NOTHING
)
INSERT INTO experiment_requests (caller, request_id, experiment, variant, unit)
VALUES (%(caller)s, %(request_id)s, %(experiment)s, %(variant)s, %(unit)s)
ON CONFLICT (caller, request_id) DO NOTHING
"""


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    prompt: tuple[str, int] | None = None  # (prompt name, version)
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        prompt = {"name": self.prompt[0], "version": self.prompt[1]} if self.prompt else None
        return {"name": self.name, "weight": self.weight, "prompt": prompt, "model": self.model,
                "params": dict(self.params)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Variant:
        prompt = data.get("prompt")
        return cls(data["name"], float(data["weight"]), (prompt["name"], int(prompt["version"])) if prompt else None,
                   data.get("model"), data.get("params") or {})


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    unit: str
    metric: str
    variants: tuple[Variant, ...]
    control: str
    status: str
    winner: str | None = None
    audit: Mapping[str, Any] = field(default_factory=dict)  # created/started/stopped/updated by and at

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def serving(self, unit: str) -> tuple[Variant, bool]:
        """The variant for this unit, and whether the request counts (only while running). A stopped
        experiment serves its winner, a draft or paused one its control, to everyone."""
        if self.status == "running":
            return assign(self.name, unit, self.variants), True
        chosen = self.variant(self.winner) if self.status == "stopped" and self.winner else None
        return chosen or self.variant(self.control) or self.variants[0], False

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "unit": self.unit, "metric": self.metric,
                "control": self.control, "status": self.status, "winner": self.winner,
                "variants": [v.as_json() for v in self.variants], **self.audit}


def experiment_from_row(row: Sequence[Any]) -> Experiment:
    (name, description, unit, metric, variants, control, status, winner, created_by, created_at, started_at,
     stopped_at, updated_by, updated_at) = row
    audit = {"created_by": created_by, "created_at": created_at, "started_at": started_at,
             "stopped_at": stopped_at, "updated_by": updated_by, "updated_at": updated_at}
    return Experiment(name, description, unit, metric, tuple(Variant.from_json(v) for v in variants), control,
                      status, winner, audit)


async def _check_prompts(conn: AsyncConnection, body: CreateExperiment) -> None:
    pins = [(i, v.prompt) for i, v in enumerate(body.variants) if v.prompt is not None]
    if not pins:
        return
    cur = await conn.execute(
        "SELECT name, version FROM prompt_versions WHERE (name, version) IN (SELECT * FROM unnest(%s::text[], %s::int[]))",
        ([p.name for _, p in pins], [p.version for _, p in pins]))
    found = {(name, version) for name, version in await cur.fetchall()}
    for i, pin in pins:
        if (pin.name, pin.version) not in found:
            raise errors.field_error(f"variants.{i}.prompt", f"prompt {pin.name!r} has no version {pin.version}")


async def save_experiment(conn: AsyncConnection, body: CreateExperiment, by: str) -> Experiment:
    """Create the experiment, or replace it while it is still a draft (409 once it has started)."""
    from psycopg.types.json import Jsonb

    await _check_prompts(conn, body)
    variants = [Variant(v.name, v.weight, (v.prompt.name, v.prompt.version) if v.prompt else None, v.model,
                        v.params.model_dump(mode="json", exclude_none=True)).as_json() for v in body.variants]
    cur = await conn.execute(_SAVE, {
        "name": body.name, "description": body.description, "unit": body.unit, "metric": body.metric,
        "variants": Jsonb(variants), "control": body.control or body.variants[0].name,
        "status": "running" if body.start else "draft", "by": by})
    row = await cur.fetchone()
    if row is None:
        raise errors.Conflict(f"experiment {body.name!r} has started, so its variants are fixed; "
                              "create a new experiment to change them")
    return experiment_from_row(row)


async def load_experiment(conn: AsyncConnection, name: str) -> Experiment | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM experiments WHERE name = %s", (name,))
    row = await cur.fetchone()
    return experiment_from_row(row) if row is not None else None


async def list_experiments(conn: AsyncConnection, *, limit: int = 1000) -> list[dict[str, Any]]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS}, (SELECT count(*) FROM experiment_exposures e WHERE e.experiment = x.name)"
        " FROM experiments x ORDER BY created_at DESC LIMIT %s", (limit,))
    return [{**experiment_from_row(row[:-1]).as_json(), "exposures": row[-1]} for row in await cur.fetchall()]


async def change_status(conn: AsyncConnection, name: str, action: str, by: str) -> Experiment:
    sources, target = TRANSITIONS[action]
    cur = await conn.execute(
        f"UPDATE experiments SET status = %s, updated_by = %s, updated_at = now(),"
        f" started_at = CASE WHEN %s = 'running' THEN coalesce(started_at, now()) ELSE started_at END,"
        f" stopped_at = CASE WHEN %s = 'stopped' THEN now() ELSE stopped_at END"
        f" WHERE name = %s AND status = ANY(%s) RETURNING {_COLUMNS}",
        (target, by, target, target, name, list(sources)))
    row = await cur.fetchone()
    if row is not None:
        return experiment_from_row(row)
    current = await load_experiment(conn, name)
    if current is None:
        raise errors.NotFound(f"no experiment named {name!r}")
    raise errors.Conflict(f"experiment {name!r} is {current.status}; {action} applies to "
                          f"{' or '.join(sources)} experiments")


async def pick_winner(conn: AsyncConnection, name: str, variant: str, label: str | None,
                      by: str) -> tuple[Experiment, dict[str, Any] | None]:
    """Stop with a winner and, when it runs a prompt version, move `label` to that version; one
    transaction, so the label never points somewhere the experiment does not say."""
    from lib.prompts.store import move_label

    async with conn.transaction():
        cur = await conn.execute(f"SELECT {_COLUMNS} FROM experiments WHERE name = %s FOR UPDATE", (name,))
        row = await cur.fetchone()
        if row is None:
            raise errors.NotFound(f"no experiment named {name!r}")
        experiment = experiment_from_row(row)
        chosen = experiment.variant(variant)
        if chosen is None:
            names = ", ".join(v.name for v in experiment.variants)
            raise errors.field_error("variant", f"{variant!r} is not a variant of {name!r} ({names})")
        if experiment.status == "draft":
            raise errors.Conflict(f"experiment {name!r} has not started; there is nothing to pick from")
        cur = await conn.execute(
            f"UPDATE experiments SET status = 'stopped', winner = %s, updated_by = %s, updated_at = now(),"
            f" stopped_at = coalesce(stopped_at, now()) WHERE name = %s RETURNING {_COLUMNS}", (variant, by, name))
        experiment = experiment_from_row(await cur.fetchone())
        moved = None
        if chosen.prompt is not None and label is not None:
            moved = await move_label(conn, chosen.prompt[0], label, chosen.prompt[1], by)
    return experiment, moved


async def record_assignment(conn: AsyncConnection, *, experiment: str, variant: str, unit: str, caller: str,
                            request_id: str) -> None:
    await conn.execute(RECORD_SQL, {"experiment": experiment, "variant": variant, "unit": unit, "caller": caller,
                                 "request_id": request_id})
