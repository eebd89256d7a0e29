// Browser test of the monitor's Groups card: run by tests/test_monitor_browser.sh.
//
//   node tests/browser/groups.mjs URL USER_DATA_DIR TOPIC MIN_PUBLISHED
//
// The bus behind URL has a topic TOPIC with one subscriber and at least MIN_PUBLISHED copies
// published. Checks that the card is shown, that TOPIC's row says 1 member and its published
// count, and that the page logs no error. Prints one line per check; exits 1 on a failure.
import { cardTest, check, num } from './lib.mjs';

const [url, userDir, topic, minArg] = process.argv.slice(2);
const minPublished = Number(minArg || 1);
if (!url || !userDir || !topic) {
  console.error('usage: node groups.mjs URL USER_DATA_DIR TOPIC MIN_PUBLISHED');
  process.exit(2);
}

await cardTest({
  test: 'groups.mjs', url, userDir, card: 'groups', name: topic, arg: minPublished,
  // Ready: the row there with every copy counted.
  ready: ([s, n]) => {
    const tr = document.querySelector(s);
    if (!tr) return false;
    const v = tr.querySelector('[data-field=published]').textContent.replace(/[^0-9]/g, '');
    return Number(v) >= n;
  },
  checks: async (row, field) => {
    check(num(await field('members')) === 1, `${topic}: 1 member (${await field('members')})`);
    const published = num(await field('published'));
    check(published >= minPublished, `${topic}: ${published} published (>= ${minPublished})`);
    check(num(await field('missed')) === 0, `${topic}: nothing missed`);
    check((await field('leader')) === '-', `${topic}: nobody leads it`);
  },
});
