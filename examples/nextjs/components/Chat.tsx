"use client";
// Chat with any model through /api/ai_execute, streamed by useChat. The model is a field of the
// request body, so it can change between turns; with the demo tool on, the model may call
// `get_time`, which runs here in the browser, and the answer continues with its result.
import type { ChatMetadata } from "@ai-backend/client";
import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport, lastAssistantMessageIsCompleteWithToolCalls, type UIMessage } from "ai";
import { useRef, useState } from "react";
import { ErrorNotice } from "@/components/ErrorNotice";
import { MessageParts } from "@/components/MessageParts";
import { apiUrl } from "@/lib/api";

type ChatMessage = UIMessage<ChatMetadata>;

const TOOLS = [{
  type: "function",
  function: { name: "get_time", description: "The current date and time where the user is (ISO 8601).",
              parameters: { type: "object", properties: {} } },
}];

export function Chat() {
  const [model, setModel] = useState("local/echo");
  const [withTools, setWithTools] = useState(false);
  const [input, setInput] = useState("");
  const options = useRef({ model, withTools });
  options.current = { model, withTools };

  const [transport] = useState(() => new DefaultChatTransport<ChatMessage>({
    api: apiUrl("/api/ai_execute"),
    body: () => ({ model: options.current.model, ...(options.current.withTools ? { tools: TOOLS } : {}) }),
  }));
  const { messages, sendMessage, status, stop, error, clearError, addToolResult } = useChat<ChatMessage>({
    transport,
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls,
    onToolCall({ toolCall }) {
      if (toolCall.toolName === "get_time") {
        // not awaited: useChat sends the result on its own once every call has one
        void addToolResult({ tool: "get_time", toolCallId: toolCall.toolCallId, output: { now: new Date().toISOString() } });
      }
    },
  });
  const busy = status === "submitted" || status === "streaming";
  const last = messages.at(-1);

  return (
    <section className="chat" data-testid="chat" data-status={status}>
      <div className="settings">
        <label>
          Model <input name="model" value={model} onChange={(e) => setModel(e.target.value)} list="models" />
        </label>
        <datalist id="models">
          <option value="local/echo" />
          <option value="openai/gpt-4o-mini" />
          <option value="anthropic/claude-haiku-4-5" />
        </datalist>
        <label>
          <input type="checkbox" name="tools" checked={withTools} onChange={(e) => setWithTools(e.target.checked)} /> demo
          tool (get_time)
        </label>
      </div>
      <div className="messages">
        {messages.map((m) => <MessageParts key={m.id} message={m} />)}
      </div>
      {last?.role === "assistant" && last.metadata ? (
        <p className="meta" data-testid="meta">
          {last.metadata.model} · {last.metadata.usage.total_tokens} tokens
          {last.metadata.costUsd != null ? ` · $${last.metadata.costUsd.toFixed(6)}` : ""}
        </p>
      ) : null}
      {error ? <ErrorNotice error={error} onDismiss={clearError} /> : null}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!input.trim() || busy) return;
          void sendMessage({ text: input });
          setInput("");
        }}
      >
        <input name="prompt" value={input} onChange={(e) => setInput(e.target.value)} placeholder="Say something" autoFocus />
        {busy ? (
          <button type="button" onClick={() => void stop()} data-testid="stop">Stop</button>
        ) : (
          <button type="submit">Send</button>
        )}
      </form>
    </section>
  );
}
