/**
 * A typed client for the bundle's functions: the types are generated from openapi.json
 * (`npm run generate`), the calls go through openapi-fetch, and `bundleError` reads the one
 * error envelope every function answers with, wherever the error surfaced.
 *
 *   const api = createBundleClient({ baseUrl: "" });            // same origin: /api/...
 *   const { data, error, response } = await api.GET("/api/upload", { params: { query: { namespace: "docs" } } });
 *   if (error) console.error(bundleError(error, response));     // { code, message, requestId }
 */
import createClient, { type ClientOptions } from "openapi-fetch";
import type { components, paths } from "./schema";

export type { components, operations, paths } from "./schema";

export type Schemas = components["schemas"];
export type ErrorCode = Schemas["ErrorCode"];
export type ErrorEnvelope = Schemas["ErrorEnvelope"];
type JsonBody<P extends keyof paths> = paths[P] extends { post: { requestBody?: { content: { "application/json": infer B } } } }
  ? B : never;
/** The JSON body of `POST /api/ai_execute` (useChat's transport `body` is part of it). */
export type ExecuteRequest = JsonBody<"/api/ai_execute">;
/** The JSON body of `POST /api/rag`. */
export type RagRequest = JsonBody<"/api/rag">;
/** `message.metadata` of a useChat message streamed by /api/ai_execute: `useChat<UIMessage<ChatMetadata>>`. */
export type ChatMetadata = Schemas["ChatMessageMetadata"];
/** `message.metadata` of a useChat message streamed by /api/rag: citations, conversation, usage. */
export type AnswerMetadata = Schemas["AnswerMessageMetadata"];
export type Citation = Schemas["Citation"];
/** One server-sent event of a streamed upload (`stream: true`). */
export type UploadEvent = Schemas["UploadEvent"];
export type DocumentSummary = Schemas["DocumentSummary"];

/** A client for the functions at `${baseUrl}/api/<name>`; `baseUrl` "" is the page's own origin. */
export function createBundleClient(options: ClientOptions = {}) {
  return createClient<paths>({ baseUrl: "", ...options });
}

export type BundleClient = ReturnType<typeof createBundleClient>;

/** Codes the client gives errors that never reached a function's envelope. */
export type ClientErrorCode =
  | "network_error" // the request never got an answer (offline, aborted, refused)
  | "stream_error" // a stream broke off after it started: the message is the stream's own
  | "unexpected_response"; // an answer that is not the envelope (a proxy's HTML error page, ...)

export interface BundleError {
  code: ErrorCode | ClientErrorCode;
  message: string;
  requestId: string | null;
  /** The HTTP status, when it is known (an openapi-fetch error with its response). */
  status?: number;
  /** A 422's fields, a provider failure's attempts, ...: the envelope's `details`. */
  details?: unknown;
}

/**
 * `{code, message, requestId}` from whatever an error arrived as:
 * - useChat's `error` (its `message` is the raw response body: `{"error": {...}}`), or the
 *   `errorText` of a stream that broke off after it started;
 * - openapi-fetch's `error` (the parsed body), with its `response` for the status and the
 *   `x-request-id` header;
 * - the envelope itself, its JSON text, or a thrown `TypeError` from `fetch`.
 */
export function bundleError(error: unknown, response?: Response): BundleError {
  const status = response?.status;
  const headerId = response?.headers.get("x-request-id") ?? null;
  const envelope = asEnvelope(error);
  if (envelope) {
    const { code, message, request_id, details } = envelope.error;
    return withOptional({ code, message, requestId: request_id ?? headerId }, status, details);
  }
  if (error instanceof Error) {
    const parsed = asEnvelope(parseJson(error.message));
    if (parsed) return bundleError(parsed, response);
    if (error.name === "TypeError" || error.name === "AbortError") {
      return withOptional({ code: "network_error", message: error.message, requestId: headerId }, status);
    }
    return withOptional({ code: "stream_error", message: error.message, requestId: headerId }, status);
  }
  if (typeof error === "string") {
    const parsed = asEnvelope(parseJson(error));
    if (parsed) return bundleError(parsed, response);
    return withOptional({ code: "stream_error", message: error, requestId: headerId }, status);
  }
  return withOptional({ code: "unexpected_response", message: String(JSON.stringify(error) ?? error),
                        requestId: headerId }, status);
}

function withOptional(base: BundleError, status?: number, details?: unknown): BundleError {
  const out: BundleError = { ...base };
  if (status !== undefined) out.status = status;
  if (details !== undefined) out.details = details;
  return out;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function asEnvelope(value: unknown): ErrorEnvelope | null {
  if (typeof value !== "object" || value === null || !("error" in value)) return null;
  const inner = (value as { error: unknown }).error;
  if (typeof inner !== "object" || inner === null) return null;
  const { code, message } = inner as { code?: unknown; message?: unknown };
  return typeof code === "string" && typeof message === "string" ? (value as ErrorEnvelope) : null;
}

/**
 * The JSON events of a server-sent event stream (a streamed upload's progress), as they arrive:
 *
 *   const { response } = await api.POST("/api/upload", { body, parseAs: "stream" });
 *   for await (const event of readEvents<UploadEvent>(response.body!)) { ... }
 */
export async function* readEvents<T = UploadEvent>(body: ReadableStream<Uint8Array>): AsyncGenerator<T> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
      buffered += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = block.split("\n").filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, "")).join("\n");
        if (data && data !== "[DONE]") yield JSON.parse(data) as T;
      }
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined); // the reader stopped early: close the stream
    reader.releaseLock();
  }
}
