"use client";
// An error as the bundle described it: what went wrong, its code, and the request id that finds
// its log line. `bundleError` reads useChat's errors and openapi-fetch's alike.
import { bundleError } from "@ai-backend/client";

export function ErrorNotice({ error, response, onDismiss }: { error: unknown; response?: Response; onDismiss?: () => void }) {
  const { code, message, requestId } = bundleError(error, response);
  return (
    <div className="error" role="alert" data-testid="error" data-code={code}>
      <strong>{message}</strong>
      <small>
        {code}
        {requestId ? <> · request <code data-testid="request-id">{requestId}</code></> : null}
      </small>
      {onDismiss ? <button type="button" onClick={onDismiss}>Dismiss</button> : null}
    </div>
  );
}
