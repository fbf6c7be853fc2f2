// bundleError and readEvents at run time, on the compiled client (`tsc -p test` writes
// .test-build/): every shape an error arrives in, and, when BUNDLE_URL is set, a live server.
//   npx tsc -p test && node --test test/
import assert from "node:assert/strict";
import { test } from "node:test";
import { bundleError, createBundleClient, readEvents } from "../.test-build/index.js";

const envelope = { error: { code: "validation_error", message: "invalid request: top_k: too small",
                            request_id: "req-123456", details: [{ field: "top_k", message: "too small" }] } };

test("useChat's error: the raw JSON body as the message", () => {
  assert.deepEqual(bundleError(new Error(JSON.stringify(envelope))), {
    code: "validation_error", message: "invalid request: top_k: too small", requestId: "req-123456",
    details: [{ field: "top_k", message: "too small" }],
  });
});

test("openapi-fetch's error: the parsed body, with the response for the status", () => {
  const response = new Response(null, { status: 422, headers: { "x-request-id": "from-header-1" } });
  const error = { error: { code: "validation_error", message: "m", request_id: null } };
  assert.deepEqual(bundleError(error, response), { code: "validation_error", message: "m",
                                                   requestId: "from-header-1", status: 422 });
});

test("a stream that broke off, a network failure, and anything else", () => {
  assert.equal(bundleError(new Error("the provider broke off")).code, "stream_error");
  assert.equal(bundleError(new TypeError("fetch failed")).code, "network_error");
  assert.equal(bundleError("<html>Bad gateway</html>").code, "stream_error");
  assert.equal(bundleError({ status: 502 }).code, "unexpected_response");
  assert.equal(bundleError(JSON.stringify(envelope)).requestId, "req-123456");
});

test("readEvents: JSON events split anywhere across chunks, [DONE] dropped", async () => {
  const text = 'data: {"type":"progress","stage":"extract"}\n\ndata: {"type":"result","chunks":1}\n\ndata: [DONE]\n\n';
  const bytes = new TextEncoder().encode(text);
  const stream = new ReadableStream({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 7) controller.enqueue(bytes.slice(i, i + 7));
      controller.close();
    },
  });
  const events = [];
  for await (const event of readEvents(stream)) events.push(event);
  assert.deepEqual(events.map((e) => e.type), ["progress", "result"]);
});

test("against the live server: a 422 and a streamed upload", { skip: !process.env.BUNDLE_URL }, async () => {
  const api = createBundleClient({ baseUrl: process.env.BUNDLE_URL });
  const bad = await api.POST("/api/rag", { body: { query: "x", top_k: 0 } });
  const error = bundleError(bad.error, bad.response);
  assert.equal(error.code, "validation_error");
  assert.equal(error.status, 422);
  assert.equal(error.requestId, bad.response.headers.get("x-request-id"));

  const upload = await api.POST("/api/upload", {
    body: { action: "upload", filename: "client.md", content: "# Client\n\nTyped.", namespace: "client-test", stream: true },
    parseAs: "stream",
  });
  const stages = [];
  for await (const event of readEvents(upload.response.body)) stages.push(event.type === "progress" ? event.stage : event.type);
  assert.equal(stages.at(-1), "result");
  assert.ok(stages.includes("embed"));
});
