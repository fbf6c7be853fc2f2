"use client";
// Questions about the uploaded documents through /api/rag, streamed by useChat: each answer
// cites its passages (source parts, and the quotes in its metadata), and a follow-up is read in
// the light of the turns before it (useChat's chat id is the conversation).
import type { AnswerMetadata } from "@ai-backend/client";
import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport, type UIMessage } from "ai";
import { useRef, useState } from "react";
import { ErrorNotice } from "@/components/ErrorNotice";
import { MessageParts } from "@/components/MessageParts";
import { apiUrl } from "@/lib/api";

type AnswerMessage = UIMessage<AnswerMetadata>;

export function Ask({ namespace: initialNamespace = "default" }: { namespace?: string }) {
  const [namespace, setNamespace] = useState(initialNamespace);
  const [input, setInput] = useState("");
  const current = useRef(namespace);
  current.current = namespace;
  const [transport] = useState(() => new DefaultChatTransport<AnswerMessage>({
    api: apiUrl("/api/rag"),
    body: () => ({ namespace: current.current }),
  }));
  const { messages, sendMessage, status, stop, error, clearError } = useChat<AnswerMessage>({ transport });
  const busy = status === "submitted" || status === "streaming";
  const asked = messages.some((m) => m.role === "assistant");

  return (
    <section className="ask" data-testid="ask" data-status={status}>
      <div className="settings">
        <label>
          Namespace <input name="namespace" value={namespace} onChange={(e) => setNamespace(e.target.value)} />
        </label>
      </div>
      <div className="messages">
        {messages.map((m) => (
          <div key={m.id}>
            <MessageParts message={m} />
            {m.metadata?.citations.length ? (
              <ol className="citations" data-testid="citations">
                {m.metadata.citations.map((c) => (
                  <li key={c.id} value={c.id}>
                    <q>{c.quote}</q> <cite>{c.title ?? c.source}{c.page != null ? `, page ${c.page}` : ""}</cite>
                  </li>
                ))}
              </ol>
            ) : null}
          </div>
        ))}
      </div>
      {error ? <ErrorNotice error={error} onDismiss={clearError} /> : null}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!input.trim() || busy) return;
          void sendMessage({ text: input });
          setInput("");
        }}
      >
        <input name="question" value={input} onChange={(e) => setInput(e.target.value)}
               placeholder={asked ? "Ask a follow-up" : "Ask about your documents"} autoFocus />
        {busy ? <button type="button" onClick={() => void stop()}>Stop</button> : <button type="submit">Ask</button>}
      </form>
    </section>
  );
}
