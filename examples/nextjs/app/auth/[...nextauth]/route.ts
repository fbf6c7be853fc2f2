// Auth.js's own routes (/auth/session, /auth/csrf, an OAuth provider's callback, ...). The demo's
// sign-in runs as a server action and needs none of them; an OAuth provider added to auth.ts does.
import { handlers } from "@/auth";

export const { GET, POST } = handlers;
