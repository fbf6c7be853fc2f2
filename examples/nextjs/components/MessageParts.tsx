"use client";
// One useChat message, part by part: text, tool calls (with their results), and sources.
import type { UIMessage } from "ai";

export function MessageParts({ message }: { message: UIMessage<unknown> }) {
  return (
    <div className={`message ${message.role}`} data-testid={`message-${message.role}`}>
      <span className="role">{message.role === "user" ? "You" : "Assistant"}</span>
      {message.parts.map((part, i) => {
        if (part.type === "text") {
          return <p key={i} className="text">{part.text}</p>;
        }
        if (part.type === "source-document") {
          return <span key={i} className="source" data-testid="source">{part.title}</span>;
        }
        if (part.type === "source-url") {
          return <a key={i} className="source" data-testid="source" href={part.url}>{part.title ?? part.url}</a>;
        }
        if (part.type === "dynamic-tool" || part.type.startsWith("tool-")) {
          const tool = part as { type: string; toolName?: string; state: string; input?: unknown; output?: unknown; errorText?: string };
          const name = tool.toolName ?? tool.type.slice("tool-".length);
          return (
            <div key={i} className="tool" data-testid="tool" data-state={tool.state}>
              <b>{name}</b>({JSON.stringify(tool.input ?? {})})
              {tool.state === "output-available" ? <> → <code>{JSON.stringify(tool.output)}</code></> : null}
              {tool.state === "output-error" ? <> → <em>{tool.errorText}</em></> : null}
            </div>
          );
        }
        return null; // step-start, reasoning, data parts: nothing to show
      })}
    </div>
  );
}
