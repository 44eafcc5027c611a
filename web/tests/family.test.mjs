// The family's moment (issue 34): what ICE's detainee locator needs, written
// once behind the PIN, reaches only the contacts the person marked, in a
// second SMS after the alert.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, phonePage, onboard, addContact, waitFor, screenshot } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('the locator details: written behind the PIN, sent only to the marked contact', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    await addContact(page, { name: 'Abogada', phone: '(213) 555-0177', language: 'es', message: 'Me detuvieron.' });
    await page.check('#contact-locator');
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');
    await addContact(page, { name: 'Primo', phone: '(213) 555-0178', language: 'es', message: 'Me detuvieron.' });
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');
    // The same number again: a warning, and one message still.
    await addContact(page, { name: 'Tía', phone: '213 555 0178', language: 'es', message: 'Otra vez.' });
    await page.click('#save-contact');
    await page.waitForSelector('.same-number:has-text("Mismo número que Primo")');
    await screenshot(page, 'app-same-number');

    await page.goto(`${server.base}/#/settings`);
    await page.click('#locator-link');
    await page.waitForSelector('#legal_name');
    await page.fill('#legal_name', 'María Guadalupe Pérez López');
    await page.fill('#birth_country', 'México');
    await page.fill('#birth_date', '1990-05-01');
    await page.fill('#a_number', 'A12');
    await page.click('#locator-save');
    await page.waitForSelector('#a_number-error:not(:empty)');
    await page.fill('#a_number', 'A 012-345-678');
    await page.click('#locator-save');
    await page.waitForSelector('.note:has-text("Guardado.")');
    assert.equal(await page.inputValue('#a_number'), 'A012345678');
    await screenshot(page, 'app-locator');

    await page.goto(`${server.base}/#/`);
    await page.click('#press');
    await page.waitForSelector('#recipients', { timeout: 15000 });
    const sms = await waitFor(() => server.smsLog().find((l) => l.to === '+12135550177' && l.body.includes('locator.ice.gov')), 10000, 'the locator SMS');
    assert.match(sms.body, /Numero A: 012345678/);
    assert.match(sms.body, /1 de mayo de 1990/);
    await waitFor(() => server.smsLog().some((l) => l.to === '+12135550178'), 10000, 'the alert to the other contact');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(server.smsLog().filter((l) => l.to === '+12135550178').length, 1, 'the unmarked contact gets the alert only, once although saved twice');
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    await server.stop();
  }
});
