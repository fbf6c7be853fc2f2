// The example's own sign-in: a signed cookie naming the user. Server-side only (route handlers,
// server actions, server components). With Auth.js, `auth()` takes this file's place (README).
import { createHmac, timingSafeEqual } from "node:crypto";
import { cookies } from "next/headers";

export const SESSION_COOKIE = "example_session";
const MAX_AGE_S = 8 * 60 * 60;
const USER_NAME = /^[\w .@-]{1,64}$/;

export interface Session {
  user: string;
  expires: number; // unix seconds
}

function required(name: string, developmentDefault: string): string {
  const value = process.env[name];
  if (value) return value;
  if (process.env.NODE_ENV === "production") throw new Error(`${name} is not set (see .env.example)`);
  return developmentDefault;
}

const sessionSecret = () => required("SESSION_SECRET", "development-only-session-secret");

function sign(payload: string): string {
  return createHmac("sha256", sessionSecret()).update(payload).digest("base64url");
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The signed-in user, or null (no cookie, a forged or expired one). */
export async function readSession(): Promise<Session | null> {
  const raw = (await cookies()).get(SESSION_COOKIE)?.value;
  if (!raw) return null;
  const [payload = "", signature = ""] = raw.split(".");
  if (!sameText(sign(payload), signature)) return null;
  try {
    const session = JSON.parse(Buffer.from(payload, "base64url").toString()) as Session;
    return typeof session.user === "string" && session.expires > Date.now() / 1000 ? session : null;
  } catch {
    return null;
  }
}

/** Checks the demo credentials: any well-formed name, and EXAMPLE_PASSWORD ("demo" in development). */
export function checkCredentials(user: string, password: string): string | null {
  if (!USER_NAME.test(user)) return "Use 1 to 64 letters, digits, spaces or . @ - _ for your name.";
  if (!sameText(password, required("EXAMPLE_PASSWORD", "demo"))) return "Wrong password.";
  return null;
}

export async function startSession(user: string): Promise<void> {
  const session: Session = { user, expires: Math.floor(Date.now() / 1000) + MAX_AGE_S };
  const payload = Buffer.from(JSON.stringify(session)).toString("base64url");
  (await cookies()).set(SESSION_COOKIE, `${payload}.${sign(payload)}`, {
    httpOnly: true, sameSite: "lax", secure: process.env.NODE_ENV === "production" && !!process.env.VERCEL,
    path: "/", maxAge: MAX_AGE_S,
  });
}

export async function endSession(): Promise<void> {
  (await cookies()).delete(SESSION_COOKIE);
}
