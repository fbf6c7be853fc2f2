"use server";
import { AuthError, CredentialsSignin } from "next-auth";
import { signIn, signOut } from "@/auth";

const PROBLEMS: Record<string, string> = {
  name: "Use 1 to 64 letters, digits, spaces or . @ - _ for your name.",
  password: "Wrong password.",
};

/** Auth.js's Credentials sign-in: on success it sets the session cookie and redirects to `next`
 * (a page of this site; Auth.js refuses others), else the form shows why. */
export async function signInWithPassword(_state: string | null, form: FormData): Promise<string | null> {
  try {
    await signIn("credentials", {
      user: String(form.get("user") ?? ""),
      password: String(form.get("password") ?? ""),
      redirectTo: String(form.get("next") || "/"),
    });
  } catch (error) {
    if (error instanceof CredentialsSignin) return PROBLEMS[error.code] ?? "Sign-in failed.";
    if (error instanceof AuthError) return `Sign-in failed (${error.type}).`;
    throw error; // the redirect after signing in travels as a thrown error too
  }
  return null;
}

export async function signOutOfApp(): Promise<void> {
  await signOut({ redirectTo: "/sign-in" });
}
