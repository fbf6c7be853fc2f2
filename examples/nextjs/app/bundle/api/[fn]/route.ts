// The key-holding proxy: a signed-in user's request to /bundle/api/<name> goes to the bundle's
// /api/<name> with the server's API key, and, for chat and answers, the user's name as `user`
// (budgets, rate limits and the usage ledger are then per user; the body's own `user` is
// replaced, never trusted). Streams pass through as they come, and a browser that stops reading
// (useChat's stop()) cancels the upstream request, so the model stops too.
import { readSession } from "@/lib/session";

export const dynamic = "force-dynamic";

const FUNCTION_NAME = /^[a-z][a-z0-9_]{0,63}$/;
const NAMES_THE_USER = new Set(["ai_execute", "rag"]);
const REQUEST_HEADERS = ["content-type", "accept", "x-request-id"];
const RESPONSE_HEADERS = ["content-type", "cache-control", "x-request-id", "x-vercel-ai-ui-message-stream",
                          "x-conversation-id", "retry-after"];

function bundleUrl(): string {
  if (process.env.BUNDLE_URL) return process.env.BUNDLE_URL;
  if (process.env.VERCEL_URL) return `https://${process.env.VERCEL_URL}`; // the same deployment
  return "http://127.0.0.1:8000";
}

/** The bundle's own error envelope, so `bundleError` reads the proxy's refusals too. */
function refuse(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message, request_id: null } }, { status });
}

async function forward(request: Request, context: { params: Promise<{ fn: string }> }): Promise<Response> {
  const session = await readSession();
  if (!session) return refuse(401, "unauthorized", "sign in first");
  const { fn } = await context.params;
  if (!FUNCTION_NAME.test(fn)) return refuse(404, "not_found", `no function named ${JSON.stringify(fn)}`);

  const headers = new Headers();
  for (const name of REQUEST_HEADERS) {
    const value = request.headers.get(name);
    if (value) headers.set(name, value);
  }
  if (process.env.BUNDLE_API_KEY) headers.set("authorization", `Bearer ${process.env.BUNDLE_API_KEY}`);

  let body: BodyInit | null = null;
  if (request.method !== "GET" && request.method !== "HEAD") {
    const json = (headers.get("content-type") ?? "").startsWith("application/json");
    if (json && NAMES_THE_USER.has(fn)) {
      const text = await request.text();
      body = withUser(text, session.user);
    } else {
      body = request.body;
    }
  }

  let upstream: Response;
  try {
    upstream = await fetch(`${bundleUrl()}/api/${fn}${new URL(request.url).search}`, {
      method: request.method, headers, body, signal: request.signal, cache: "no-store", redirect: "manual",
      // a streamed request body (an upload) needs half duplex in Node's fetch
      ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
    } as RequestInit);
  } catch (error) {
    if (request.signal.aborted) return new Response(null, { status: 499 });
    return refuse(503, "service_unavailable", `the bundle at ${bundleUrl()} cannot be reached (${String(error)})`);
  }
  const out = new Headers();
  for (const name of RESPONSE_HEADERS) {
    const value = upstream.headers.get(name);
    if (value) out.set(name, value);
  }
  return new Response(upstream.body, { status: upstream.status, headers: out });
}

function withUser(text: string, user: string): string {
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return JSON.stringify({ ...parsed, user });
  } catch {
    // not JSON: the bundle answers it with its own 400
  }
  return text;
}

export { forward as DELETE, forward as GET, forward as POST };
