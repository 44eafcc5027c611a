// Live location after a press, in real headless Chromium with an emulated
// position: a move of 500 m sends a point within 5 s, a contact who chose
// updates is told, and after "Estoy a salvo" nothing more is sent.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, launch, phonePage, onboard, addContact, waitFor, screenshot } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('after a press the phone shares its moves, and stops at the cancel', async () => {
  // One point per second at most (10 s by default), so the test can move
  // right after the press.
  const server = await startServer({ AVISA_ALERTS__TRAIL_EVERY: '1s' });
  try {
    const { page, context } = await phonePage(browser, server.base);
    const points = [];
    page.on('response', (r) => {
      if (r.request().method() === 'POST' && /\/api\/v1\/alerts\/[^/]+\/locations$/.test(r.url())) {
        points.push({ at: Date.now(), status: r.status(), body: r.request().postDataJSON() });
      }
    });
    await page.waitForSelector('h1');
    await onboard(page, server);
    await addContact(page, { name: 'Lupita', phone: '(213) 555-0142', language: 'es', template: 'Familia' });
    await page.check('#contact-updates');
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');

    await page.goto(`${server.base}/#/`);
    await page.waitForSelector('#press');
    await page.click('#press');
    await page.waitForSelector('#recipients', { timeout: 15000 });
    await page.waitForSelector('#sharing .sharing-on', { timeout: 10000 });
    assert.match(await page.textContent('#sharing'), /Compartiendo tu ubicación con el consulado/);
    await screenshot(page, 'app-sharing');

    // 500 m north.
    await new Promise((r) => setTimeout(r, 1100));
    const before = points.length;
    const moved = Date.now();
    await context.setGeolocation({ latitude: 34.0550, longitude: -118.2551, accuracy: 15 });
    const sent = await waitFor(() => points.slice(before).find((p) => p.status === 201), 5000, 'a point within 5 s of moving');
    assert.ok(sent.at - moved <= 5000, `sent after ${sent.at - moved} ms`);
    assert.ok(Math.abs(sent.body.lat - 34.055) < 1e-6, JSON.stringify(sent.body));
    await waitFor(() => server.smsLog().some((l) => l.to === '+12135550142' && l.body.includes('nueva ubicacion')), 10000, 'the contact told of the new location');

    // "Estoy a salvo": the alert is cancelled and sharing stops.
    await page.click('#im-safe');
    await page.fill('#safe-pin', '4821');
    await page.click('#safe-confirm');
    await page.waitForSelector('text=Alerta cancelada');
    assert.equal(await page.$('#sharing .sharing-on'), null, 'no sharing shown after the cancel');
    const atCancel = points.length;
    await context.setGeolocation({ latitude: 34.0650, longitude: -118.2551, accuracy: 15 });
    await new Promise((r) => setTimeout(r, 3000));
    await context.setGeolocation({ latitude: 34.0750, longitude: -118.2551, accuracy: 15 });
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(points.length, atCancel, `points after the cancel: ${JSON.stringify(points.slice(atCancel))}`);
    assert.equal(await page.evaluate(() => localStorage.getItem('avisa.sharing')), null);
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    await server.stop();
  }
});

test('stopping the sharing asks for the PIN', async () => {
  const server = await startServer({ AVISA_ALERTS__TRAIL_EVERY: '1s' });
  try {
    const { page, context } = await phonePage(browser, server.base);
    const points = [];
    page.on('request', (r) => {
      if (r.method() === 'POST' && /\/locations$/.test(r.url())) points.push(r.url());
    });
    await page.waitForSelector('h1');
    await onboard(page, server);
    await addContact(page, { name: 'Lupita', phone: '(213) 555-0142', language: 'es', template: 'Familia' });
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');
    await page.goto(`${server.base}/#/`);
    await page.click('#press');
    await page.waitForSelector('#sharing .sharing-on', { timeout: 20000 });
    await page.click('#sharing-stop');
    await page.fill('#sharing-pin', '0000');
    await page.click('#sharing-confirm');
    await page.waitForSelector('#sharing-pin[aria-invalid="true"]');
    assert.match(await page.textContent('#sharing-pin-error'), /PIN no es correcto/);
    assert.ok(await page.$('#sharing .sharing-on'), 'a wrong PIN stops nothing');
    await page.fill('#sharing-pin', '4821');
    await page.click('#sharing-confirm');
    await page.waitForSelector('#sharing-ended');
    const atStop = points.length;
    await context.setGeolocation({ latitude: 34.0650, longitude: -118.2551, accuracy: 15 });
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(points.length, atStop, 'nothing sent after the stop');

    // The history (the PIN was just entered): the alert with each message.
    await page.goto(`${server.base}/#/history`);
    await page.waitForSelector('#gate-pin, #history-alerts');
    if (await page.$('#gate-pin')) {
      await page.fill('#gate-pin', '4821');
      await page.click('button[type=submit]');
    }
    await page.waitForSelector('#history-alerts .history-alert');
    assert.equal(await page.locator('#history-alerts .history-alert').count(), 1);
    assert.match(await page.textContent('#history-alerts'), /Lupita/);
    await screenshot(page, 'app-history');
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    await server.stop();
  }
});
