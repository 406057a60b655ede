// Upload-memory figure for BENCHMARKS.md: logs in, uploads FILE through the files page (the
// same input a person uses), waits until it is listed, and prints the time taken and the
// node's peak resident memory (VmHWM of PID, from /proc).
// Usage: node upload_rss.mjs URL USER PASSWORD FILE PID
import { chromium } from "playwright-core";
import { readFileSync, statSync } from "node:fs";
import { basename } from "node:path";

const [url, user, password, file, pid] = process.argv.slice(2);
const vm = (key) => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith(key));
  return Math.round(Number(line.split(/\s+/)[1]) / 1024);
};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-proxy-server"],
});
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.fill("#login-form [name=user]", user);
  await page.fill("#login-form [name=password]", password);
  await page.click("#login-form button");
  await page.waitForSelector("#files-page:not([hidden])");
  const before = vm("VmHWM:");
  const start = Date.now();
  await page.setInputFiles("#pick", file);
  await page.waitForSelector(`#files tbody tr:has-text("${basename(file)}")`, { timeout: 600000 });
  const secs = (Date.now() - start) / 1000;
  const mb = statSync(file).size / 1e6;
  console.log(`uploaded ${mb.toFixed(0)} MB in ${secs.toFixed(1)} s (${(mb / secs).toFixed(1)} MB/s); node peak RSS ${vm("VmHWM:")} MiB (was ${before} MiB before the upload), now ${vm("VmRSS:")} MiB`);
} finally {
  await browser.close();
}
