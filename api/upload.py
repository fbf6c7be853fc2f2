"""/api/upload: put documents in (JSON, multipart, or a presigned S3 upload), list and delete them.

POST (JSON or multipart/form-data), chosen by `action`:
  upload (default)  `filename` + `content` or `content_base64` (or a multipart `file` part)
  presign           `filename`, `media_type`, `size` -> a presigned S3 PUT: {url, key, headers, expires_in}
  ingest            `key` of an object PUT to that URL -> indexed like an upload
  delete            `document_id` or `source`
GET ?namespace=... lists documents; DELETE ?document_id=...&namespace=... deletes one.
`"stream": true` answers with server-sent events: progress per stage and embedding batch, then the result.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lib import errors
from lib.web import Endpoint, Request, sse_response
from lib.web.fields import Namespace

app = Endpoint("upload")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    namespace: Namespace = "default"


class _IngestOptions(_Body):
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


class UploadRequest(_IngestOptions):
    action: Literal["upload"] = "upload"
    filename: str | None = Field(None, min_length=1, max_length=500)
    content: str | None = None
    content_base64: str | None = None


class PresignRequest(_Body):
    action: Literal["presign"]
    filename: str = Field(min_length=1, max_length=500)
    media_type: str | None = Field(None, max_length=200)
    size: int | None = Field(None, ge=0)


class IngestKeyRequest(_IngestOptions):
    action: Literal["ingest"]
    key: str = Field(min_length=1, max_length=1024)
    filename: str | None = Field(None, min_length=1, max_length=500)


class DeleteRequest(_Body):
    action: Literal["delete"] = "delete"
    document_id: str | None = None
    source: str | None = None


class UploadBody:
    """Picks the request model by `action`, so each action refuses the others' fields."""

    actions: dict[str, type[BaseModel]] = {"upload": UploadRequest, "presign": PresignRequest,
                                           "ingest": IngestKeyRequest, "delete": DeleteRequest}

    @classmethod
    def model_validate(cls, data: dict[str, Any]) -> BaseModel:
        action = data.get("action", "upload")
        model = cls.actions.get(action) if isinstance(action, str) else None
        if model is None:
            raise errors.field_error("action", f"{action!r} is not an action; use {', '.join(cls.actions)}")
        return model.model_validate(data)


@app.post(UploadBody, multipart=True)
async def post(request: Request, body: BaseModel) -> Any:
    request.require_namespace(body.namespace)
    settings = request.settings
    if isinstance(body, PresignRequest):
        from lib.ingest.blobs import presign_upload
        from lib.ingest.documents import detect_media_type

        media_type = detect_media_type(body.filename, body.media_type)
        return await presign_upload(settings, body.namespace, body.filename, media_type, body.size)
    if isinstance(body, DeleteRequest):
        from lib.ingest.store import delete_document

        return await delete_document(body.namespace, settings=settings, document_id=body.document_id,
                                     source=body.source)
    if isinstance(body, IngestKeyRequest):
        from lib.ingest.blobs import fetch_blob, filename_from_key

        blob = await fetch_blob(settings, body.namespace, body.key)
        filename = body.filename or filename_from_key(body.key)
        return await _ingest(request, body, blob.data, filename, body.media_type or blob.content_type,
                             blob_key=blob.key, etag=blob.etag)
    assert isinstance(body, UploadRequest)
    data, filename, media_type = _file_of(request, body)
    return await _ingest(request, body, data, filename, media_type)


def _file_of(request: Request, body: UploadRequest) -> tuple[bytes, str, str | None]:
    """The uploaded bytes: a multipart `file` part, `content` text or `content_base64`."""
    if request.files:
        part = request.files.get("file") or next(iter(request.files.values()))
        return part.data, body.filename or part.filename, body.media_type or part.content_type
    if not body.filename:
        raise errors.field_error("filename", "is required (it names the document and tells its type)")
    if (body.content is None) == (body.content_base64 is None):
        raise errors.field_error("content", "send exactly one of content (text) or content_base64")
    if body.content is not None:
        return body.content.encode(), body.filename, body.media_type
    try:
        data = base64.b64decode(body.content_base64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise errors.field_error("content_base64", "is not valid base64") from None
    return data, body.filename, body.media_type


async def _ingest(request: Request, body: _IngestOptions, data: bytes, filename: str, media_type: str | None,
                  blob_key: str | None = None, etag: str | None = None) -> Any:
    from lib.ingest.store import IngestOptions, ingest_document, ingest_events

    settings = request.settings

    options = IngestOptions(
        namespace=body.namespace, source=body.source, title=body.title, metadata=body.metadata,
        media_type=media_type, embedding_model=body.embedding_model, dimensions=body.dimensions,
        chunk_size_tokens=body.chunk_size_tokens, chunk_overlap_tokens=body.chunk_overlap_tokens,
        blob_key=blob_key, source_etag=etag)

    def run(on_progress: Any = None) -> Any:
        return ingest_document(data, filename, options, settings=settings, request_id=request.request_id,
                               caller=request.caller, on_progress=on_progress)

    if body.stream:
        return sse_response(await ingest_events(run))
    return (await run()).as_dict()


@app.get()
async def list_uploads(request: Request, query: dict[str, str] | None) -> dict:
    from lib.ingest.store import list_documents

    query = query or {}
    namespace = query.get("namespace") or "default"
    request.require_namespace(namespace)
    limit = _int_param(query, "limit", 100, 1, 1000)
    offset = _int_param(query, "offset", 0, 0, 10**9)
    documents = await list_documents(namespace, settings=request.settings, limit=limit, offset=offset)
    return {"namespace": namespace, "documents": documents, "limit": limit, "offset": offset}


@app.delete()
async def delete(request: Request, body: dict[str, Any] | None) -> dict:
    from lib.ingest.store import delete_document

    params = {**request.query, **(body or {})}
    namespace = str(params.get("namespace") or "default")
    request.require_namespace(namespace)
    document_id = params.get("document_id") or params.get("id")
    return await delete_document(namespace, settings=request.settings,
                                 document_id=str(document_id) if document_id else None,
                                 source=params.get("source"))


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise errors.field_error(name, f"must be a whole number from {low} to {high}")
    return int(raw)


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
