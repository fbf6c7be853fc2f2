import { SignInForm } from "./SignInForm";

export default async function SignInPage({ searchParams }: { searchParams: Promise<{ next?: string }> }) {
  const { next } = await searchParams;
  return (
    <>
      <h1>Sign in</h1>
      <p>
        A demo sign-in through Auth.js (its Credentials provider): any name, and the password in{" "}
        <code>EXAMPLE_PASSWORD</code> (<code>demo</code> in development). Your name is the subject of the
        Auth.js session, the user the bundle keeps budgets, rate limits and the usage ledger for.
      </p>
      <SignInForm next={next ?? "/"} />
    </>
  );
}
