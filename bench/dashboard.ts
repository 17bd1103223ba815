/**
 * `node dist/bench/dashboard.js` (root, Debian's chromium): what one open dashboard costs the daemon.
 * A real daemon with `--dashboard`, one idle app (hello, web=2); the daemon's CPU (utime + stime of
 * all its threads, /proc/PID/stat) over BENCH_SECONDS (default 10) without a page, then with one page
 * open in headless Chromium. Goal: ≤ 1 % of a core with the page open. Also the page's own weight
 * (goal ≤ 100 KB, uPlot not counted).
 */
import path from 'node:path';
import type { Browser } from 'puppeteer-core' with { 'resolution-mode': 'import' };
import { ROOT, sleep, TestDaemon, waitFor } from '../test/manifold/helpers/daemon';
import { cpuFraction, pageWeight, PAGE_WEIGHT_MAX } from '../test/dashboard/measure';

const puppeteer = (require('puppeteer-core') as typeof import('puppeteer-core', { with: { 'resolution-mode': 'import' } })).default;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);

async function main(): Promise<void> {
  const w = pageWeight(path.join(ROOT, 'dashboard'));
  process.stdout.write(`page weight (index.html + app.js + app.css): ${w.total} bytes (goal ≤ ${PAGE_WEIGHT_MAX}) ${w.total <= PAGE_WEIGHT_MAX ? 'ok' : 'OVER'}\n`);
  const d = new TestDaemon(['--dashboard', '127.0.0.1:0']);
  let browser: Browser | undefined;
  try {
    await d.start();
    await d.cli('apps:create', 'hello');
    await d.cli('deploy', path.join(ROOT, 'examples/hello'), '-a', 'hello');
    await d.cli('ps:scale', 'web=2', '-a', 'hello');
    await waitFor('2 dynos up', async () => ((await d.cli('ps', '-a', 'hello', '--json')).stdout.match(/"state": "up"/g) ?? []).length === 2);
    const url = (await d.cli('dashboard')).stdout.trim();
    const pid = d.child!.pid!;
    await sleep(2000);
    const before = await cpuFraction(pid, SECONDS * 1000);
    process.stdout.write(`daemon CPU, apps idle, no page:        ${(before * 100).toFixed(2)} % of a core over ${SECONDS} s\n`);
    browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    const page = await browser.newPage();
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('tr.dyno[data-state="up"]', { timeout: 10_000 });
    await sleep(2000);
    const open = await cpuFraction(pid, SECONDS * 1000);
    process.stdout.write(`daemon CPU, apps idle, one page open:  ${(open * 100).toFixed(2)} % of a core over ${SECONDS} s (goal ≤ 1 %) ${open <= 0.01 ? 'ok' : 'OVER'}\n`);
    process.stdout.write(`the page's share:                       ${((open - before) * 100).toFixed(2)} % of a core\n`);
  } finally {
    const proc = browser?.process();
    await Promise.race([browser?.close(), sleep(5000)]).catch(() => undefined);
    if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    await d.stop();
    d.cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/dashboard: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
