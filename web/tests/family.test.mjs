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

    // The name at the end of each contact's SMS, the person's choice.
    await page.goto(`${server.base}/#/settings`);
    await page.waitForSelector('#name-at-end');
    await page.selectOption('#name-at-end', 'end');
    await page.waitForSelector('.note:has-text("tu nombre va donde elegiste")');
    assert.equal(await page.inputValue('#name-at-end'), 'end');

    await page.goto(`${server.base}/#/`);
    await page.click('#press');
    await page.waitForSelector('#recipients', { timeout: 15000 });
    const alertSms = await waitFor(() => server.smsLog().find((l) => l.to === '+12135550177' && l.body.startsWith('Me detuvieron.')), 10000, 'the alert SMS');
    assert.match(alertSms.body, /\nAvisa: Maria Pérez pide ayuda\.$/);
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

// The phone reader's table (crates/avisa-core/data/phone-readings.csv, made
// from libphonenumber's metadata and the numbering plans): a sample of every
// rule typed into the contact editor, and every row read by the server the
// editor asks.
test('the phone-reader table, in the contact editor', async () => {
  const { readFileSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const csv = readFileSync(fileURLToPath(new URL('../../crates/avisa-core/data/phone-readings.csv', import.meta.url)), 'utf8');
  const rows = csv.trim().split('\n').slice(1).map((l) => {
    const [input, country, expected, rule] = l.split(',');
    return { input, country, expected, rule };
  });
  assert.ok(rows.length >= 500, `${rows.length} rows`);
  const digits = (s) => s.replace(/\D/g, '');
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    // Every row, through the editor's own request.
    const wrong = await page.evaluate(async (all) => {
      const out = [];
      for (const r of all) {
        const res = await fetch('/api/v1/phone/read', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ phone: r.input, country: r.country || undefined }) });
        const body = await res.json();
        const got = res.ok ? body.phone
          : body.error && body.error.code === 'phone_ambiguous' ? `ask:${body.error.readings.map((x) => x.phone).join('|')}` : 'invalid';
        if (got !== r.expected) out.push(`${r.input} in ${r.country || '-'}: want ${r.expected}, got ${got}`);
      }
      return out;
    }, rows);
    assert.deepEqual(wrong, []);

    // A sample of every rule, typed.
    await page.click('#add-contact');
    await page.waitForSelector('#contact-phone');
    const byRule = {};
    for (const r of rows) (byRule[r.rule] ||= []).push(r);
    const sample = Object.values(byRule).flatMap((list) => list.filter((_, i) => i % Math.ceil(list.length / 6) === 0));
    for (const r of sample) {
      await page.selectOption('#contact-phone-country', r.country);
      await page.fill('#contact-phone', r.input);
      await page.waitForTimeout(450);
      await waitFor(async () => {
        const shown = (await page.textContent('#contact-phone-readback')) || '';
        const choices = await page.locator('#contact-phone-choices button').allTextContents();
        if (r.expected === 'invalid') return shown === '' && choices.length === 0;
        if (r.expected.startsWith('ask:')) return JSON.stringify(choices.map(digits)) === JSON.stringify(r.expected.slice(4).split('|').map(digits));
        return digits(shown) === digits(r.expected) && digits(shown) !== '';
      }, 5000, `${r.input} in ${r.country || '-'} read as ${r.expected}`);
    }

    // "1" and ten digits with Mexico chosen: both readings; the Mexican one
    // chosen stays chosen.
    await page.selectOption('#contact-phone-country', 'MX');
    await page.fill('#contact-phone', '1-415-757-5405');
    await waitFor(async () => (await page.locator('#contact-phone-choices button').count()) === 2, 5000, 'both readings');
    const readings = await page.locator('#contact-phone-choices button').allTextContents();
    assert.match(readings[0], /^Estados Unidos/);
    await page.locator('#contact-phone-choices button').nth(1).click();
    await waitFor(async () => (await page.textContent('#contact-phone-readback')) === 'México · +52 415 757 5405', 5000, 'the Mexican reading kept');
    assert.equal(await page.locator('#contact-phone-choices button').count(), 0);
    await context.close();
  } finally {
    await server.stop();
  }
});

// The counter counts as Twilio bills: an emoji sequence that would straddle
// a part's end moves whole to the next part (the same cases as the server's
// own test, avisa-core/src/sms.rs).
test('the counter never splits an emoji sequence', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    const got = await page.evaluate(async () => {
      const { analyze } = await import('/sms.js');
      const family = '👨\u200d👩\u200d👧\u200d👦';
      return [
        analyze(`${'á'.repeat(130)}${family}${'á'.repeat(56)}`).segments,
        analyze(`${'á'.repeat(130)}${family}${'á'.repeat(57)}`).segments,
        analyze(`${'á'.repeat(66)}🇲🇽`).segments,
        analyze(`${'á'.repeat(66)}👍🏽`).segments,
      ];
    });
    // 66 + a flag (4 units) = 70: one part; 66 + 👍🏽 (4) = 70: one part.
    assert.deepEqual(got, [3, 4, 1, 1]);
    await context.close();
  } finally {
    await server.stop();
  }
});
