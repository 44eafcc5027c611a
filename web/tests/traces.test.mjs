// What a seized phone's disk keeps (issue 32): the browser's own profile
// directory, read byte by byte as a forensic tool would — every file, in
// UTF-8 and in UTF-16 (how Chromium keeps localStorage values) — after
// onboarding, a press made offline and sent once back online, and "delete
// my data".

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, onboard, addContact, waitFor, screenshot, pendingKept } from './harness.mjs';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
let profileDir;

before(() => { profileDir = mkdtempSync(join(tmpdir(), 'avisa-profile-')); });
after(() => rmSync(profileDir, { recursive: true, force: true }));

function phone(dir) {
  return chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ARGS,
    viewport: { width: 360, height: 640 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    geolocation: { latitude: 34.0505, longitude: -118.2551, accuracy: 15 },
    permissions: ['geolocation'],
    locale: 'es-US',
  });
}

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    let st;
    try { st = statSync(path); } catch { continue; }
    if (st.isDirectory()) out.push(...files(path));
    else if (st.isFile()) out.push(path);
  }
  return out;
}

/// Which of `needles` stand anywhere in the directory's files, and where.
function found(dir, needles) {
  const hits = [];
  const all = files(dir);
  assert.ok(all.length > 10, `the profile has files to read (${all.length})`);
  for (const path of all) {
    const bytes = readFileSync(path);
    for (const needle of needles) {
      for (const encoding of ['utf8', 'utf16le']) {
        if (bytes.includes(Buffer.from(needle, encoding))) hits.push(`${needle} (${encoding}) in ${path.slice(dir.length)}`);
      }
    }
  }
  return hits;
}

// Not the app's own suggestion (AUXILIO), which is in its code.
const KEYWORD = ['GIRASOL7', 'girasol7', 'Girasol7'];
const CONTACT = ['Guadalupe Ortiz'];
// Not the app's placeholder, (213) 555-0100, which is in its code.
const NUMBER = ['2135550166', '555-0166', '555 0166'];
const PLACE = ['34.0505', '118.2551', '34.05050', '118.25510'];

test('the phone keeps nothing of the person on its disk, before and after "delete my data"', async () => {
  const server = await startServer();
  let context;
  try {
    context = await phone(profileDir);
    let page = context.pages()[0] || await context.newPage();
    await page.goto(server.base);
    await onboard(page, server, '(213) 555-0166', '+12135550166', 'girasol7');
    await addContact(page, { name: 'Guadalupe Ortiz', phone: '(213) 555-0177', language: 'es', message: 'Me detuvieron, llama a la abogada.' });
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');
    await page.goto(`${server.base}/#/settings`);
    await page.fill('#countdown', '0');
    await page.goto(`${server.base}/#/`);
    await page.waitForSelector('#press');
    await page.waitForFunction(() => navigator.serviceWorker && navigator.serviceWorker.controller !== null, null, { timeout: 10000 }).catch(async () => {
      await page.reload();
      await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 10000 });
    });

    // A press with no connection: kept in its file, sent once back online,
    // and the file gone.
    await context.setOffline(true);
    await page.click('#press');
    // The waiting screen itself (the banner says "Sin conexión" as soon as
    // the connection goes, before the press is kept).
    await page.waitForSelector('#withdraw');
    assert.equal(await pendingKept(page), true, 'the press waits in its file');
    await context.setOffline(false);
    await page.evaluate(() => window.dispatchEvent(new Event('online')));
    await page.waitForSelector('#recipients', { timeout: 15000 });
    await waitFor(() => server.smsLog().some((l) => l.to === '+12135550177'), 10000, 'the contact SMS');
    await waitFor(() => pendingKept(page).then((k) => !k), 5000, 'the press file removed once sent');
    await screenshot(page, 'app-traces-sent');
    await context.close();
    context = null;

    // Closed, as a phone put away: the profile holds neither the keyword
    // nor a contact's name.
    assert.deepEqual(found(profileDir, [...KEYWORD, ...CONTACT]), []);

    // Reopened: the person is safe, cancels with the PIN (a deletion waits
    // for no active alert), and deletes their data.
    context = await phone(profileDir);
    page = context.pages()[0] || await context.newPage();
    await page.goto(server.base);
    const cancelled = await page.evaluate(async () => {
      const r = await fetch(`/api/v1/alerts/${localStorage.getItem('avisa.lastAlert')}/cancel`, {
        method: 'POST',
        headers: { authorization: `Bearer ${localStorage.getItem('avisa.token')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ pin: '4821' }),
      });
      return r.status;
    });
    assert.equal(cancelled, 200);
    await page.goto(`${server.base}/#/settings`);
    await page.waitForSelector('#gate-pin');
    await page.fill('#gate-pin', '4821');
    await page.click('button[type=submit]');
    await page.waitForSelector('#delete_pin');
    await page.fill('#delete_pin', '4821');
    await page.getByRole('button', { name: 'Borrar todo' }).click();
    await page.waitForSelector('text=Tus datos fueron borrados.', { timeout: 5000 });
    await context.close();
    context = null;

    // Nothing at all: no keyword, number, contact name or place, in any
    // file, in either encoding.
    assert.deepEqual(found(profileDir, [...KEYWORD, ...CONTACT, ...NUMBER, ...PLACE]), []);
  } finally {
    // An open browser would keep this test's process alive after a failure.
    if (context) await context.close().catch(() => {});
    await server.stop();
  }
});
