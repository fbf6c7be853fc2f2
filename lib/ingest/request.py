"""What /api/upload accepts: one body model per `action`, told apart by that field (a body without
it is an upload), and the query strings of its GET (list) and DELETE.

Each ingest model turns itself into what `ingest_document` takes, `(bytes, filename, IngestOptions)`;
the store is imported only then, to keep it out of the function's cold start.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lib import errors
from lib.web.fields import Namespace, actions

if TYPE_CHECKING:
    from lib.ingest.blobs import Blob
    from lib.ingest.store import IngestOptions
    from lib.web import UploadedFile


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    namespace: Namespace = "default"


class _Ingest(_Body):
    """What an upload or an ingest of a presigned key may say about the document (IngestOptions)."""

    metadata: dict[str, Any] = Field(default_factory=dict)
    source: str | None = Field(None, min_length=1, max_length=1000)
    title: str | None = Field(None, max_length=1000)
    media_type: str | None = Field(None, max_length=200)
    embedding_model: str | None = Field(None, max_length=200)
    dimensions: int | None = Field(None, ge=1, le=4096)
    chunk_size_tokens: int | None = Field(None, ge=16, le=8000)
    chunk_overlap_tokens: int | None = Field(None, ge=0, le=4000)
    stream: bool = False

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_from_form(cls, value: Any) -> Any:
        # multipart forms carry metadata as a JSON string
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError:
                raise ValueError("must be a JSON object") from None
        return value

    def options(self, sent_media_type: str | None, **original: str | None) -> IngestOptions:
        """The options for the store; a declared `media_type` wins over the one the file came with."""
        from lib.ingest.store import IngestOptions

        return IngestOptions(
            namespace=self.namespace, source=self.source, title=self.title, metadata=self.metadata,
            media_type=self.media_type or sent_media_type, embedding_model=self.embedding_model,
            dimensions=self.dimensions, chunk_size_tokens=self.chunk_size_tokens,
            chunk_overlap_tokens=self.chunk_overlap_tokens, **original)


class UploadRequest(_Ingest):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"filename": "note.md", "content": "# Note\n\nThe warranty lasts two years.", "namespace": "default"}]})

    action: Literal["upload"] = "upload"
    filename: str | None = Field(None, min_length=1, max_length=500)
    content: str | None = None
    content_base64: str | None = None

    def document(self, files: dict[str, UploadedFile]) -> tuple[bytes, str, IngestOptions]:
        """The file: a multipart `file` part (or the only part), `content` text or `content_base64`."""
        if files:
            part = files.get("file") or next(iter(files.values()))
            return part.data, self.filename or part.filename, self.options(part.content_type)
        if not self.filename:
            raise errors.field_error("filename", "is required (it names the document and tells its type)")
        if (self.content is None) == (self.content_base64 is None):
            raise errors.field_error("content", "send exactly one of content (text) or content_base64")
        if self.content is not None:
            return self.content.encode(), self.filename, self.options(None)
        try:
            data = base64.b64decode(self.content_base64 or "", validate=True)
        except (binascii.Error, ValueError):
            raise errors.field_error("content_base64", "is not valid base64") from None
        return data, self.filename, self.options(None)


class PresignRequest(_Body):
    action: Literal["presign"]
    filename: str = Field(min_length=1, max_length=500)
    media_type: str | None = Field(None, max_length=200)
    size: int | None = Field(None, ge=0)


class IngestKeyRequest(_Ingest):
    action: Literal["ingest"]
    key: str = Field(min_length=1, max_length=1024)
    filename: str | None = Field(None, min_length=1, max_length=500)

    def document(self, blob: Blob) -> tuple[bytes, str, IngestOptions]:
        """The object uploaded to the presigned URL, remembered (key, ETag) for the reindex cron."""
        from lib.ingest.blobs import filename_from_key

        filename = self.filename or filename_from_key(blob.key)
        return blob.data, filename, self.options(blob.content_type, blob_key=blob.key, source_etag=blob.etag)


class DocumentQuery(_Body):
    """One document, by id or by source: `DELETE ?namespace=&document_id=` (or `&source=`)."""

    document_id: str | None = None
    source: str | None = None


class DeleteRequest(DocumentQuery):
    action: Literal["delete"]


class ListQuery(_Body):
    """`GET ?namespace=&limit=&offset=`: a page of the namespace's documents."""

    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10**9)


UploadBody = actions(UploadRequest, PresignRequest, IngestKeyRequest, DeleteRequest, default="upload")
