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

// Every template in both languages: each contact's SMS in the log begins
// with who is asking.
test('every template, in both languages, says who is asking', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    const templates = ['Familia', 'Abogado', 'Trabajo', 'Escuela'];
    const phones = [];
    let n = 0;
    for (const language of ['es', 'en']) {
      for (const template of templates) {
        const phone = `(213) 555-01${String(60 + n).padStart(2, '0')}`;
        phones.push({ e164: `+121355501${String(60 + n).padStart(2, '0')}`, language });
        n += 1;
        await addContact(page, { name: `${template} ${language}`, phone, language, template });
        await page.click('#save-contact');
        await page.waitForSelector('#add-contact');
      }
    }
    await page.goto(`${server.base}/#/`);
    await page.click('#press');
    await page.waitForSelector('#recipients', { timeout: 15000 });
    for (const { e164, language } of phones) {
      const line = await waitFor(() => server.smsLog().find((l) => l.to === e164), 15000, `the SMS to ${e164}`);
      const who = language === 'es' ? /^Avisa: Mar[ií]a Pérez pide ayuda:\n/ : /^Avisa: Mar[ií]a Pérez needs help:\n/;
      assert.match(line.body, who, line.body);
    }
    await context.close();
  } finally {
    await server.stop();
  }
});

// Six practices (one past the limit of five in ten minutes), then the real
// press: the button never leaves home, no practice screen offers the
// keyword, and the real alert reaches every contact, nothing withdrawn.
test('six practices, then the real press reaches every contact', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    for (const [name, phone] of [['Mamá', '(213) 555-0181'], ['Papá', '(213) 555-0182']]) {
      await addContact(page, { name, phone, language: 'es', message: 'Me detuvieron.' });
      await page.click('#save-contact');
      await page.waitForSelector('#add-contact');
    }
    await page.goto(`${server.base}/#/settings`);
    await page.fill('#countdown', '0');
    for (let i = 1; i <= 6; i += 1) {
      await page.goto(`${server.base}/#/`);
      await page.waitForSelector('#press', { state: 'visible' });
      await page.goto(`${server.base}/#/practice`);
      await page.click('#practice-press');
      if (i <= 5) await page.waitForSelector('#recipients', { timeout: 15000 });
      else await page.waitForSelector('text=Ya practicaste mucho');
      assert.ok(await page.$('.practice-banner'), `practice ${i} on a practice screen`);
      assert.equal(await page.$('#sms-fallback'), null, `practice ${i} never offers the keyword`);
    }
    await page.goto(`${server.base}/#/`);
    await page.waitForSelector('#press', { state: 'visible' });
    await page.click('#press');
    await page.waitForSelector('#recipients', { timeout: 15000 });
    await waitFor(async () => {
      const s = await page.$$eval('#recipients li', (lis) => lis.map((li) => li.dataset.status));
      return s.length === 3 && s.every((x) => x === 'sent' || x === 'delivered');
    }, 15000, 'every recipient sent, none withdrawn');
    for (const to of ['+12135550181', '+12135550182']) {
      assert.equal(server.smsLog().filter((l) => l.to === to).length, 1, `${to} got the real alert once`);
    }
    assert.equal(await page.$('.practice-banner'), null, 'the real alert is not shown as a practice');
    await context.close();
  } finally {
    await server.stop();
  }
});

// Codes asked faster than usual: the phone solves the proof of work on its
// own, and the person registers as always.
test('a registration under a flood solves the challenge and goes on', async () => {
  const server = await startServer({ AVISA_LIMITS__CODES_WITHOUT_CHALLENGE_PER_MINUTE: '0' });
  try {
    // A bot without the challenge gets no code.
    const bot = await fetch(`${server.base}/api/v1/devices`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ phone: '+12135550199' }) });
    assert.equal(bot.status, 429);
    assert.equal((await bot.json()).error.code, 'challenge_required');
    const { page, context } = await phonePage(browser, server.base);
    const started = Date.now();
    await onboard(page, server);
    console.log(`onboarding with the proof of work: ${Date.now() - started} ms`);
    assert.equal(server.smsLog().filter((l) => l.to === '+12135550199').length, 0);
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    await server.stop();
  }
});
