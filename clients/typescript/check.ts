// Compile-time checks that the generated types say what the functions do (`tsc --noEmit`).
import { bundleError, createBundleClient, type AnswerMetadata, type ChatMetadata, type ErrorCode,
  type ExecuteRequest, type paths, type RagRequest } from "./index";

const api = createBundleClient({ baseUrl: "http://127.0.0.1:8000" });

export async function typedCalls() {
  const health = await api.GET("/api/health");
  if (health.data) health.data.status satisfies "ok" | "error";

  const answer = await api.POST("/api/ai_execute", { body: { prompt: "Hello", model: "local/echo" } });
  // JSON, or (with stream: true) the stream's text: the document lists all three content types
  if (answer.data && typeof answer.data !== "string") answer.data.usage.total_tokens satisfies number;
  if (answer.error) bundleError(answer.error, answer.response).code satisfies string;

  const list = await api.GET("/api/upload", { params: { query: { namespace: "docs", limit: 10 } } });
  list.data?.documents.map((d) => d.document_id satisfies string);

  // @ts-expect-error: a field of the wrong type is a compile error
  await api.POST("/api/rag", { body: { query: "x", top_k: "five" } });
  // @ts-expect-error: a function that does not exist is a compile error
  await api.GET("/api/nothing");
}

export function metadata(chat: ChatMetadata, answer: AnswerMetadata): [number, string | null] {
  return [chat.usage.total_tokens, answer.conversationId];
}

export const notFound: ErrorCode = "document_not_found";
export const execute: ExecuteRequest = { prompt: "Hello", model: "local/echo", stream: true };
export const ask: RagRequest = { query: "warranty", namespace: "docs", top_k: 3 };
export type Paths = keyof paths;
