// Shared by the browser tests (monitor.mjs, groups.mjs): one way to start Debian's headless
// chromium through playwright-core, and the check and number helpers.
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
