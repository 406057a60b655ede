// Drives the shard web UI in headless Chromium, as a person would, for shard-cli/tests/browser.rs.
// Usage: node run.mjs SETUP_URL FILE_TO_UPLOAD SCREENSHOT_DIR DOWNLOAD_PATH BACKUP_FOLDER
//        RESTORE_PATH BACKUP_DOWNLOAD_PATH
// (SETUP_URL: the one-time link `shard ui-link` prints while the node has no account;
// BACKUP_FOLDER, under [web] node_paths, holds letter.txt and sub/deep.txt; RESTORE_PATH, also
// there, is where a file of snapshot 1 is restored on the node)
// Talks to the Rust test on stdout/stdin: "STOP_PEER" asks it to stop a peer, "CHANGE_BACKUP"
// to change the backed-up folder, "FAIL_BACKUP" to make a job fail; it answers "OK".
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { basename } from "node:path";
import { createServer } from "node:http";

const [url, upload, shots, downloadTo, backupFolder, restoreTo, backupDownloadTo] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once("line", resolve));
const step = (name) => console.log(`STEP ${name}`);
const fail = (message) => { throw new Error(message); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-proxy-server"],
});
try {
  const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1100, height: 800 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Expected refusals (401 before login, the wrong passphrase, the CSRF probe) log "Failed to
  // load resource"; anything else in the console is a bug.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
  });
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  // The files page shows the last listing until the new one is in (aria-busy meanwhile):
  // what is read after this is the listing asked for now, not the one before.
  const filesPage = async () => {
    await page.click('nav a[data-page="files-page"]');
    await page.waitForSelector('#files[aria-busy="false"]');
  };

  const setupToken = new URL(url).hash.replace("#setup=", "");
  await page.goto(url);
  await page.waitForSelector("#signup-page:not([hidden])");

  step("sign up through the setup link");
  await page.fill("#signup-form [name=user]", "alice");
  await page.fill("#signup-form [name=password]", "violet kettle across the dunes");
  await page.fill("#signup-form [name=again]", "violet kettle across the dunes");
  // A double click signs up once (a second request would fail: "already exists").
  await page.dblclick("#signup-form button");
  await page.waitForSelector("#code-page:not([hidden])");
  await page.waitForTimeout(300);
  if (await page.isVisible("#error")) fail(`double click on sign-up: ${await page.textContent("#error")}`);
  const code = (await page.textContent("#code")).trim();
  if (!/^([A-Z2-7]{8}-){7}[A-Z2-7]{8}$/.test(code)) fail(`no recovery code shown: ${code}`);
  await shot("recovery-code");
  if (!(await page.isDisabled("#code-done"))) fail("continue before 'I have written it down'");
  await page.check("#written");
  await page.click("#code-done");
  await page.waitForSelector("#login-page:not([hidden])");
  if ((await page.textContent("#code")).trim() !== "") fail("the recovery code stayed on the page");
  if (page.url().includes("setup=")) fail(`the spent setup token stayed in the address: ${page.url()}`);

  step("the setup link works once");
  const again = await page.evaluate(async (token) => {
    const r = await fetch("/ui/signup", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: "mallory", password: "a long enough passphrase", setup: token }) });
    return r.status;
  }, setupToken);
  if (again !== 403) fail(`a second sign-up with the setup token got ${again}`);
  const open = await page.evaluate(async () => {
    const r = await fetch("/ui/signup", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: "mallory", password: "a long enough passphrase" }) });
    return r.status;
  });
  if (open !== 403) fail(`a sign-up without the link or a session got ${open}`);

  const started = Date.now();
  await page.goto(url.replace(/#.*$/, ""));
  await page.waitForSelector("#login-page:not([hidden])");
  console.log(`LOAD_MS ${Date.now() - started}`);
  await shot("login");

  step("wrong passphrase");
  await page.fill("#login-form [name=user]", "alice");
  await page.fill("#login-form [name=password]", "not the passphrase");
  await page.click("#login-form button");
  await page.waitForSelector("#error:not([hidden])");
  const wrong = await page.textContent("#error");
  if (!wrong.includes("wrong passphrase")) fail(`wrong passphrase not explained: ${wrong}`);
  await shot("wrong-passphrase");

  step("log in");
  await page.fill("#login-form [name=password]", "violet kettle across the dunes");
  await page.click("#login-form button");
  await page.waitForSelector("#files-page:not([hidden])", { timeout: 15000 }).catch(async (e) => {
    fail(`no files page after login: ${await page.textContent("#error")}; ${errors.join("; ")}; ${e}`);
  });
  await page.waitForSelector("#files-empty:not([hidden])");

  step("upload");
  const name = basename(upload);
  await page.setInputFiles("#pick", upload);
  await page.waitForSelector(`#files tbody tr:has-text("${name}")`, { timeout: 30000 });
  const protectedText = await page.textContent("#protection");
  if (!protectedText.includes("Protected: 1 file; every file survives the loss of any 1 machine."))
    fail(`the files page does not say how protected the files are: ${protectedText}`);
  // The header at a laptop's width: the tagline on one line, not squeezed beside the links —
  // also where a narrower font (as on many laptops) lets the links fit beside it.
  const taglineLines = () => page.$eval(".tagline", (t) => {
    const range = document.createRange();
    range.selectNodeContents(t);
    return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
  });
  if ((await taglineLines()) > 1) fail(`the tagline takes ${await taglineLines()} lines at 1100 px`);
  // (Set through the CSSOM: the page's CSP rightly refuses a style tag.)
  await page.$eval("nav", (n) => { n.style.fontSize = "11px"; n.style.gap = "0.3rem"; });
  const squeezed = await taglineLines();
  await page.$eval("nav", (n) => { n.style.fontSize = ""; n.style.gap = ""; });
  if (squeezed > 1) fail(`with a narrower font in the links the tagline takes ${squeezed} lines`);
  await shot("files");

  step("backups: add a job through the page and run it");
  const job = basename(backupFolder);
  const jobRow = `#jobs tbody tr[data-job="${job}"]`;
  await page.click('nav a[data-page="backups-page"]');
  await page.waitForSelector("#jobs-empty:not([hidden])");
  await page.fill("#backup-form [name=path]", backupFolder);
  await page.fill("#backup-form [name=every]", "1d");
  await page.fill("#backup-form [name=keep]", "last=10");
  await page.fill("#backup-form [name=exclude]", "*.tmp");
  await page.click("#backup-form button[type=submit]");
  await page.waitForSelector(jobRow).catch(async () => fail(`no job row after adding: ${await page.textContent("#error")}`));
  // Runs the job with its button and waits for what the run made (a run the node's schedule
  // started first may be under way: the button waits for it).
  const runNow = async () => {
    await page.click(`${jobRow} button:has-text("Run now")`, { timeout: 30000 });
    await page.waitForFunction(() => !document.querySelector("#error").hidden ||
      /snapshot \d+ made/.test(document.querySelector("#backup-result").textContent), null, { timeout: 30000 });
    if (await page.isVisible("#error")) fail(`the run failed: ${await page.textContent("#error")}`);
    return page.textContent("#backup-result");
  };
  const firstRun = await runNow();
  if (!firstRun.includes("2 files")) fail(`the first run does not say what it stored (2 files, *.tmp left out): ${firstRun}`);
  const lastRun = await page.textContent(`${jobRow} td:nth-child(4)`);
  if (!lastRun.includes("ok")) fail(`the job's row does not show the last run's outcome: ${lastRun}`);
  await page.click(`${jobRow} button:has-text("Snapshots")`);
  await page.waitForSelector('#snapshots tbody tr[data-snapshot="1"]');
  await shot("backups");

  step("backups: a file changed, run again, the diff");
  console.log("CHANGE_BACKUP");
  if ((await nextLine()).trim() !== "OK") fail("the test did not change the folder");
  const secondRun = await runNow();
  if (!secondRun.includes("1 added") || !secondRun.includes("1 changed")) fail(`the second run does not say what changed: ${secondRun}`);
  await page.waitForFunction(() => document.querySelectorAll("#snapshots tbody tr").length >= 2);
  const newest = await page.$eval("#snapshots tbody tr", (r) => r.dataset.snapshot);
  if ((await page.inputValue("#diff-to")) !== newest) fail(`the diff does not offer the newest snapshot (${newest}) first`);
  await page.selectOption("#diff-from", "1");
  await page.click("#diff-form button[type=submit]");
  await page.waitForSelector("#diff:not([hidden])");
  const added = await page.$$eval("#diff-added li", (lis) => lis.map((li) => li.textContent));
  const changed = await page.$$eval("#diff-changed li", (lis) => lis.map((li) => li.textContent));
  const removed = await page.$$eval("#diff-removed li", (lis) => lis.map((li) => li.textContent));
  if (added.join() !== "new.txt" || changed.join() !== "letter.txt" || removed.length)
    fail(`the diff from snapshot 1 is wrong: added ${added}, changed ${changed}, removed ${removed}`);
  await shot("backup-diff");

  step("backups: browse snapshot 1, download and restore a file of it");
  await page.click('#snapshots tbody tr[data-snapshot="1"] button:has-text("Browse")');
  await page.waitForSelector('#tree tbody tr[data-path="letter.txt"]');
  const top = await page.$$eval("#tree tbody tr", (rows) => rows.map((r) => r.dataset.path));
  if (top.join() !== "letter.txt,sub") fail(`snapshot 1 holds ${top}, not letter.txt and sub`);
  await page.click('#tree tbody tr[data-path="sub"] button:has-text("Open")');
  await page.waitForSelector('#tree tbody tr[data-path="sub/deep.txt"]');
  await page.click('#crumbs button:has-text("' + job + '")');
  await page.waitForSelector('#tree tbody tr[data-path="letter.txt"]');
  await shot("backup-tree");
  const [letter] = await Promise.all([
    page.waitForEvent("download"),
    page.click('#tree tbody tr[data-path="letter.txt"] button:has-text("Download")'),
  ]);
  await letter.saveAs(backupDownloadTo);
  await page.click('#tree tbody tr[data-path="letter.txt"] button:has-text("Restore")');
  await page.fill("#restore-form [name=out]", restoreTo);
  await page.click("#restore-form button[type=submit]");
  await page.waitForFunction(() => !document.querySelector("#error").hidden ||
    !document.querySelector("#restore-result").hidden, null, { timeout: 30000 });
  if (await page.isVisible("#error")) fail(`the restore failed: ${await page.textContent("#error")}`);
  const restoredText = await page.textContent("#restore-result");
  if (!restoredText.includes("Restored 1 file")) fail(`the restore does not say what it did: ${restoredText}`);
  // Again to the same place: refused, the file there is not overwritten.
  await page.click('#tree tbody tr[data-path="letter.txt"] button:has-text("Restore")');
  await page.fill("#restore-form [name=out]", restoreTo);
  await page.click("#restore-form button[type=submit]");
  await page.waitForSelector("#error:not([hidden])");
  await page.click("#restore-no");

  step("backups: remove the job and forget its snapshots");
  await page.click(`${jobRow} button:has-text("Remove")`);
  await page.check("#remove-forget");
  let asked = "";
  page.once("dialog", (d) => { asked = d.message(); d.accept(); });
  await page.click("#remove-yes");
  await page.waitForSelector("#jobs-empty:not([hidden])");
  if (!asked.includes("forget")) fail(`removing with its snapshots did not ask first: ${asked}`);
  if (!(await page.isHidden("#snapshots-box"))) fail("the removed job's snapshots stay on the page");
  await filesPage();
  await page.waitForSelector(`#files tbody tr:has-text("${name}")`);
  const listed = await page.$$eval("#files tbody tr", (rows) => rows.length);
  if (listed !== 1) fail(`the forgotten snapshots' files are still listed (${listed} rows)`);

  step("picture");
  await page.click(`#files tbody tr:has-text("${name}") button:has-text("Picture")`);
  await page.waitForSelector("#picture svg circle");
  const states = () => page.$$eval("#picture svg circle", (cs) => cs.map((c) => c.getAttribute("class")));
  const before = await states();
  const nodes = await page.$$eval("#picture svg text", (ts) => ts.map((t) => t.textContent).filter((t) => !t.startsWith("chunk")));
  if (nodes.length !== 3) fail(`expected 3 machines in the picture, got ${nodes}`);
  if (!before.length || before.some((s) => s !== "present")) fail(`not all present: ${before}`);
  await shot("how-it-works");

  console.log("STOP_PEER");
  if ((await nextLine()).trim() !== "OK") fail("the test did not stop the peer");
  let after = before;
  for (let i = 0; i < 40 && !after.includes("offline"); i++) {
    await page.waitForTimeout(250);
    await page.selectOption("#how-file", name);
    await page.dispatchEvent("#how-file", "change");
    await page.waitForTimeout(100);
    after = await states();
  }
  if (!after.includes("offline")) fail(`a stopped peer is not shown offline: ${after}`);
  await shot("how-it-works-offline");

  step("download");
  await filesPage();
  await page.waitForSelector(`#files tbody tr:has-text("${name}")`);
  // A holder is off: the listing says so, as check would, and the summary with it.
  const badge = await page.textContent(`#files tbody tr:has-text("${name}") .badge`);
  if (badge !== "unknown") fail(`with a holder off the file shows ${badge}, not unknown`);
  const offlineText = await page.textContent("#protection");
  if (!offlineText.includes("1 with shares on machines offline now"))
    fail(`the summary does not say a holder is off: ${offlineText}`);
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click(`#files tbody tr:has-text("${name}") button:has-text("Download")`),
  ]);
  await download.saveAs(downloadTo);
  console.log(`DOWNLOADED ${downloadTo}`);

  step("a failing backup shows a red banner");
  console.log("FAIL_BACKUP");
  if ((await nextLine()).trim() !== "OK") fail("the test did not make a failing backup");
  await page.reload();
  await page.waitForSelector("#backup-alert:not([hidden])", { timeout: 15000 }).catch(async () => {
    fail(`no banner for a failing backup: ${await page.textContent("#protection")}`);
  });
  const banner = await page.textContent("#backup-alert");
  if (!banner.includes("Backup gone needs attention: its last run failed"))
    fail(`the banner does not say which backup failed and why: ${banner}`);
  await shot("backup-failing");

  step("a download that fails says why, and the page stays");
  await page.evaluate(() => downloadFile({ name: "no-such-file.txt" }));
  await page.waitForSelector("#error:not([hidden])");
  const missing = await page.textContent("#error");
  if (!missing.includes("no-such-file.txt")) fail(`a failed download is not explained: ${missing}`);
  if (!(await page.isVisible(`#files tbody tr:has-text("${name}")`))) fail("a failed download left the files page");

  step("csrf");
  const status = await page.evaluate(async (n) => {
    const r = await fetch("/v1/rm", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: n }) });
    return r.status;
  }, name);
  if (status !== 401) fail(`a request without the session key got ${status}`);

  step("a reload keeps the session");
  await page.reload();
  await page.waitForSelector(`#files tbody tr:has-text("${name}")`, { timeout: 15000 });

  step("the cookie alone, as another local web server receives it, opens nothing");
  // Browsers send a host's cookies to all its ports: a server on another port of 127.0.0.1
  // that the owner visits gets the session cookie. Here is one.
  let seen = null;
  const spy = createServer((req, res) => { seen = req.headers.cookie || ""; res.end("hello"); });
  await new Promise((resolve) => spy.listen(0, "127.0.0.1", resolve));
  try {
    const home = page.url();
    const ui = new URL(home);
    await page.goto(`http://${ui.hostname}:${spy.address().port}/`);
    if (!seen || !seen.includes("shard_session_")) fail(`the other port did not get the cookie: ${seen}`);
    const base = `${ui.protocol}//${ui.host}`;
    for (const [method, path, body] of [
      ["GET", "/ui/session"], ["GET", "/v1/ls"], ["GET", `/v1/download?name=${encodeURIComponent(name)}`],
      ["POST", "/v1/download", `name=${encodeURIComponent(name)}`],
    ]) {
      const headers = { Cookie: seen, Origin: base };
      if (body) headers["Content-Type"] = "application/x-www-form-urlencoded";
      const r = await fetch(`${base}${path}`, { method, headers, body });
      const text = await r.text();
      if (r.status !== 401 || text.includes(name) || text.includes("csrf\"")) fail(`the cookie alone: ${method} ${path} got ${r.status}: ${text.slice(0, 200)}`);
    }
    await page.goto(home);
  } finally {
    spy.close();
  }
  await page.waitForSelector(`#files tbody tr:has-text("${name}")`, { timeout: 15000 });

  step("peers and health");
  await page.click('nav a[data-page="peers-page"]');
  await page.waitForSelector("#peers tbody tr");
  if (await page.isHidden("#admin-only")) fail("the administrator does not see the pairing controls");
  await shot("peers");
  await page.click('nav a[data-page="health-page"]');
  await page.click("#check");
  await page.waitForFunction(() => document.querySelector("#health-summary").textContent.includes("files:"));
  await shot("health");

  step("delete");
  await filesPage();
  // A double click asks once and deletes once (no "no such file" from a second request).
  let dialogs = 0;
  page.on("dialog", (d) => { dialogs += 1; d.accept(); });
  await page.dblclick(`#files tbody tr:has-text("${name}") button:has-text("Delete")`);
  await page.waitForSelector("#files-empty:not([hidden])");
  await page.waitForTimeout(300);
  if (dialogs !== 1) fail(`a double click on Delete asked ${dialogs} times`);
  if (await page.isVisible("#error")) fail(`double click on Delete: ${await page.textContent("#error")}`);

  step("the trash: restore, then delete for good");
  // Delete moved it to the trash, which shows and brings it back.
  const inTrash = `#trash tbody tr:has-text("${name}")`;
  await page.waitForSelector(inTrash);
  await page.click(`${inTrash} button:has-text("Restore")`);
  await page.waitForSelector(`#files tbody tr:has-text("${name}")`);
  await page.waitForSelector("#trash-box", { state: "hidden" });
  await page.click(`#files tbody tr:has-text("${name}") button:has-text("Delete")`);
  await page.waitForSelector(inTrash);
  await shot("trash");
  await page.click(`${inTrash} button:has-text("Delete for good")`);
  await page.waitForSelector("#trash-box", { state: "hidden" });
  await page.waitForSelector("#files-empty:not([hidden])");
  if (dialogs !== 3) fail(`the trash asked ${dialogs - 1} times for two deletions`);
  if (await page.isVisible("#error")) fail(`the trash: ${await page.textContent("#error")}`);

  step("logout");
  await page.click("#logout");
  await page.waitForSelector("#login-page:not([hidden])");
  if (errors.length) fail(`errors in the page: ${errors.join("; ")}`);
  console.log("DONE");
} finally {
  await browser.close();
  lines.close();
}
