import { redirect } from "next/navigation";
import { auth } from "@/auth";

/** The signed-in user's name (Auth.js's session); anyone else is sent to sign in, and back here afterwards. */
export async function requireUser(path: string): Promise<string> {
  const name = (await auth())?.user?.name;
  if (!name) redirect(`/sign-in?next=${encodeURIComponent(path)}`);
  return name;
}
