// GraphiQL renders from the server's own assets and runs a query in headless Chromium, with
// nothing fetched from anywhere but the server. (Playwright gives Chromium a fresh temp profile.)
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { startTestApp, ADMIN_TOKEN, type TestApp } from '../helpers/app.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

let t: TestApp;
let url: string;
let browser: Browser | undefined;

beforeAll(async () => {
  if (!CHROMIUM) throw new Error('Debian chromium is not installed: run `npm run setup` (as root) first');
  t = await startTestApp();
  url = (await t.app.start()).url;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

describe('GraphiQL', () => {
  it('renders, runs a query and shows the answer, fetching nothing from outside', async () => {
    const page = await browser!.newPage();
    const origin = new URL(url).origin;
    const outside: string[] = [];
    page.on('request', (req) => {
      const u = req.url();
      if (!u.startsWith(origin) && !u.startsWith('data:') && !u.startsWith('blob:')) outside.push(u);
    });
    await page.goto(`${url}?token=${ADMIN_TOKEN}`, { waitUntil: 'load' });
    await page.waitForSelector('.graphiql-container', { timeout: 60_000 });
    await page.locator('.graphiql-execute-button').click();
    await page.waitForFunction(() => document.querySelector('.graphiql-response')?.textContent?.includes('"gitea"'), undefined, { timeout: 60_000 });
    const response = await page.locator('.graphiql-response').innerText();
    expect(response).toContain('"instances"');
    expect(response).toContain('"postgres"');
    expect(outside).toEqual([]);
    await page.close();
  }, 120_000);

  it('serves the GraphiQL page without a token but no data without one', async () => {
    const html = await fetch(url, { headers: { accept: 'text/html' } });
    expect(html.status).toBe(200);
    expect(await html.text()).not.toMatch(/<script[^>]+src="https?:\/\//);
    const page = await fetch(`${url}?query=%7Binstances%7Bname%7D%7D`, { headers: { accept: 'text/html' } });
    expect((await page.text()).includes('{"name":"home"}')).toBe(false);
    const data = await fetch(`${url}?query=%7Binstances%7Bname%7D%7D`, { headers: { accept: 'application/json' } });
    expect(data.status).toBe(401);
  });
});
