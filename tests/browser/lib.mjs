// Shared by the browser tests (monitor.mjs, groups.mjs, bridges.mjs): one way to start
// Debian's headless chromium through playwright-core, the check and number helpers, and the frame of a test of
// one card of the monitor (cardTest).
import { chromium } from 'playwright-core';

// Print one line per check; a failed one ends the test (the caller catches it).
export function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) throw new Error(what);
}

// The numbers in the page's cells are formatted with thousands separators.
export const num = (s) => Number(String(s).replace(/[^0-9]/g, ''));

// A fresh persistent context in userDir: no sandbox (root in a container), nothing fetched
// in the background, CHROMIUM or /usr/bin/chromium.
export function launch(userDir) {
  return chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 900 },
    timeout: 30000,
  });
}

// The test of one card of the monitor (groups.mjs, bridges.mjs): open url in a fresh browser
// (userDir) recording the page's errors, wait (15 s at most) until ready([rowSelector, arg])
// holds in the page (it runs there: it sees only its argument), then check that the card `#${card}-card` is shown and has the row
// `#${card} tbody tr[data-name="${name}"]`, and run checks(row, field, page), where
// field(f) is the text of the row's cell [data-field=f]; last, that the page logged no
// error. Exits the process: 0, or 1 on the first failed check (reported as `test: why`).
export async function cardTest({ test, url, userDir, card, name, ready, arg, checks }) {
  const ctx = await launch(userDir);
  let status = 0;
  try {
    const page = ctx.pages()[0] || (await ctx.newPage());
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // A failed request is judged by its address (the browser's own /favicon.ico may 404; the
    // console only says "Failed to load resource" without naming it).
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && new URL(r.url()).pathname !== '/favicon.ico')
        errors.push(`${r.status()} for ${r.url()}`);
    });
    await page.goto(url, { waitUntil: 'load', timeout: 15000 });
    const sel = `#${card} tbody tr[data-name="${name}"]`;
    await page.waitForFunction(ready, [sel, arg], { timeout: 15000 }).catch(() => {});
    const title = card[0].toUpperCase() + card.slice(1);
    check(!(await page.$eval(`#${card}-card`, (c) => c.hidden)), `the ${title} card is shown`);
    const row = await page.$(sel);
    check(row !== null, `a row for ${name}`);
    const field = (f) => row.$eval(`[data-field=${f}]`, (td) => td.textContent);
    await checks(row, field, page);
    check(errors.length === 0, `no errors in the page${errors.length ? ': ' + errors.join('; ') : ''}`);
  } catch (e) {
    console.error(`${test}: ${e.message}`);
    status = 1;
  } finally {
    await ctx.close();
  }
  process.exit(status);
}
