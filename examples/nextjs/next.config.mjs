// /api/* goes to the bundle's functions. During `next dev` that is the local server (`make dev`,
// port 8000); on Vercel BUNDLE_URL stays unset and the functions answer /api/* themselves.
// Rewrites are compiled into the build, so a production build previewed with `next start` keeps
// the BUNDLE_URL it was built with: BUNDLE_URL=http://127.0.0.1:8000 npm run build && npm start
const bundle = process.env.BUNDLE_URL ?? (process.env.NODE_ENV === "development" ? "http://127.0.0.1:8000" : "");

/** @type {import('next').NextConfig} */
const nextConfig = {
  // the typed client is TypeScript source, installed as a copy of clients/typescript
  transpilePackages: ["@ai-backend/client"],
  // The rewrite's proxy drops a response that is silent for this long (30 s unless set): a slow
  // model's first token, or a long answer asked for unstreamed, can take longer. As long as the
  // bundle's longest function may run on Vercel.
  experimental: { proxyTimeout: 300_000 },
  async rewrites() {
    return bundle ? [{ source: "/api/:path*", destination: `${bundle}/api/:path*` }] : [];
  },
};

export default nextConfig;
