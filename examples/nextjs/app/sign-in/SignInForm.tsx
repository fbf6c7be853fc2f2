"use client";
import { useActionState } from "react";
import { signInWithPassword } from "./actions";

export function SignInForm({ next }: { next: string }) {
  const [problem, action, pending] = useActionState(signInWithPassword, null);
  return (
    <form action={action} className="sign-in">
      <input type="hidden" name="next" value={next} />
      <label>Name <input name="user" autoComplete="username" required /></label>
      <label>Password <input name="password" type="password" autoComplete="current-password" required /></label>
      <button type="submit" disabled={pending}>Sign in</button>
      {problem ? <p className="error" role="alert" data-testid="sign-in-problem">{problem}</p> : null}
    </form>
  );
}
