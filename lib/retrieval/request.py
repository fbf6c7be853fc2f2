"""The body of `POST /api/rag`.

`useChat` posts `{id, messages, trigger, messageId, ...body}`: its UIMessages are read for their
text parts, and the top-level `id`, `trigger` and `messageId` are accepted by name (every other
unknown field is refused). Only pydantic (and the shared field types) is imported here, so the function's cold start stays small.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from lib.web.fields import Namespace, ResourceName, TemplateRef


class Weights(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    keyword: float = Field(1.0, ge=0, le=100)
    vector: float = Field(1.0, ge=0, le=100)


class ChatMessage(BaseModel):
    """A `useChat` UIMessage (text parts are read; other parts are ignored) or `{role, content}`."""

    model_config = ConfigDict(extra="allow", defer_build=True)
    role: Literal["user", "assistant", "system"]
    parts: list[dict[str, Any]] = Field(default_factory=list)
    content: str | None = None


class RagRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True, json_schema_extra={"examples": [
        {"query": "How long is the warranty?", "namespace": "default", "top_k": 5},
        {"query": "warranty", "namespace": "default", "mode": "keyword", "answer": False},
    ]})
    query: str | None = Field(None, min_length=1, max_length=8000)
    messages: list[ChatMessage] | None = Field(None, min_length=1, max_length=500)
    namespace: Namespace = "default"
    top_k: int = Field(5, ge=1, le=100)
    # auto: hybrid, or keyword alone when the namespace's embedding model is only lexical
    mode: Literal["auto", "hybrid", "keyword", "vector"] = "auto"
    fusion: Literal["weighted", "rrf"] = "weighted"
    weights: Weights | None = None
    filter: dict[str, Any] | None = None
    document_ids: list[UUID] | None = Field(None, max_length=1000)
    sources: list[str] | None = Field(None, max_length=1000)
    min_score: float | None = None
    ef_search: int | None = Field(None, ge=10, le=1000)  # HNSW candidate list (lib.retrieval.search)
    answer: bool = True
    model: str | None = Field(None, min_length=1, max_length=200)
    stream: bool | None = None
    protocol: Literal["ui", "data", "text"] = "ui"
    conversation_id: str | None = Field(None, min_length=1, max_length=128)
    max_tokens: int | None = Field(None, ge=1, le=32000)
    temperature: float | None = Field(None, ge=0, le=2)
    user: str | None = Field(None, min_length=1, max_length=200)  # end user, for budgets and the ledger
    # a stored prompt for the answer, and an experiment that picks its version or model (lib/experiments)
    template: TemplateRef | None = None
    experiment: ResourceName | None = None
    # sent by useChat alongside `messages`
    id: str | None = Field(None, max_length=128)
    trigger: str | None = None
    messageId: str | None = None  # noqa: N815 - the AI SDK's spelling
