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
import { cardTest, check, num } from './lib.mjs';

const [url, userDir, bridge, node, shot] = process.argv.slice(2);
if (!url || !userDir || !bridge || !node) {
  console.error('usage: node bridges.mjs URL USER_DATA_DIR BRIDGE NODE');
  process.exit(2);
}

await cardTest({
  test: 'bridges.mjs', url, userDir, card: 'bridges', name: bridge,
  // Ready: the bridge's row there, connected, the error counted.
  ready: ([s]) => {
    const tr = document.querySelector(s);
    return tr && tr.querySelector('[data-field=up]').textContent === 'connected' &&
      tr.querySelector('[data-field=errors]').textContent !== '0';
  },
  checks: async (row, field, page) => {
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
    if (shot) await page.locator('#bridges-card').screenshot({ path: shot });
  },
});
