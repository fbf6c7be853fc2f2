// Validates stored chat messages (JSON on stdin) as the AI SDK does on the server: validateUIMessages
// (the UIMessage[] schema useChat's messages must satisfy) and convertToModelMessages (what a
// Next.js route handler does with a loaded chat). Prints {messages, modelMessages} as JSON; exits 1
// with the reason when the AI SDK refuses them.
import { convertToModelMessages, validateUIMessages } from "ai";

const parts = [];
for await (const part of process.stdin) parts.push(part);
const input = JSON.parse(Buffer.concat(parts).toString());

try {
  const messages = await validateUIMessages({ messages: input });
  const modelMessages = await convertToModelMessages(messages);
  console.log(JSON.stringify({ messages, modelMessages }));
} catch (error) {
  console.error(`rejected by the AI SDK: ${String(error?.message ?? error).slice(0, 2000)}`);
  process.exit(1);
}
