// Where the browser's calls go: the bundle's /api/* on this same origin (the rewrite in
// next.config.mjs locally, the bundle's own functions on Vercel). Same origin, so the browser
// sends the Auth.js session cookie with every call and the bundle verifies it: no key in the app.
import { createBundleClient } from "@ai-backend/client";

const API_BASE = "";

/** The typed client (openapi-fetch) for the pages: `api.GET("/api/upload", ...)`. */
export const api = createBundleClient({ baseUrl: API_BASE });

/** A function's URL for useChat's transport: `apiUrl("/api/rag")`. */
export function apiUrl(path: `/api/${string}`): string {
  return API_BASE + path;
}
