// Page-load figure for BENCHMARKS.md: logs in, then times reloading the files page until every
// listed file is shown. Usage: node measure.mjs URL USER PASSWORD FILES [RUNS]
import { chromium } from "playwright-core";

const [url, user, password, files, runs = "5"] = process.argv.slice(2);
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
  const times = [];
  for (let i = 0; i < Number(runs); i++) {
    const start = Date.now();
    await page.goto(url);
    await page.waitForFunction((n) => document.querySelectorAll("#files tbody tr").length >= n, Number(files));
    times.push(Date.now() - start);
  }
  times.sort((a, b) => a - b);
  console.log(`files page with ${files} files: median ${times[Math.floor(times.length / 2)]} ms (runs: ${times.join(", ")})`);
} finally {
  await browser.close();
}
