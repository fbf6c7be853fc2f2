// Where the browser's calls go: "/bundle" (the key-holding proxy in app/bundle/api/[fn], the
// default) or "" (straight to /api/*, once the bundle verifies sessions itself; see README).
import { createBundleClient } from "@ai-backend/client";

export const API_BASE = process.env.NEXT_PUBLIC_API_BASE ?? "/bundle";

/** The typed client (openapi-fetch) for the pages: `api.GET("/api/upload", ...)`. */
export const api = createBundleClient({ baseUrl: API_BASE });

/** A function's URL for useChat's transport: `apiUrl("/api/rag")`. */
export function apiUrl(path: `/api/${string}`): string {
  return API_BASE + path;
}
