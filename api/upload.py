"""/api/upload: put documents in (JSON, multipart, or a presigned S3 upload), list and delete them.

POST (JSON or multipart/form-data), chosen by `action`:
  upload (default)  `filename` + `content` or `content_base64` (or a multipart `file` part)
  presign           `filename`, `media_type`, `size` -> a presigned S3 PUT: {url, key, headers, expires_in}
  ingest            `key` of an object PUT to that URL -> indexed like an upload
  delete            `document_id` or `source`
GET ?namespace=... lists documents; DELETE ?document_id=...&namespace=... deletes one.
`"stream": true` answers with server-sent events: progress per stage and embedding batch, then the result.
The request models are in lib/ingest/request.py.
"""

from __future__ import annotations

from typing import Any

from lib.ingest.request import DocumentQuery, ListQuery, UploadBody
from lib.web import Endpoint, Request, sse_response

app = Endpoint("upload")


@app.post(UploadBody, multipart=True, role="writer",
          response="lib.ingest.response:IngestResult | lib.ingest.response:PresignedUpload"
                   " | lib.ingest.response:DeletedDocument",
          streams={"events": "lib.ingest.response:UploadEvent"}, errors=(404, 502, 504))
async def post(request: Request, body: UploadBody) -> Any:
    """Upload a document (JSON or multipart), presign a large one, ingest a presigned key, or delete.
    With `stream: true` an upload answers with its progress as server-sent events."""
    request.require_namespace(body.namespace)
    if body.action == "delete":
        return await delete(request, body)
    if body.action == "presign":
        from lib.ingest.blobs import presign_upload
        from lib.ingest.documents import detect_media_type

        media_type = detect_media_type(body.filename, body.media_type)  # 415 before a URL is signed
        return await presign_upload(request.settings, body.namespace, body.filename, media_type, body.size)
    if body.action == "ingest":
        from lib.ingest.blobs import fetch_blob

        data, filename, options = body.document(await fetch_blob(request.settings, body.namespace, body.key))
    else:
        data, filename, options = body.document(request.files)
    from lib.ingest.store import ingest_document, ingest_events

    def run(on_progress: Any = None) -> Any:
        return ingest_document(data, filename, options, settings=request.settings,
                               request_id=request.request_id, caller=request.caller, on_progress=on_progress)

    if body.stream:
        return sse_response(await ingest_events(run))
    return (await run()).as_dict()


@app.get(ListQuery, role="writer", response="lib.ingest.response:DocumentList", errors=(504,))
async def list_uploads(request: Request, query: ListQuery) -> dict:
    """A page of the namespace's documents, most recently updated first."""
    from lib.ingest.store import list_documents

    request.require_namespace(query.namespace)
    documents = await list_documents(query.namespace, settings=request.settings, limit=query.limit,
                                     offset=query.offset)
    return {"namespace": query.namespace, "documents": documents, "limit": query.limit, "offset": query.offset}


@app.delete(DocumentQuery, role="writer", response="lib.ingest.response:DeletedDocument", errors=(404, 504))
async def delete(request: Request, query: DocumentQuery) -> dict:
    """Delete one document and its chunks, by id or by source."""
    from lib.ingest.store import delete_document

    request.require_namespace(query.namespace)
    return await delete_document(query.namespace, settings=request.settings, document_id=query.document_id,
                                 source=query.source)


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
