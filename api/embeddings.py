"""POST /api/embeddings: embed one text or a list, OpenAI's response shape plus cost and cache counts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lib import errors
from lib.web import Endpoint, Request
from lib.web.fields import Namespace

app = Endpoint("embeddings")

MAX_INPUTS = 2048  # OpenAI's per-request limit; larger jobs belong to the upload path


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True, json_schema_extra={"examples": [
        {"input": ["hello", "world"], "model": "local/hash-384"}]})

    input: str | list[str]
    model: str | None = Field(None, description="provider/model; default EMBEDDING_MODEL or local/hash-384")
    dimensions: int | None = Field(None, ge=1, le=4096)
    encoding_format: Literal["float", "base64"] = "float"
    namespace: Namespace | None = None
    user: str | None = Field(None, max_length=200)
    cache: bool = True


@app.post(EmbeddingsRequest, role="reader", response="lib.ingest.response:EmbeddingsResponse",
          errors=(502, 504))
async def embeddings(request: Request, body: EmbeddingsRequest) -> dict:
    """Embed one text or a list, in batches sized to the model, cache first."""
    from lib.ingest.embedders import check_allowed, resolve_embedding_model
    from lib.ingest.embedding import embed_texts

    if body.namespace:
        request.require_namespace(body.namespace)
    if body.model:
        check_allowed(resolve_embedding_model(body.model, body.dimensions), request.settings, "model")
    texts = [body.input] if isinstance(body.input, str) else body.input
    if len(texts) > MAX_INPUTS:
        raise errors.field_error("input", f"has {len(texts)} texts; send at most {MAX_INPUTS} per request")
    result = await embed_texts(texts, body.model, settings=request.settings, dimensions=body.dimensions,
                               request_id=request.request_id, caller=request.caller, user_id=request.user_id,
                               use_cache=body.cache)
    if body.encoding_format == "base64":
        from lib.ingest.embedders.openai_wire import encode_vector

        data = [{"object": "embedding", "index": i, "embedding": encode_vector(v)}
                for i, v in enumerate(result.vectors)]
    else:
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(result.vectors)]
    return {
        "object": "list",
        "data": data,
        "model": result.model,
        "dimensions": result.dimensions,
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
        "cost_usd": result.cost_usd,
        "cached": result.cached,
        "embedded": result.embedded,
    }


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app, aliases={"text": "input"})  # `--text "..."`, as the command line has it
