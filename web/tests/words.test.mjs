// The words a person under stress reads: states by their Spanish names, a
// warning when an alert would reach no one, and the language setting that
// also changes the language of the person's own SMS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, launch, phonePage, onboard, screenshot, waitFor } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('states in Spanish, every profile error at once, the no-contacts warning, and the language setting follows into the profile', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await page.fill('#phone', '(213) 555-0100');
    await page.click('button[type=submit]');
    await page.waitForSelector('#code');
    const line = await waitFor(() => server.smsLog().find((l) => l.to === '+12135550100'), 10000, 'the code SMS');
    await page.fill('#code', line.body.match(/\b(\d{6})\b/)[1]);
    await page.click('button[type=submit]');
    await page.waitForSelector('#home_state');
    const names = await page.$$eval('#home_state option', (os) => os.map((o) => o.textContent));
    for (const name of ['Carolina del Norte', 'Nueva York', 'Nuevo México', 'Luisiana', 'Distrito de Columbia']) {
      assert.ok(names.includes(name), `${name} among ${names.join(', ')}`);
    }
    assert.ok(!names.includes('North Carolina'), 'no English name in Spanish');
    // The keyword comes with the number to text it to.
    assert.match(await page.textContent('#keyword-why'), /\+1 500-555-0006/, 'the service number as people read it');
    // Every problem of the form at once, each beside its field.
    await page.fill('#name', '   ');
    await page.fill('#cancel_pin', '12');
    await page.fill('#keyword', 'a b');
    await page.click('button[type=submit]');
    await page.waitForSelector('#keyword[aria-invalid="true"]');
    const invalid = await page.$$eval('[aria-invalid="true"]', (els) => els.map((e) => e.id));
    assert.deepEqual(invalid.sort(), ['cancel_pin', 'home_state', 'keyword', 'name'].sort());
    assert.equal(await page.evaluate(() => document.activeElement.id), 'name', 'the first one has the focus');
    await screenshot(page, 'app-profile-errors');
    await context.close();

    // Onboarded with no contact: home says the alert would reach only the
    // consulate, with the way to add one.
    const { page: p2 } = await phonePage(browser, server.base);
    await onboard(p2, server, '(213) 555-0101', '+12135550101');
    await p2.goto(`${server.base}/#/`);
    await p2.waitForSelector('#press');
    const warning = await p2.textContent('#no-contacts');
    assert.match(warning, /Aún no tienes contactos/);
    assert.equal(await p2.getAttribute('#no-contacts a', 'href'), '#/contacts');
    await screenshot(p2, 'app-home-no-contacts');

    // The language setting (behind the PIN) changes the profile's too.
    // (No gate yet: the PIN was entered a moment ago, when it was set.)
    await p2.goto(`${server.base}/#/settings`);
    await p2.waitForSelector('#gate-pin, #settings-language');
    if (await p2.$('#gate-pin')) {
      await p2.fill('#gate-pin', '4821');
      await p2.click('button[type=submit]');
    }
    await p2.waitForSelector('#settings-language');
    await p2.selectOption('#settings-language', 'en');
    const token = await p2.evaluate(() => localStorage.getItem('avisa.token'));
    await waitFor(async () => {
      const r = await fetch(`${server.base}/api/v1/profile`, { headers: { authorization: `Bearer ${token}` } });
      return (await r.json()).language === 'en';
    }, 10000, "the profile's language to follow");
  } finally {
    await server.stop();
  }
});

test('an ICE appointment is scheduled in the app and checked out with the PIN', async () => {
  const server = await startServer();
  try {
    const { page } = await phonePage(browser, server.base);
    await onboard(page, server);
    await page.goto(`${server.base}/#/checkins`);
    await page.waitForSelector('#gate-pin, #appointment_at');
    if (await page.$('#gate-pin')) {
      await page.fill('#gate-pin', '4821');
      await page.click('button[type=submit]');
    }
    await page.waitForSelector('#appointment_at');
    await page.fill('#place', 'Oficina de ICE, 300 N Los Angeles St');
    await page.fill('#note', 'Mi número A está en la carpeta azul.');
    await page.click('#schedule');
    await page.waitForSelector('.checkin[data-state="scheduled"]');
    assert.match(await page.textContent('.checkin h2'), /Oficina de ICE/);
    await screenshot(page, 'app-checkin');
    // The server keeps it, sealed: read back through the API.
    const token = await page.evaluate(() => localStorage.getItem('avisa.token'));
    const id = await page.$eval('.checkin button.safe', (b) => b.id.replace('checkout-', ''));
    // A wrong PIN: refused beside the field, the timer still runs.
    await page.fill(`#pin-${id}`, '0000');
    await page.click(`#checkout-${id}`);
    await page.waitForSelector(`#pin-${id}[aria-invalid="true"]`);
    await page.fill(`#pin-${id}`, '4821');
    await page.click(`#checkout-${id}`);
    await page.waitForSelector('text=Confirmado. No se enviará ninguna alerta');
    assert.equal(await page.$('.checkin'), null, 'no timer left running');
    const r = await fetch(`${server.base}/api/v1/checkins/${id}/checkout`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ pin: '4821' }),
    });
    assert.equal(r.status, 409, 'it ended already');
  } finally {
    await server.stop();
  }
});
