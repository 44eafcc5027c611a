// Every screen of the phone app, checked as a person with a screen reader
// or large fingers meets it: axe-core finds nothing serious or critical,
// each screen has one h1, and every tap target is at least 44×44 px.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import { startServer, launch, waitFor, screenshot } from './harness.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

/// axe, the h1 and the tap targets on what the page shows now.
async function check(page, screen) {
  await page.addScriptTag({ path: axePath });
  const { violations, passes } = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
  }));
  const grave = violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  assert.deepEqual(grave, [], `${screen}: axe found ${grave.join('; ')}`);
  assert.ok(passes.some((p) => p.id === 'label-content-name-mismatch' || p.id === 'button-name'), `${screen}: axe checked the controls`);
  const h1 = await page.$$eval('h1', (hs) => hs.filter((h) => h.offsetParent !== null || h.getClientRects().length).length);
  assert.equal(h1, 1, `${screen}: one h1`);
  const targets = await page.$$eval('button, a, input, select, textarea', (els) => els.filter((el) => el.getClientRects().length).length);
  assert.ok(targets > 0, `${screen}: something to tap`);
  const small = await page.$$eval('button, a, input, select, textarea', (els) => els
    // A link inside a sentence is text, not a target of its own.
    .filter((el) => el.getClientRects().length && !(el.tagName === 'A' && el.closest('p, li')))
    .map((el) => ({ el, r: el.getBoundingClientRect() }))
    .filter(({ r }) => r.width < 44 || r.height < 44)
    .map(({ el, r }) => `${el.tagName.toLowerCase()}#${el.id || ''}.${el.className} ${Math.round(r.width)}×${Math.round(r.height)}`));
  assert.deepEqual(small, [], `${screen}: tap targets under 44×44 px`);
}

test('every screen: no serious axe finding, one h1, tap targets of 44 px', async () => {
  const server = await startServer();
  try {
    const context = await browser.newContext({
      viewport: { width: 360, height: 640 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
      geolocation: { latitude: 34.0505, longitude: -118.2551, accuracy: 15 }, permissions: ['geolocation'],
      locale: 'es-US', bypassCSP: true,
    });
    const page = await context.newPage();
    await page.goto(server.base);
    await page.waitForSelector('#phone');
    await check(page, 'welcome');
    // Before it was mended, axe found the language button's name ("Cambiar
    // a inglés") apart from its text ("English").
    assert.match(await page.getAttribute('#lang', 'aria-label'), /^English/);
    await page.fill('#phone', '(213) 555-0100');
    await page.click('button[type=submit]');
    await page.waitForSelector('#code');
    await check(page, 'code');
    const line = await waitFor(() => server.smsLog().find((l) => l.to === '+12135550100'), 10000, 'the code SMS');
    await page.fill('#code', line.body.match(/\b(\d{6})\b/)[1]);
    await page.click('button[type=submit]');
    await page.waitForSelector('#name');
    await check(page, 'profile');
    await page.fill('#name', 'María Pérez');
    await page.selectOption('#home_state', 'CA');
    await page.fill('#home_county', 'Los Angeles');
    await page.fill('#cancel_pin', '4821');
    await page.fill('#pin_again', '4821');
    await page.fill('#keyword', 'auxilio');
    await page.click('button[type=submit]');
    await page.getByRole('button', { name: /Permitir ubicación/ }).waitFor();
    await check(page, 'location');
    await page.getByRole('button', { name: /Permitir ubicación/ }).click();
    await page.waitForSelector('#add-contact');
    await check(page, 'contacts, none yet');
    await page.click('#add-contact');
    await page.waitForSelector('#contact-name');
    await check(page, 'contact editor');
    await page.fill('#contact-name', 'Mamá');
    await page.fill('#contact-phone', '(213) 555-0177');
    await page.fill('#contact-message', 'Me detuvieron. Llama a la abogada.');
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');
    await check(page, 'contacts');
    await page.goto(`${server.base}/#/`);
    await page.waitForSelector('#press');
    await check(page, 'home');
    await screenshot(page, 'app-home-a11y');
    await page.goto(`${server.base}/#/rights`);
    await page.waitForSelector('ol.rights');
    await check(page, 'rights');
    await page.goto(`${server.base}/#/practice`);
    await page.waitForSelector('#practice-press');
    await check(page, 'practice');
    await page.click('#practice-press');
    await page.waitForSelector('#recipients li');
    await check(page, 'practice status');
    await page.reload();
    await page.goto(`${server.base}/#/settings`);
    await page.waitForSelector('#gate-pin');
    await check(page, 'PIN gate');
    await page.fill('#gate-pin', '4821');
    await page.click('button[type=submit]');
    await page.waitForSelector('#countdown');
    await check(page, 'settings');
    await page.goto(`${server.base}/#/checkins`);
    await page.waitForSelector('#appointment_at');
    await check(page, 'ICE appointment');
    await page.goto(`${server.base}/#/history`);
    await page.waitForSelector('#history-alerts');
    await check(page, 'history');
    await context.close();
  } finally {
    await server.stop();
  }
});
