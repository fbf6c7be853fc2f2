// Mints an Auth.js session as the Next.js app would: @auth/core's own `encode` (the JWE its
// session cookie holds) and its own SessionStore, which splits a session over 4 KB into
// `<name>.0`, `<name>.1`, ... cookies. Reads {secret, cookieName, token, maxAge} as JSON on stdin;
// prints {jwt, cookies: [{name, value}]}.
import { encode } from "@auth/core/jwt";
// not among the package's exports; imported by path so the chunking is Auth.js's own
import { SessionStore } from "./node_modules/@auth/core/lib/utils/cookie.js";

const parts = [];
for await (const part of process.stdin) parts.push(part);
const { secret, cookieName, token, maxAge } = JSON.parse(Buffer.concat(parts).toString());

const jwt = await encode({ token, secret, salt: cookieName, maxAge });
const quiet = { debug() {}, error() {}, warn() {} };
const store = new SessionStore({ name: cookieName, options: { secure: cookieName.startsWith("__Secure-") } }, {}, quiet);
const cookies = store.chunk(jwt, {}).map(({ name, value }) => ({ name, value }));
process.stdout.write(JSON.stringify({ jwt, cookies }));
