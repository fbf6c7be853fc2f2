// Opens the metrics dashboard in Debian's chromium (headless, fresh profile), enters the API key,
// waits for the data, and reports what a person would see: the chart canvases and their sizes,
// the table rows, every console error, failed request and page error, plus a screenshot.
//
//   node check_dashboard.mjs <base url> <api key> <screenshot.png>
// Prints one JSON object; CHROMIUM overrides the browser path.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

const [base, key, screenshot] = process.argv.slice(2);
const profile = mkdtempSync(path.join(tmpdir(), "dashboard-profile-"));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: false, // the flag below says headless itself, exactly as listed
  userDataDir: profile,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1600",
  ],
});
const problems = [];
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1600 });
  page.on("console", (message) => {
    if (message.type() === "error") problems.push("console: " + message.text());
  });
  page.on("pageerror", (error) => problems.push("page error: " + error.message));
  page.on("requestfailed", (request) => problems.push("request failed: " + request.url()));
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });

  await page.goto(base + "/api/dashboard", { waitUntil: "load" });
  await page.type("#key", key);
  await page.click("#load");
  await page.waitForFunction(() => document.body.dataset.loaded === "true", { timeout: 30000 });
  const seen = await page.evaluate(() => ({
    stored: sessionStorage.getItem("metrics.apiKey") !== null,
    status: document.getElementById("status").textContent,
    charts: [...document.querySelectorAll(".chart")].map((chart) => ({
      id: chart.id,
      canvases: [...chart.querySelectorAll("canvas")].map((c) => ({ width: c.width, height: c.height })),
      legend: [...chart.querySelectorAll(".u-legend .u-label")].map((l) => l.textContent),
    })),
    tiles: [...document.querySelectorAll(".tile")].map((t) => t.textContent),
    rows: Object.fromEntries(["users", "slowest", "failed"].map((id) => [
      id, [...document.querySelectorAll(`#${id} tbody tr`)].map((tr) => [...tr.cells].map((td) => td.textContent)),
    ])),
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ...seen, problems }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
