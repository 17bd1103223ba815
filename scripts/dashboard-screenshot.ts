/**
 * `node dist/scripts/dashboard-screenshot.js [OUT.png]` (root, Debian's chromium): the README's
 * picture of the dashboard (default docs/dashboard.png), taken of the real page. A daemon with
 * `--dashboard`, an app with two web dynos and a worker getting traffic for SHOT_SECONDS (default
 * 90; a few requests are slow, a few are dropped by the app: H13), and a crashing app.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'puppeteer-core' with { 'resolution-mode': 'import' };
import { get, ROOT, sleep, TestDaemon } from '../test/manifold/helpers/daemon';

const puppeteer = (require('puppeteer-core') as typeof import('puppeteer-core', { with: { 'resolution-mode': 'import' } })).default;
const OUT = path.resolve(process.argv[2] ?? path.join(ROOT, 'docs/dashboard.png'));
const SECONDS = Number(process.env.SHOT_SECONDS ?? 90);

const SHOP = `'use strict';
const http = require('node:http');
const dyno = process.env.DYNO;
let n = 0;
http.createServer((req, res) => {
  n++;
  // a few requests the app drops (the router answers H13), some slow ones
  if (n % 37 === 0) return req.socket.destroy();
  const ms = n % 10 === 0 ? 80 + (n % 7) * 20 : 2 + (n % 5);
  setTimeout(() => res.end('ok ' + dyno + '\\n'), ms);
  if (n % 50 === 0) console.log(dyno + ' served ' + n + ' requests');
}).listen(process.env.PORT, () => console.log(dyno + ' listening on ' + process.env.PORT));
`;

async function main(): Promise<void> {
  const apps = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-shot-'));
  const shop = path.join(apps, 'shop');
  fs.mkdirSync(shop);
  fs.writeFileSync(path.join(shop, 'Procfile'), 'web: node server.js\nworker: node worker.js\n');
  fs.writeFileSync(path.join(shop, 'server.js'), SHOP);
  fs.writeFileSync(path.join(shop, 'worker.js'), "setInterval(() => console.log('worker: ' + Math.round(process.memoryUsage().rss / 1e6) + ' MB'), 4000);\n");
  const crashy = path.join(apps, 'reports');
  fs.mkdirSync(crashy);
  fs.writeFileSync(path.join(crashy, 'Procfile'), 'worker: echo "connecting to $DATABASE_URL"; sleep 2; echo "fatal: database unreachable"; exit 1\n');
  const d = new TestDaemon(['--dashboard', '127.0.0.1:0', '--restart-delay', '20s']);
  let browser: Browser | undefined;
  try {
    await d.start();
    for (const [name, dir] of [['shop', shop], ['reports', crashy]] as const) {
      await d.cli('apps:create', name);
      await d.cli('deploy', dir, '-a', name);
      await d.cli('apps:settings', '-a', name, '--metrics-interval', '2');
    }
    await d.cli('config:set', 'DATABASE_URL=postgres://db.internal/reports', '-a', 'reports');
    await d.cli('ps:scale', 'web=2', 'worker=1', '-a', 'shop');
    await d.cli('ps:scale', 'worker=1', '-a', 'reports');
    const url = (await d.cli('dashboard')).stdout.trim();
    browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 900, deviceScaleFactor: 1 });
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    const end = Date.now() + SECONDS * 1000;
    let i = 0;
    while (Date.now() < end) {
      // a rate that rises and falls, so the throughput chart has a shape
      const burst = 2 + Math.round(6 * (1 + Math.sin(i++ / 15)));
      await Promise.all(Array.from({ length: burst }, () => get(d.port, 'shop.localhost')));
      await sleep(100);
    }
    await page.select('#log-app', 'shop');
    await sleep(6000); // the next metrics message
    await page.screenshot({ path: OUT, fullPage: true });
    process.stdout.write(`${OUT}\n`);
  } finally {
    const proc = browser?.process();
    await Promise.race([browser?.close(), sleep(5000)]).catch(() => undefined);
    if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    await d.stop();
    d.cleanup();
    fs.rmSync(apps, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`dashboard-screenshot: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
