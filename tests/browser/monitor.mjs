// Browser test of `shmbus monitor`: run by tests/test_monitor_browser.sh.
//
//   node tests/browser/monitor.mjs URL SCREENSHOT USER_DATA_DIR [MIN_CLIENTS]
//
// Opens URL in Debian's headless chromium (driven by playwright-core, no browser download),
// while traffic runs on the bus, and checks what a user would look at: the client nodes
// appear, arrows between them are drawn, the counters rise, the page updates at least once a
// second, nothing is fetched from anywhere but the monitor, and the page logs no error.
// Saves a screenshot. Prints one line per check; exits 1 on the first failed one.
import { check, launch, num } from './lib.mjs';

const [url, shot, userDir, minArg] = process.argv.slice(2);
const minClients = Number(minArg || 3);
if (!url || !shot || !userDir) {
  console.error('usage: node monitor.mjs URL SCREENSHOT USER_DATA_DIR [MIN_CLIENTS]');
  process.exit(2);
}

const ctx = await launch(userDir);
let status = 0;
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  const origin = new URL(url).origin;
  const foreign = [], errors = [];
  // Works offline: any request that leaves the monitor is recorded and refused.
  await page.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith(origin + '/')) return route.continue();
    foreign.push(u);
    return route.abort();
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

  await page.goto(url, { waitUntil: 'load', timeout: 15000 });
  await page.waitForFunction((n) => document.querySelectorAll('#graph g.node').length >= n,
    minClients, { timeout: 15000 });
  const ids = await page.$$eval('#graph g.node', (gs) => gs.map((g) => g.dataset.id));
  check(ids.length >= minClients, `client nodes appear: ${ids.join(', ')}`);

  await page.waitForFunction(() => document.querySelectorAll('#graph path.edge').length > 0,
    null, { timeout: 10000 });
  const edges = await page.$$eval('#graph path.edge',
    (ps) => ps.map((p) => `${p.dataset.from}->${p.dataset.to}`));
  check(edges.length >= minClients, `arrows drawn between them: ${edges.join(' ')}`);

  const status1 = await page.textContent('#status');
  check(status1.trim() === 'live', `status says live (${status1.trim()})`);
  // A bus without a NATS bridge (or groups) shows no card for one.
  check(await page.$eval('#bridges-card', (c) => c.hidden), 'no Bridges card (the bus has no bridge)');

  // Counters rise, on the page, without a reload; count the updates meanwhile.
  const readCounts = () => page.$$eval('#clients tbody tr', (trs) => trs.map((tr) => [
    tr.dataset.id, tr.querySelector('[data-field=received]').textContent]));
  // The page sets body[data-seq] at each update: note when, in the page's own clock.
  await page.evaluate(() => {
    window.updates = [];
    new MutationObserver(() => window.updates.push([Number(document.body.dataset.seq),
      performance.now()])).observe(document.body, { attributes: true, attributeFilter: ['data-seq'] });
  });
  const total0 = num(await page.textContent('#total-received'));
  const before = new Map(await readCounts());
  // Wait for the state, not for a time: at least 5 updates shown and every client's
  // received count risen on the page (deadline 20 s; a failure then names what is missing).
  await page.waitForFunction((prev) => {
    if (window.updates.length < 5) return false;
    const rows = [...document.querySelectorAll('#clients tbody tr')];
    return prev.every(([id, v]) => {
      const tr = rows.find((r) => r.dataset.id === id);
      if (!tr) return false;
      const n = Number(tr.querySelector('[data-field=received]').textContent.replace(/[^0-9]/g, ''));
      return n > Number(String(v).replace(/[^0-9]/g, ''));
    });
  }, [...before], { timeout: 20000 }).catch(() => {});
  const updates = await page.evaluate(() => window.updates);
  const total1 = num(await page.textContent('#total-received'));
  const after = new Map(await readCounts());
  check(total1 > total0, `total received rises: ${total0} -> ${total1}`);
  for (const [id, v] of before) {
    const w = after.get(id);
    check(w !== undefined && num(w) > num(v), `client ${id} received rises: ${v} -> ${w}`);
  }
  // The monitor samples once a second (the default interval): the page must show every
  // sample, in order, without reloading. How evenly they arrive depends on how busy the
  // machine is (the ring keeps both cores busy), so the gaps are reported, not asserted.
  const seqs = updates.map((u) => u[0]);
  const gaps = updates.slice(1).map((u, i) => Math.round(u[1] - updates[i][1]));
  const interval = await page.evaluate(() => fetch('/api/bus').then((r) => r.json())
    .then((j) => j.interval_ms));
  check(interval <= 1000, `the monitor samples every ${interval} ms`);
  check(seqs.length >= 4 && seqs.every((q, i) => i === 0 || q === seqs[i - 1] + 1),
    `page showed ${seqs.length} consecutive samples without reloading ` +
    `(seq ${seqs[0]}..${seqs[seqs.length - 1]}, gaps ${gaps.join(' ')} ms)`);

  check(foreign.length === 0, `nothing fetched from elsewhere (${foreign.length} tried)`);
  check(errors.length === 0, `no errors in the page${errors.length ? ': ' + errors.join('; ') : ''}`);

  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
} catch (e) {
  console.error(`monitor.mjs: ${e.message}`);
  status = 1;
} finally {
  await ctx.close();
}
process.exit(status);
