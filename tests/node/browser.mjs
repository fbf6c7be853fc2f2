// Debian's chromium, headless, driven by puppeteer-core (no browser download): launched with a
// fresh profile in a temporary folder, and a record of everything that went wrong on a page.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

export const CHROMIUM_FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** Runs `use(browser)` in a fresh chromium and always closes it and removes its profile. */
export async function withBrowser(use, { width = 1280, height = 1000 } = {}) {
  const profile = mkdtempSync(path.join(tmpdir(), "bundle-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: false, // --headless below, exactly as listed
    userDataDir: profile,
    args: [...CHROMIUM_FLAGS, `--window-size=${width},${height}`],
    defaultViewport: { width, height },
  });
  try {
    return await use(browser);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

/** Collects console errors, page errors, failed requests and HTTP errors of a page into `problems`.
 * `expected(url, status)` may excuse the error responses a test provokes on purpose, and with
 * them the "Failed to load resource" line chromium logs for each. */
export function watchProblems(page, problems, expected = () => false) {
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const status = /status of (\d{3})/.exec(message.text())?.[1];
    if (status && expected(message.location()?.url ?? "", Number(status))) return;
    problems.push("console: " + message.text());
  });
  page.on("pageerror", (error) => problems.push("page error: " + error.message));
  page.on("requestfailed", (request) => {
    const reason = request.failure()?.errorText ?? "";
    if (!reason.includes("ERR_ABORTED")) problems.push(`request failed: ${request.url()} ${reason}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400 && !expected(response.url(), response.status())) {
      problems.push(`HTTP ${response.status()}: ${response.url()}`);
    }
  });
}
