"""S3 (or any S3-compatible store: R2, MinIO) for files too large for a request body.

The client asks for a presigned PUT (`presign_upload`), uploads the bytes straight to the bucket,
then asks us to ingest the key (`fetch_blob`). Keys are issued under `uploads/<namespace>/`, and
an ingest checks that prefix, so a key from one namespace cannot be read into another.

boto3 is imported on first use and its blocking calls run in a worker thread. Credentials come
from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN);
`S3_BUCKET`, `S3_ENDPOINT_URL` and `S3_REGION` choose the bucket and the store.
"""

from __future__ import annotations

import asyncio
import posixpath
import re
import uuid
from dataclasses import dataclass
from typing import Any

from lib import errors
from lib.config import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Blob:
    key: str
    data: bytes
    content_type: str | None
    etag: str | None


# Namespaces may hold `: @ /`, which do not belong in one key segment. Each is written as `~` and
# its hex code; `~` is not a namespace character, so two namespaces never share a prefix
# (`team:x` -> `team~3Ax`, `team_x` stays `team_x`), and plain namespaces keep their old prefix.
_NAMESPACE_ESCAPES = str.maketrans({c: f"~{ord(c):02X}" for c in ":@/"})


def key_prefix(namespace: str) -> str:
    return f"uploads/{namespace.translate(_NAMESPACE_ESCAPES)}/"


def filename_from_key(key: str) -> str:
    return posixpath.basename(key)


def _client(settings: Settings) -> Any:
    if not settings.s3_bucket:
        raise errors.ConfigurationError(
            "large uploads need S3: set S3_BUCKET (and S3_ENDPOINT_URL for R2 or MinIO) and AWS credentials",
            code="s3_not_configured")
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {"signature_version": "s3v4"}
    if settings.s3_endpoint_url:  # S3-compatible stores want path-style URLs
        options["s3"] = {"addressing_style": "path"}
    return boto3.client("s3", endpoint_url=settings.s3_endpoint_url or None, region_name=settings.s3_region,
                        config=Config(**options))


async def presign_upload(settings: Settings, namespace: str, filename: str, media_type: str,
                         size: int | None) -> dict[str, Any]:
    """A presigned PUT for one new object, and the headers the client must send with it."""
    if size is not None and size > settings.max_document_bytes:
        raise errors.PayloadTooLarge(
            f"{filename}: {size} bytes is over the limit of {settings.max_document_bytes} bytes "
            "(MAX_DOCUMENT_BYTES)", details={"limit_bytes": settings.max_document_bytes})
    name = _UNSAFE.sub("_", posixpath.basename(filename)).strip("._") or "upload"
    key = f"{key_prefix(namespace)}{uuid.uuid4().hex}/{name}"
    client = _client(settings)
    url = await asyncio.to_thread(
        client.generate_presigned_url, "put_object",
        Params={"Bucket": settings.s3_bucket, "Key": key, "ContentType": media_type},
        ExpiresIn=settings.presign_expires_s, HttpMethod="PUT")
    return {"url": url, "key": key, "method": "PUT", "headers": {"content-type": media_type},
            "expires_in": settings.presign_expires_s}


async def fetch_blob(settings: Settings, namespace: str, key: str) -> Blob:
    """The uploaded object's bytes; 403 for a key outside the namespace, 404 when it is missing,
    413 when it is over MAX_DOCUMENT_BYTES (checked before downloading)."""
    if not key.startswith(key_prefix(namespace)) or ".." in key.split("/"):
        raise errors.Forbidden(f"key {key!r} was not issued for namespace {namespace!r}", code="key_not_allowed")
    client = _client(settings)

    def download() -> Blob:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = client.head_object(Bucket=settings.s3_bucket, Key=key)
            if head["ContentLength"] > settings.max_document_bytes:
                raise errors.PayloadTooLarge(
                    f"{key}: {head['ContentLength']} bytes is over the limit of "
                    f"{settings.max_document_bytes} bytes (MAX_DOCUMENT_BYTES)")
            answer = client.get_object(Bucket=settings.s3_bucket, Key=key)
            data = answer["Body"].read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise errors.NotFound(
                    f"nothing was uploaded to key {key!r}: PUT the file to the presigned URL first",
                    code="blob_not_found") from None
            raise errors.ServiceUnavailable(f"the object store failed to return {key!r} ({code})") from exc
        except BotoCoreError as exc:
            raise errors.ServiceUnavailable("the object store cannot be reached") from exc
        return Blob(key, data, answer.get("ContentType"), (answer.get("ETag") or "").strip('"') or None)

    return await asyncio.to_thread(download)


async def blob_etag(settings: Settings, key: str) -> str | None:
    """The object's ETag from a HEAD request (no download), or None when it no longer exists."""
    client = _client(settings)

    def head() -> str | None:
        from botocore.exceptions import ClientError

        try:
            answer = client.head_object(Bucket=settings.s3_bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return (answer.get("ETag") or "").strip('"') or ""

    return await asyncio.to_thread(head)


async def delete_blob(settings: Settings, key: str) -> None:
    client = _client(settings)
    await asyncio.to_thread(client.delete_object, Bucket=settings.s3_bucket, Key=key)
