// Parses a captured UI message stream (SSE on stdin) with the AI SDK's own client-side code:
// the chunk schema (as DefaultChatTransport reads responses) and readUIMessageStream (as useChat
// builds the message). Prints {chunks, message, errors} as JSON; exits 1 on any schema problem.
//
// The schema is checked strictly as well: several AI SDK client versions reject chunks carrying
// keys the schema does not list, so a key outside this table fails too.
import { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema } from "ai";

const ALLOWED_KEYS = {
  "start": ["messageId", "messageMetadata"],
  "start-step": [],
  "text-start": ["id", "providerMetadata"],
  "text-delta": ["id", "delta", "providerMetadata"],
  "text-end": ["id", "providerMetadata"],
  "tool-input-start": ["toolCallId", "toolName", "providerExecuted", "dynamic"],
  "tool-input-delta": ["toolCallId", "inputTextDelta"],
  "tool-input-available": ["toolCallId", "toolName", "input", "providerExecuted", "providerMetadata", "dynamic"],
  "tool-output-available": ["toolCallId", "output", "providerExecuted", "dynamic", "preliminary"],
  "tool-output-error": ["toolCallId", "errorText", "providerExecuted", "dynamic"],
  "source-url": ["sourceId", "url", "title", "providerMetadata"],
  "source-document": ["sourceId", "mediaType", "title", "filename", "providerMetadata"],
  "finish-step": [],
  "finish": ["messageMetadata"],
  "error": ["errorText"],
};

async function readStdin() {
  const parts = [];
  for await (const part of process.stdin) parts.push(part);
  return Buffer.concat(parts);
}

function fail(message) {
  console.error(message);
  process.exit(1);
}

const raw = await readStdin();
const bytes = new ReadableStream({
  start(controller) {
    controller.enqueue(new Uint8Array(raw));
    controller.close();
  },
});

const chunks = [];
const parsed = parseJsonEventStream({ stream: bytes, schema: uiMessageChunkSchema });
for await (const result of parsed) {
  if (!result.success) fail(`chunk rejected by the AI SDK schema: ${String(result.error?.message ?? result.error).slice(0, 600)}`);
  const chunk = result.value;
  const allowed = ALLOWED_KEYS[chunk.type];
  if (!allowed) fail(`chunk type not expected from this server: ${chunk.type}`);
  const extra = Object.keys(chunk).filter((k) => k !== "type" && !allowed.includes(k));
  if (extra.length) fail(`chunk ${chunk.type} carries keys outside the schema: ${extra.join(", ")}`);
  chunks.push(chunk);
}
if (!raw.toString().trimEnd().endsWith("data: [DONE]")) fail("stream does not end with data: [DONE]");

const errors = [];
const chunkStream = new ReadableStream({
  start(controller) {
    for (const chunk of chunks) controller.enqueue(chunk);
    controller.close();
  },
});
let message = null;
for await (const snapshot of readUIMessageStream({
  stream: chunkStream,
  onError: (error) => errors.push(String(error?.message ?? error)),
})) {
  message = snapshot;
}
console.log(JSON.stringify({ chunks: chunks.length, message, errors }));
