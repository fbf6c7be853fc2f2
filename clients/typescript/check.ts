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

  // every action's answer is typed: a new prompt version (201), a label move or the rendered messages
  const created = await api.POST("/api/prompts", { body: { action: "create", name: "greeting", template: "Hello {{name}}" } });
  if (created.data && "variables" in created.data) created.data.variables satisfies string[];
  const report = await api.GET("/api/experiments", { params: { query: { name: "tone" } } });
  // @ts-expect-error: the answer's fields are known, so a misspelt one is a compile error
  if (report.data && "decision" in report.data) report.data.decision.sumary;
  if (report.data && "decision" in report.data) report.data.decision.summary satisfies string;
  const rated = await api.POST("/api/feedback", { body: { request_id: "req-12345678", score: 1 } });
  if (rated.data) rated.data.value satisfies number;
  const figures = await api.GET("/api/metrics", { params: { query: { window: "1h" } } });
  // JSON, or (format=prometheus) the Prometheus text
  if (figures.data && typeof figures.data !== "string") figures.data.totals.latency_ms.p95 satisfies number | null;

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
