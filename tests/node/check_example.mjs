// Drives examples/nextjs in headless chromium as a person would: sign in (Auth.js), chat with the offline
// echo, see an error explained by bundleError, let the model call a browser-side tool, stop a
// slow answer midway, upload a document and watch its progress, ask about it and follow up, and
// open the API docs through the app's rewrite, sign out. Before sign-in and after sign-out it calls
// /api/rag from the page itself, as a script there would. Prints one JSON object of what it saw;
// every console error, page error and unexpected HTTP error is in `problems`.
//
//   node check_example.mjs <app url> <password> <artifacts folder>
import { writeFileSync } from "node:fs";
import path from "node:path";
import { watchProblems, withBrowser } from "./browser.mjs";

const [base, password, artifacts] = process.argv.slice(2);
const seen = {};
const problems = [];
// the errors this script provokes on purpose: a bad model (422), a file we cannot read (415),
// the bundle's answer to a page with no session (401)
const provoked = (url, status) => (url.includes("/api/rag") && status === 401)
  || (url.includes("/api/") && [415, 422].includes(status));
const WAIT = { timeout: 90000 };

async function fill(page, selector, value) {
  await page.$eval(selector, (el) => el.select());
  if (value) await page.type(selector, value);
  else await page.keyboard.press("Backspace");
}

async function chatStatus(page) {
  return page.$eval("[data-testid=chat]", (el) => el.dataset.status);
}

async function lastAssistantText(page) {
  return page.$$eval("[data-testid=message-assistant]", (els) => els.at(-1)?.querySelector(".text")?.textContent ?? "");
}

async function send(page, text) {
  await page.type("input[name=prompt]", text);
  await page.keyboard.press("Enter");
}

/** A call to the bundle from the page's own script: it carries whatever cookie the browser holds. */
async function askFromThePage(page) {
  return page.evaluate(async () => {
    const r = await fetch("/api/rag", { method: "POST", headers: { "content-type": "application/json" },
                                        body: JSON.stringify({ query: "How long is the warranty?" }) });
    return { status: r.status, body: await r.json() };
  });
}

async function waitReady(page, testid = "chat") {
  await page.waitForFunction((id) => document.querySelector(`[data-testid=${id}]`)?.dataset.status === "ready",
                             WAIT, testid);
}

await withBrowser(async (browser) => {
  const page = await browser.newPage();
  watchProblems(page, problems, provoked);
  try {
    await usePages(page);
  } catch (error) {
    // what the page showed when a step gave up, for the test's failure message
    await page.screenshot({ path: path.join(artifacts, "example-failure.png"), fullPage: true }).catch(() => {});
    const text = await page.evaluate(() => document.body.innerText).catch(() => "");
    console.error(`at ${page.url()}:\n${text.slice(0, 2000)}\nproblems: ${JSON.stringify(problems)}`);
    throw error;
  }
});

console.log(JSON.stringify({ ...seen, problems }));

async function usePages(page) {

  // sign-in: the pages send strangers to it, and the bundle refuses their calls
  await page.goto(base + "/", { waitUntil: "networkidle0" });
  seen.redirected = new URL(page.url()).pathname;
  seen.beforeSignIn = await askFromThePage(page);
  // a wrong password is refused, then Auth.js signs in and sends us back to the chat
  await page.type("input[name=user]", "ada");
  await page.type("input[name=password]", "wrong");
  await page.click(".sign-in button[type=submit]");
  await page.waitForSelector("[data-testid=sign-in-problem]", WAIT);
  seen.wrongPassword = await page.$eval("[data-testid=sign-in-problem]", (el) => el.textContent);
  // a form action resets the form, as a browser's own submit does: type both again
  await fill(page, "input[name=user]", "ada");
  await fill(page, "input[name=password]", password);
  await page.click(".sign-in button[type=submit]");
  await page.waitForSelector("[data-testid=user]", WAIT); // the action redirects within the app
  await page.waitForSelector("input[name=prompt]", WAIT);
  seen.signedIn = { path: new URL(page.url()).pathname, user: await page.$eval("[data-testid=user]", (el) => el.textContent) };
  const session = (await page.cookies()).find((c) => c.name.includes("authjs.session-token"));
  seen.sessionCookie = { name: session?.name, httpOnly: session?.httpOnly,
                         readableByPage: await page.evaluate(() => document.cookie.includes("session-token")) };

  // chat with the offline echo
  await send(page, "Hello there");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=message-assistant] .text").length > 0, WAIT);
  await waitReady(page);
  seen.echo = { text: await lastAssistantText(page), meta: await page.$eval("[data-testid=meta]", (el) => el.textContent) };

  // an error, explained by bundleError: an unknown model is a 422 naming the field
  await fill(page, "input[name=model]", "nobody/model");
  await send(page, "hi");
  await page.waitForSelector("[data-testid=error]", WAIT);
  seen.chatError = await page.$eval("[data-testid=error]", (el) => ({
    code: el.dataset.code, text: el.textContent, requestId: el.querySelector("[data-testid=request-id]")?.textContent ?? "",
  }));
  await page.click("[data-testid=error] button");

  // a tool the model calls, run in the browser, and the answer that uses its result
  await fill(page, "input[name=model]", "compat/tool-demo");
  await page.click("input[name=tools]");
  await send(page, "What time is it?");
  await page.waitForSelector("[data-testid=tool][data-state=output-available]", WAIT);
  await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=message-assistant] .text")]
    .some((el) => el.textContent.includes("noon")), WAIT);
  await waitReady(page);
  seen.tool = { part: await page.$eval("[data-testid=tool]", (el) => el.textContent), answer: await lastAssistantText(page) };

  // a slow answer, stopped midway
  await page.click("input[name=tools]");
  await fill(page, "input[name=model]", "compat/slow-demo");
  await send(page, "Tell me a long story");
  await page.waitForFunction(() => {
    const texts = document.querySelectorAll("[data-testid=message-assistant] .text");
    return texts.length > 0 && texts[texts.length - 1].textContent.startsWith("Once upon a time");
  }, WAIT);
  const before = await chatStatus(page);
  await page.click("[data-testid=stop]");
  await waitReady(page);
  const stoppedAt = (await lastAssistantText(page)).length;
  await new Promise((resolve) => setTimeout(resolve, 2500));
  seen.stop = { statusBefore: before, stoppedAt, later: (await lastAssistantText(page)).length,
                text: await lastAssistantText(page), error: await page.$("[data-testid=error]") !== null };
  await page.screenshot({ path: path.join(artifacts, "example-chat.png"), fullPage: true });

  // upload a document, with its progress streamed, and see it listed
  await page.goto(base + "/upload", { waitUntil: "networkidle0" });
  await fill(page, "input[name=namespace]", "example");
  const note = path.join(artifacts, "kettle.md");
  writeFileSync(note, "# Warranty\n\nEvery kettle comes with a warranty of two years from the date of purchase.\n\n"
    + "# Returns\n\nYou can return an unused kettle within 30 days for a full refund.\n");
  const [input] = await Promise.all([page.$("input[type=file]")]);
  await input.uploadFile(note);
  await page.click("[data-testid=upload] form button[type=submit]");
  await page.waitForSelector("[data-testid=result]", WAIT);
  await page.waitForFunction(() => document.querySelector("[data-testid=documents]")?.textContent.includes("kettle.md"), WAIT);
  seen.upload = {
    stages: await page.$$eval("[data-testid=stage]", (els) => els.map((el) => el.textContent)),
    result: await page.$eval("[data-testid=result]", (el) => el.textContent),
    documents: await page.$eval("[data-testid=documents]", (el) => el.textContent),
  };
  // a file that is no document: refused before it starts, shown through bundleError
  const binary = path.join(artifacts, "blob.bin");
  writeFileSync(binary, Buffer.from([0, 159, 146, 150, 0, 1, 2, 3]));
  await (await page.$("input[type=file]")).uploadFile(binary);
  await page.click("[data-testid=upload] form button[type=submit]");
  await page.waitForSelector("[data-testid=error]", WAIT);
  seen.uploadError = await page.$eval("[data-testid=error]", (el) => ({
    code: el.dataset.code, requestId: el.querySelector("[data-testid=request-id]")?.textContent ?? "",
  }));
  await page.screenshot({ path: path.join(artifacts, "example-upload.png"), fullPage: true });

  // ask about it, then a follow-up in the same conversation
  await page.goto(base + "/ask", { waitUntil: "networkidle0" });
  await fill(page, "input[name=namespace]", "example");
  await page.type("input[name=question]", "How long is the kettle warranty?");
  await page.keyboard.press("Enter");
  await page.waitForSelector("[data-testid=citations]", WAIT);
  await waitReady(page, "ask");
  const answers = async () => page.$$eval("[data-testid=message-assistant]", (els) => els.map((el) => ({
    text: el.querySelector(".text")?.textContent ?? "",
    sources: [...el.querySelectorAll("[data-testid=source]")].map((s) => s.textContent),
    citations: el.parentElement.querySelector("[data-testid=citations]")?.textContent ?? "",
  })));
  seen.ask = (await answers())[0];
  await page.type("input[name=question]", "Can I return it for a refund?");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=message-assistant]").length === 2, WAIT);
  await waitReady(page, "ask");
  seen.followUp = (await answers())[1];
  await page.screenshot({ path: path.join(artifacts, "example-ask.png"), fullPage: true });

  // the API docs, served by the bundle through the app's /api rewrite
  await Promise.all([page.waitForNavigation({ waitUntil: "load", ...WAIT }), page.click("nav a[href='/api/docs']")]);
  await page.waitForSelector("[data-section-id^='operation/']", WAIT);
  seen.docs = await page.$$eval("[data-section-id^='operation/']", (els) => els.length);

  // signed out (Auth.js's signOut clears its cookie), the same call is refused again
  await page.goto(base + "/", { waitUntil: "networkidle0" });
  await page.click("nav form button");
  await page.waitForSelector("input[name=password]", WAIT);
  seen.signedOut = new URL(page.url()).pathname;
  seen.afterSignOut = await askFromThePage(page);
}
