"use server";
import { redirect } from "next/navigation";
import { checkCredentials, endSession, startSession } from "@/lib/session";

export async function signIn(_state: string | null, form: FormData): Promise<string | null> {
  const user = String(form.get("user") ?? "").trim();
  const problem = checkCredentials(user, String(form.get("password") ?? ""));
  if (problem) return problem;
  await startSession(user);
  const next = String(form.get("next") ?? "/");
  redirect(next.startsWith("/") && !next.startsWith("//") ? next : "/");
}

export async function signOut(): Promise<void> {
  await endSession();
  redirect("/sign-in");
}
