// Practice is apart (issue 34): a practice the server refuses is never kept,
// never retried, never shown as a real alert, and the real button goes at
// once.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, phonePage, onboard, addContact, waitFor, screenshot, pendingKept } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('a refused practice says so in practice words, keeps nothing, and the real press goes at once', async () => {
  // One alert of each kind per window: the second practice is refused.
  const server = await startServer({ AVISA_ALERTS__RATE_LIMIT: '1' });
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    await addContact(page, { name: 'Mamá', phone: '(213) 555-0177', language: 'es', message: 'Ayuda' });
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');
    await page.goto(`${server.base}/#/settings`);
    await page.fill('#countdown', '0');

    await page.goto(`${server.base}/#/practice`);
    await page.click('#practice-press');
    await page.waitForSelector('#recipients', { timeout: 15000 });
    await page.goto(`${server.base}/#/`);
    await page.goto(`${server.base}/#/practice`);
    await page.click('#practice-press');
    await page.waitForSelector('text=Ya practicaste mucho');
    assert.ok(await page.$('.practice-banner'), 'a practice screen');
    assert.equal(await page.$('#sms-fallback'), null, 'never the keyword, which would raise a real alert');
    assert.equal(await page.$('#withdraw'), null);
    assert.equal(await pendingKept(page), false, 'nothing kept to retry');
    assert.match(await page.textContent('main'), /Tu botón real sigue listo/);
    await screenshot(page, 'app-practice-refused');

    // The real button, at once.
    await page.goto(`${server.base}/#/`);
    await page.click('#press');
    await page.waitForSelector('#recipients', { timeout: 15000 });
    await waitFor(() => server.smsLog().some((l) => l.to === '+12135550177'), 10000, 'the real alert reached the contact');

    // Past the limit a real press is never refused: raised, the consulate
    // has it, the contact already told is not told again, and it says so.
    await page.goto(`${server.base}/#/settings`);
    await page.goto(`${server.base}/#/`);
    await page.click('#press');
    await page.waitForSelector('text=Límite de alertas alcanzado', { timeout: 15000 });
    await screenshot(page, 'app-limit-reached');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(server.smsLog().filter((l) => l.to === '+12135550177').length, 1, 'the contact is not told twice');
    await context.close();
  } finally {
    await server.stop();
  }
});

test('practice rehearses "Estoy a salvo" with either PIN and sends nothing', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    await addContact(page, { name: 'Mamá', phone: '(213) 555-0177', language: 'es', message: 'Ayuda' });
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');
    await page.goto(`${server.base}/#/settings`);
    await page.fill('#countdown', '0');
    await page.waitForSelector('#duress_pin');
    await page.fill('#duress_pin', '2580');
    await page.fill('#duress_again', '2580');
    await page.click('#duress-save');
    await page.waitForSelector('.note:has-text("Listo.")');

    for (const pin of ['4821', '2580']) {
      await page.goto(`${server.base}/#/`);
      await page.goto(`${server.base}/#/practice`);
      await page.click('#practice-press');
      await page.waitForSelector('#recipients', { timeout: 15000 });
      // The practice's own confirmation reaches the phone first.
      await waitFor(() => server.smsLog().filter((l) => l.to === '+12135550100' && /PRACTICA/.test(l.body)).length >= (pin === '4821' ? 1 : 2), 10000, 'the practice confirmation');
      const before = server.smsLog().length;
      await page.click('#im-safe');
      await page.fill('#safe-pin', pin);
      if (pin === '4821') await screenshot(page, 'app-practice-im-safe');
      await page.click('#safe-confirm');
      await page.waitForSelector('.note:has-text("No se envió nada a nadie")');
      assert.ok(await page.$('.practice-banner'), 'still a practice screen');
      assert.match(await page.textContent('h1'), /Práctica terminada/);
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(server.smsLog().length, before, `nothing sent after the rehearsal with ${pin}`);
    }
    assert.equal(server.smsLog().filter((l) => l.to === '+12135550177').length, 0, 'the contact never heard of the practice');
    await context.close();
  } finally {
    await server.stop();
  }
});
