import { redirect } from "next/navigation";
import { readSession } from "@/lib/session";

/** The signed-in user's name; anyone else is sent to sign in, and back here afterwards. */
export async function requireUser(path: string): Promise<string> {
  const session = await readSession();
  if (!session) redirect(`/sign-in?next=${encodeURIComponent(path)}`);
  return session.user;
}
