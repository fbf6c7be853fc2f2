"""What `GET /api/reindex` (the cron) answers: what one bounded run did.

A documentation model (see lib/shapes.py): the run's report is a plain dict, and the tests
hold real answers to this.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from lib.shapes import Shape


class ReindexJob(Shape):
    id: int
    kind: str = Field(description="refresh_source, reembed or switch_model")
    document_id: str | None
    namespace: str
    outcome: str


class ReindexReport(Shape):
    processed: int
    remaining: int = Field(description="jobs left for the next run")
    planned: int = Field(description="jobs this run added to the queue")
    failed: int
    orphans_removed: int
    outcomes: dict[str, int]
    jobs: list[ReindexJob]
    duration_s: float
    observe: dict[str, Any] = Field(
        description="the observability upkeep of this run: rows and rollups pruned, alerts new, sent and "
                    "failed (see docs/observability.md)")
    vector_indexes: list[dict[str, Any]] = Field(
        default_factory=list,
        description="HNSW index builds of this run, one entry per index: model, index, action (built, rebuilt, "
                    "dropped, dropped_leftover, due, timed_out, failed), kind, m, ef_construction, chunks, "
                    "memory_mb, seconds, note (see docs/scaling.md)")
