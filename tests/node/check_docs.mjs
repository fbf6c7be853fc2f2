// Opens /api/docs in headless chromium and reports what a reader sees once Redoc has rendered the
// document: the title, the operations listed, the error codes shown, and every problem.
//
//   node check_docs.mjs <base url> <screenshot.png>
// Prints one JSON object.
import { watchProblems, withBrowser } from "./browser.mjs";

const [base, screenshot] = process.argv.slice(2);
const problems = [];
const seen = await withBrowser(async (browser) => {
  const page = await browser.newPage();
  watchProblems(page, problems);
  await page.goto(base + "/api/docs", { waitUntil: "load" });
  await page.waitForSelector("[data-section-id^='operation/']", { timeout: 60000 });
  await page.waitForNetworkIdle({ idleTime: 300, timeout: 30000 });
  const result = await page.evaluate(() => ({
    title: document.querySelector(".api-info h1")?.textContent ?? "",
    operations: [...document.querySelectorAll("[data-section-id^='operation/']")]
      .map((section) => section.getAttribute("data-section-id")),
    text: document.body.innerText,
  }));
  await page.screenshot({ path: screenshot });
  return result;
});
console.log(JSON.stringify({
  title: seen.title,
  operations: seen.operations,
  mentions: ["validation_error", "text/event-stream", "x-vercel-ai-ui-message-stream"].filter((word) => seen.text.includes(word)),
  problems,
}));
