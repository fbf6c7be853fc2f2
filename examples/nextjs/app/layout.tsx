import type { Metadata } from "next";
import Link from "next/link";
import type { ReactNode } from "react";
import { signOutOfApp } from "@/app/sign-in/actions";
import { auth } from "@/auth";
import "./globals.css";

export const metadata: Metadata = { title: "AI back end: Next.js example", icons: { icon: "data:," } };

export default async function RootLayout({ children }: { children: ReactNode }) {
  const user = (await auth())?.user?.name;
  return (
    <html lang="en">
      <body>
        <nav>
          <Link href="/">Chat</Link>
          <Link href="/ask">Ask</Link>
          <Link href="/upload">Upload</Link>
          {/* served by the bundle's own functions (through the /api rewrite locally) */}
          <a href="/api/docs">API docs</a>
          <a href="/api/dashboard">Dashboard</a>
          <span className="who">
            {user ? (
              <form action={signOutOfApp}>
                <span data-testid="user">{user}</span> <button type="submit">Sign out</button>
              </form>
            ) : (
              <Link href="/sign-in">Sign in</Link>
            )}
          </span>
        </nav>
        <main>{children}</main>
      </body>
    </html>
  );
}
