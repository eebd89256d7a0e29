// Browser test of the monitor's Bridges card: run by tests/test_monitor_browser.sh.
//
//   node tests/browser/bridges.mjs URL USER_DATA_DIR BRIDGE NODE [SCREENSHOT]
//
// The bus behind URL has a running shmbus-bridge called BRIDGE for node NODE, connected to
// NATS, that was given a message for a node no bridge serves. Checks that the card is
// shown, that BRIDGE's row names NODE, says connected, shows its counters (messages and
// bytes each way, queue, lost, undeliverable, errors) as numbers, the undeliverable message
// as an error (in red) and its last error, and that the page logs no error. Prints one
// line per check; exits 1 on a failure. SCREENSHOT: where to save the card as PNG.
import { check, launch, num } from './lib.mjs';

const [url, userDir, bridge, node, shot] = process.argv.slice(2);
if (!url || !userDir || !bridge || !node) {
  console.error('usage: node bridges.mjs URL USER_DATA_DIR BRIDGE NODE');
  process.exit(2);
}

const ctx = await launch(userDir);
let status = 0;
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && new URL(r.url()).pathname !== '/favicon.ico')
      errors.push(`${r.status()} for ${r.url()}`);
  });
  await page.goto(url, { waitUntil: 'load', timeout: 15000 });
  const sel = `#bridges tbody tr[data-name="${bridge}"]`;
  // Wait for the state: the bridge's row there, connected, the error counted (deadline 15 s).
  await page.waitForFunction((s) => {
    const tr = document.querySelector(s);
    return tr && tr.querySelector('[data-field=up]').textContent === 'connected' &&
      tr.querySelector('[data-field=errors]').textContent !== '0';
  }, sel, { timeout: 15000 }).catch(() => {});
  check(!(await page.$eval('#bridges-card', (c) => c.hidden)), 'the Bridges card is shown');
  const row = await page.$(sel);
  check(row !== null, `a row for bridge ${bridge}`);
  const field = (f) => row.$eval(`[data-field=${f}]`, (td) => td.textContent);
  check((await field('node')) === node, `${bridge}: node ${await field('node')}`);
  check((await field('up')) === 'connected', `${bridge}: ${await field('up')} to NATS`);
  for (const f of ['out_msgs', 'in_msgs', 'queue', 'lost', 'undeliverable', 'errors']) {
    const t = await field(f);
    check(/^[0-9,]+$/.test(t), `${bridge}: ${f} is a count (${t})`);
  }
  for (const f of ['out_bytes', 'in_bytes'])
    check(/ (B|KiB|MiB)$/.test(await field(f)), `${bridge}: ${f} in bytes (${await field(f)})`);
  check(num(await field('lost')) === 0, `${bridge}: nothing lost`);
  check(num(await field('undeliverable')) >= 1, `${bridge}: the message for nowhere undeliverable`);
  check(num(await field('errors')) >= 1, `${bridge}: ${await field('errors')} error(s)`);
  const cls = await row.$eval('[data-field=errors]', (td) => td.className);
  check(cls.includes('bad'), `${bridge}: errors shown as bad (${cls})`);
  const last = await field('last_error');
  check(last.includes('nowhere'), `${bridge}: last error: ${last}`);
  check(/topics .* queues .* requests/.test(await field('traffic')), `${bridge}: its traffic by kind`);
  check(errors.length === 0, `no errors in the page${errors.length ? ': ' + errors.join('; ') : ''}`);
  if (shot) await page.locator('#bridges-card').screenshot({ path: shot });
} catch (e) {
  console.error(`bridges.mjs: ${e.message}`);
  status = 1;
} finally {
  await ctx.close();
}
process.exit(status);
