// Browser test of the monitor's Groups card: run by tests/test_monitor_browser.sh.
//
//   node tests/browser/groups.mjs URL USER_DATA_DIR TOPIC MIN_PUBLISHED
//
// The bus behind URL has a topic TOPIC with one subscriber and at least MIN_PUBLISHED copies
// published. Checks that the card is shown, that TOPIC's row says 1 member and its published
// count, and that the page logs no error. Prints one line per check; exits 1 on a failure.
import { check, launch, num } from './lib.mjs';

const [url, userDir, topic, minArg] = process.argv.slice(2);
const minPublished = Number(minArg || 1);
if (!url || !userDir || !topic) {
  console.error('usage: node groups.mjs URL USER_DATA_DIR TOPIC MIN_PUBLISHED');
  process.exit(2);
}

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
  const sel = `#groups tbody tr[data-name="${topic}"]`;
  // Wait for the state: the row there with every copy counted (deadline 15 s).
  await page.waitForFunction(([s, n]) => {
    const tr = document.querySelector(s);
    if (!tr) return false;
    const v = tr.querySelector('[data-field=published]').textContent.replace(/[^0-9]/g, '');
    return Number(v) >= n;
  }, [sel, minPublished], { timeout: 15000 }).catch(() => {});
  check(!(await page.$eval('#groups-card', (c) => c.hidden)), 'the Groups card is shown');
  const row = await page.$(sel);
  check(row !== null, `a row for topic ${topic}`);
  const field = (f) => row.$eval(`[data-field=${f}]`, (td) => td.textContent);
  check(num(await field('members')) === 1, `${topic}: 1 member (${await field('members')})`);
  const published = num(await field('published'));
  check(published >= minPublished, `${topic}: ${published} published (>= ${minPublished})`);
  check(num(await field('missed')) === 0, `${topic}: nothing missed`);
  check((await field('leader')) === '-', `${topic}: nobody leads it`);
  check(errors.length === 0, `no errors in the page${errors.length ? ': ' + errors.join('; ') : ''}`);
} catch (e) {
  console.error(`groups.mjs: ${e.message}`);
  status = 1;
} finally {
  await ctx.close();
}
process.exit(status);
