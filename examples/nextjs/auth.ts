// Auth.js (next-auth v5) for the example: a demo Credentials sign-in, and a JWT session in Auth.js's
// own cookie (authjs.session-token). The bundle decrypts that cookie itself with the same
// AUTH_SECRET, so the pages call /api/* directly: the browser's cookie is the user's credential,
// the token's `sub` is the user, and its `role` claim (AUTH_ROLE_CLAIM=role on the bundle) their role.
import { timingSafeEqual } from "node:crypto";
import NextAuth, { CredentialsSignin } from "next-auth";
import Credentials from "next-auth/providers/credentials";

const USER_NAME = /^[\w .@-]{1,64}$/;
// Every demo user may upload (the bundle's `writer`); a real app takes the role from its user store.
const DEMO_ROLE = "writer";

/** A refused sign-in; its `code` tells the sign-in form what to say. */
export class SignInRefused extends CredentialsSignin {
  constructor(code: "name" | "password") {
    super();
    this.code = code;
  }
}

/** A variable production must set; development (`next dev`) runs with a default. Read per request,
 * so `next build` does not need the secrets. */
function required(name: string, developmentDefault: string): string {
  const value = process.env[name];
  if (value) return value;
  if (process.env.NODE_ENV === "production") throw new Error(`${name} is not set (see .env.example)`);
  return developmentDefault;
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export const { handlers, auth, signIn, signOut } = NextAuth(() => ({
  // the bundle decrypts the session cookie with this same secret (its AUTH_SECRET)
  secret: required("AUTH_SECRET", "development-only-auth-secret-not-for-production"),
  // Auth.js's routes (app/auth/[...nextauth]) live outside /api, which is the bundle's
  basePath: "/auth",
  pages: { signIn: "/sign-in" },
  // the session is a JWE in the cookie (no database): the only kind the bundle can read
  session: { strategy: "jwt" },
  providers: [
    Credentials({
      credentials: { user: { label: "Name" }, password: { label: "Password", type: "password" } },
      // the demo: any well-formed name, and EXAMPLE_PASSWORD ("demo" in development)
      authorize(credentials) {
        const user = String(credentials.user ?? "").trim();
        if (!USER_NAME.test(user)) throw new SignInRefused("name");
        if (!sameText(String(credentials.password ?? ""), required("EXAMPLE_PASSWORD", "demo"))) {
          throw new SignInRefused("password");
        }
        return { id: user, name: user }; // the id becomes the token's `sub`: the bundle's user id
      },
    }),
  ],
  callbacks: {
    jwt({ token, user }) {
      if (user) token.role = DEMO_ROLE; // at sign-in; later requests keep the token's claims
      return token;
    },
  },
}));
