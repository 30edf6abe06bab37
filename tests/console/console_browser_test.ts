// The web console driven in headless Chromium (Debian's /usr/bin/chromium,
// through playwright-core): token prompt, two users logged in from two pages,
// a chat and a group message with their server and client acks, the online
// count on the dashboard, and a screenshot into test-output/.
// SARA_DOCS_SCREENSHOT=1 also writes docs/console.png for docs/operations.md.

import assert from "node:assert/strict";
import { chromium, type Page } from "playwright-core";
import { CallbackServer } from "../helpers/callback_server.ts";
import { startTestServer } from "../helpers/server.ts";
import { Scrape } from "../metrics/_prom.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const TOKEN = "console-t0k";
// The dashboard polls every 2 s: a change shows within a few polls.
const WAIT = { timeout: 30_000 };
const ROOT = new URL("../../", import.meta.url);

/** Opens the console from rpcport's root (which redirects) and gives it the token. */
async function openConsole(page: Page, rpcPort: number): Promise<void> {
  await page.goto(`http://127.0.0.1:${rpcPort}/`);
  assert.equal(new URL(page.url()).pathname, "/console/");
  await page.locator("#token-form").waitFor(WAIT);
  await page.fill("#token-input", TOKEN);
  await page.click("#token-save");
  await page.locator("#token-form").waitFor({ state: "hidden", ...WAIT });
}

async function logIn(page: Page, jid: string): Promise<void> {
  await page.fill("#tc-jid", jid);
  await page.click("#tc-login");
  await page.locator("#tc-state", { hasText: `online as ${jid}` }).waitFor(WAIT);
}

async function send(page: Page, kind: "1" | "2", to: string, text: string): Promise<void> {
  await page.selectOption("#tc-kind", kind);
  await page.fill("#tc-to", to);
  await page.fill("#tc-text", text);
  await page.click("#tc-send");
}

/** The online count the dashboard shows for `node`. */
function onlineCell(page: Page, node: string, count: number) {
  return page.locator(`#nodes tr[data-node="${node}"] td.count`, { hasText: `${count}` });
}

Deno.test({
  name: "the console logs two users in from two pages, shows their chat with its acks " +
    "and the online count",
  // Playwright's pipes to Chromium outlive the test's own bookkeeping.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using backend = CallbackServer.start();
    await using srv = await startTestServer({
      enable_ws: true,
      accesstoken: TOKEN,
      callback: backend.url,
      enable_auth: true,
    });
    await srv.server.core.store.setGroupMembers("group_team@test", ["alice", "bob"], 3600);
    const profile = await Deno.makeTempDir({ prefix: "sara-chromium-" });
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1280, height: 900 },
    });
    try {
      const alice = browser.pages()[0] ?? await browser.newPage();
      const bob = await browser.newPage();
      await openConsole(alice, srv.rpcPort);
      await openConsole(bob, srv.rpcPort);
      await onlineCell(alice, "n01", 0).waitFor(WAIT);

      await logIn(alice, "alice@test");
      await logIn(bob, "bob@test");
      await onlineCell(alice, "n01", 2).waitFor(WAIT);

      await send(alice, "1", "bob@test", "hello bob");
      const sent = alice.locator("#tc-log tr.out", { hasText: "hello bob" });
      await sent.locator("td.ack", { hasText: "server ack ✓" }).waitFor(WAIT);
      const got = bob.locator("#tc-log tr.in", { hasText: "hello bob" });
      await got.locator("td.ack", { hasText: "client ack sent ✓" }).waitFor(WAIT);
      assert.equal(await got.getAttribute("data-id"), await sent.getAttribute("data-id"));
      assert.match(await got.innerText(), /alice@test/);

      await send(bob, "2", "team", "hello team");
      const groupSent = bob.locator("#tc-log tr.out", { hasText: "hello team" });
      await groupSent.locator("td.ack", { hasText: "server ack ✓" }).waitFor(WAIT);
      const groupGot = alice.locator("#tc-log tr.in", { hasText: "hello team" });
      await groupGot.locator("td.ack", { hasText: "client ack sent ✓" }).waitFor(WAIT);
      assert.match(await groupGot.innerText(), /bob@test \(group team\)/);

      // The dashboard shows the auth callbacks the two logins made.
      await alice.locator("#callbacks tr", { hasText: "emsg_auth.auth" }).waitFor(WAIT);
      // The browser's acks reached the server: both copies are out of bob's
      // and alice's inboxes, counted as client acks.
      const m = await Scrape.of(srv.rpcPort);
      assert.equal(m.get("sara_client_acks_total"), 2);
      assert.equal(m.get("sara_server_acks_total"), 2);
      assert.equal(m.get("sara_connections", { transport: "ws" }), 2);

      // A user lookup and a group reload through the RPC API.
      await alice.fill("#lookup-jid", "bob@test");
      await alice.click("#lookup-form button");
      await alice.locator("#lookup-result", { hasText: "bob@test is online on node n01" })
        .waitFor(WAIT);
      await alice.fill("#reload-gid", "team");
      await alice.fill("#reload-domain", "test");
      await alice.click("#reload-form button");
      await alice.locator("#reload-result", { hasText: "cached members dropped" }).waitFor(WAIT);
      assert.equal(await srv.server.core.store.groupMembers("group_team@test"), null);

      const docs = Deno.env.get("SARA_DOCS_SCREENSHOT") === "1";
      // For the picture in docs/operations.md: some traffic for the chart to draw (bounded).
      for (let i = 0; docs && i < 12; i++) {
        await send(alice, "1", "bob@test", `message ${i}`);
        await send(bob, "1", "alice@test", `reply ${i}`);
        await alice.waitForTimeout(600);
      }
      await alice.locator("#rate-in", { hasText: /\d/ }).waitFor(WAIT);
      // Polls answered before the token was typed do not ask for it again.
      assert.equal(await alice.locator("#token-form").isHidden(), true);
      await Deno.mkdir(new URL("test-output/", ROOT), { recursive: true });
      const shot = { fullPage: true, path: new URL("test-output/console.png", ROOT).pathname };
      await alice.screenshot(shot);
      if (docs) {
        await alice.screenshot({ ...shot, path: new URL("docs/console.png", ROOT).pathname });
      }

      // Bob logs out: the dashboard follows.
      await bob.click("#tc-logout");
      await onlineCell(alice, "n01", 1).waitFor(WAIT);
    } finally {
      await browser.close();
      await Deno.remove(profile, { recursive: true });
    }
  },
});
