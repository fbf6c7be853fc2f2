"""What `/api/upload` and `/api/embeddings` answer: an indexed document, a presigned upload, a
page of documents, a deletion, the events of a streamed upload, and embeddings.

Documentation models (see lib/shapes.py): the handlers return plain dicts, and the tests hold
real answers to these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from lib.shapes import Shape


class IngestResult(Shape):
    """One document, indexed completely or not at all."""

    document_id: str
    namespace: str
    source: str = Field(description="the filename, URL or S3 key; an upload of the same source replaces it")
    status: Literal["indexed", "unchanged", "replaced"] = Field(
        description="unchanged: the same bytes were indexed already, so nothing was done")
    chunks: int
    tokens: int
    embedding_model: str
    dimensions: int
    version: int
    title: str | None = None
    media_type: str | None = None
    embedded: int = Field(description="chunks sent to the embedding model now")
    cached: int = Field(description="chunks whose embedding came from the cache")
    embedding_tokens: int
    cost_usd: float | None


class PresignedUpload(Shape):
    """`action: presign`: PUT the file to `url` with `headers`, then POST `action: ingest` with `key`."""

    url: str
    key: str
    method: Literal["PUT"]
    headers: dict[str, str]
    expires_in: int = Field(description="seconds")


class DeletedDocument(Shape):
    document_id: str
    namespace: str
    source: str
    deleted: Literal[True]
    chunks: int


class DocumentSummary(Shape):
    document_id: str
    namespace: str
    source: str
    title: str | None
    media_type: str | None
    chunks: int
    tokens: int
    embedding_model: str
    version: int
    metadata: dict[str, Any]
    content_hash: str
    blob_key: str | None = Field(description="the S3 key, for documents uploaded through a presigned URL")
    created_at: str = Field(description="ISO 8601")
    updated_at: str = Field(description="ISO 8601")


class DocumentList(Shape):
    """`GET ?namespace=`: a page of the namespace's documents, most recently updated first."""

    namespace: str
    documents: list[DocumentSummary]
    limit: int
    offset: int


class UploadProgress(Shape):
    """One stage of a streamed upload: extract, chunk, embed (once per batch), write."""

    type: Literal["progress"]
    stage: Literal["extract", "chunk", "embed", "write"]
    filename: str | None = None
    bytes: int | None = None
    sections: int | None = None
    batches_done: int | None = None
    batches: int | None = None
    chunks_done: int | None = None
    chunks: int | None = None


class UploadResultEvent(IngestResult):
    """The last event of a streamed upload that worked: the same fields as the JSON answer."""

    type: Literal["result"]


class UploadErrorDetail(Shape):
    code: str
    message: str


class UploadFailedEvent(Shape):
    """The last event of a streamed upload that failed after its first event (before it, the
    answer is a plain JSON error with its status)."""

    type: Literal["error"]
    status: int
    error: UploadErrorDetail


UploadEvent = Annotated[UploadProgress | UploadResultEvent | UploadFailedEvent, Field(discriminator="type")]


class Embedding(Shape):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32 "
                                         "with encoding_format: base64")


class EmbeddingUsage(Shape):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(Shape):
    """OpenAI's shape, plus what it cost and how much came from the cache."""

    object: Literal["list"]
    data: list[Embedding]
    model: str
    dimensions: int
    usage: EmbeddingUsage
    cost_usd: float | None
    cached: int = Field(description="inputs answered from the Postgres cache (provider models only)")
    embedded: int = Field(description="inputs sent to the model now")
