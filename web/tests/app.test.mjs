// The phone app in real headless Chromium against a real `avisa serve`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, launch, phonePage, onboard, addContact, addStaff, waitFor, screenshot, pendingKept } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

const statusesOf = (page) => page.$$eval('#recipients li', (lis) => lis.map((li) => li.dataset.status));

test('full journey: onboarding, two contacts, press, countdown, delivery, "I\'m safe"', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    const urls = [];
    const streams = [];
    page.on('request', (r) => {
      urls.push(r.url());
      if (r.url().includes('/events')) streams.push(r.headers().authorization || '');
    });
    // Spanish first.
    await page.waitForSelector('h1');
    assert.match(await page.textContent('h1'), /Un botón para avisar/);
    await onboard(page, server);

    // Contact 1: from the family template, in Spanish (accents: UCS-2, said
    // without the jargon; the system line then keeps its accents too).
    await addContact(page, { name: 'Mamá', phone: '+52 55 1234 5678', language: 'es', template: 'Familia' });
    await waitFor(async () => (await page.textContent('#counter')).includes('con acentos'), 5000, 'the live counter');
    assert.match(await page.textContent('#counter'), /caracteres · \d SMS \(con acentos o emojis cada SMS lleva menos letras\)/);
    assert.doesNotMatch(await page.textContent('#counter'), /UCS|GSM/);
    await waitFor(async () => (await page.textContent('#preview')).includes('Ubicación: https://www.openstreetmap.org/?mlat='), 5000, 'the preview');
    assert.match(await page.textContent('#preview'), /^Avisa: María Pérez pide ayuda:\nMe detuvo inmigración\./);
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');

    // A number the server refuses: the error shows next to the field.
    await addContact(page, { name: 'Jefe', phone: '555', language: 'en', message: 'I was detained. Call my lawyer.' });
    await page.click('#save-contact');
    await page.waitForSelector('#contact-phone[aria-invalid="true"]');
    assert.match(await page.textContent('#contact-phone-error'), /número no existe/);
    // Who asks ("Avisa: María Pérez needs help:"), the text, the longest
    // location line: 2 SMS.
    assert.match(await page.textContent('#counter'), /caracteres · 2 SMS$/);
    await page.fill('#contact-phone', '(213) 555-0142');
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');
    assert.equal(await page.locator('#contact-list .contact').count(), 2);

    await page.goto(`${server.base}/#/`);
    await page.waitForSelector('#press');
    await screenshot(page, 'app-home');

    // Press: the countdown covers the screen, then the status screen.
    await page.click('#press');
    await page.waitForSelector('.overlay .count');
    await screenshot(page, 'app-countdown');
    await page.waitForSelector('#recipients', { timeout: 15000 });
    assert.match(await page.textContent('.consulate'), /Los Ángeles/);
    assert.ok(await page.$('.consulate a[href^="tel:"]'), 'the consulate can be called');
    const done = await waitFor(async () => {
      const s = await statusesOf(page);
      return s.length === 3 && s.every((x) => x === 'sent' || x === 'delivered') && s;
    }, 15000, 'every recipient sent');
    assert.equal(done.length, 3);
    // The person sees the consulate: received, then, live, someone takes it.
    assert.match(await page.textContent('#consulate-received'), /^Recibió tu alerta · \d{1,2}:\d\d/);
    assert.ok(await page.$('#consulate-waiting'));
    await addStaff(server, 'ana.supervisora', 'los-angeles', 'supervisor', 'correct horse battery staple');
    const login = await fetch(`${server.base}/api/v1/console/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'ana.supervisora', password: 'correct horse battery staple' }),
    });
    const cookie = login.headers.get('set-cookie').split(';')[0];
    const { csrf_token: csrf } = await login.json();
    const alertId = await page.evaluate(() => localStorage.getItem('avisa.lastAlert'));
    const ack = await fetch(`${server.base}/api/v1/console/alerts/${alertId}/acknowledge`, { method: 'POST', headers: { cookie, 'x-csrf-token': csrf } });
    assert.equal(ack.status, 200, await ack.text());
    await page.waitForSelector('#consulate-acknowledged', { timeout: 10000 });
    assert.match(await page.textContent('#consulate-acknowledged'), /ya atiende tu caso · \d{1,2}:\d\d/);
    await screenshot(page, 'app-status');
    const log = server.smsLog();
    const mum = log.find((l) => l.to === '+525512345678');
    assert.ok(mum && mum.body.includes('mlat=34.05050&mlon=-118.25510'), 'the location went with the alert');

    // "I'm safe": a wrong PIN, then the right one.
    await page.click('#im-safe');
    await page.fill('#safe-pin', '0000');
    await page.click('#safe-confirm');
    await page.waitForSelector('#safe-pin[aria-invalid="true"]');
    assert.match(await page.textContent('#safe-pin-error'), /PIN no es correcto/);
    await page.fill('#safe-pin', '4821');
    await page.click('#safe-confirm');
    await page.waitForSelector('text=Alerta cancelada');
    // The two contacts are counted, not the person's own phone.
    assert.match(await page.textContent('.note'), /0 mensajes que no habían salido ya no saldrán, y 2 de quienes recibieron la alerta sabrán que estás a salvo/);
    // Home tells the truth about the last alert ("Volver al inicio" works
    // from a status shown at #/ too).
    await page.getByRole('link', { name: 'Volver al inicio' }).click();
    await page.waitForSelector('#last-alert');
    assert.equal(await page.textContent('#last-alert'), 'Tu última alerta fue cancelada');
    await page.goto(`${server.base}/#/status`);
    await page.waitForSelector('text=Alerta cancelada');
    await waitFor(() => server.smsLog().some((l) => l.to === '+525512345678' && l.body.includes('ha cancelado la alerta')), 10000, 'the "I\'m safe" SMS');
    assert.deepEqual(page.errors, []);
    // The live status came by a stream opened with the token in a header,
    // and no URL ever carried the token.
    assert.ok(streams.length > 0 && streams.every((a) => a.startsWith('Bearer ')), `streams: ${streams}`);
    assert.ok(!urls.some((u) => u.includes('access_token')), 'a token in a URL');
    await context.close();
  } finally {
    await server.stop();
  }
});

test('cancelling during the countdown sends nothing', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    await addContact(page, { name: 'Mamá', phone: '(213) 555-0177', language: 'es', message: 'Ayuda' });
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');
    await page.goto(`${server.base}/#/`);
    const posts = [];
    page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/v1/alerts')) posts.push(r); });
    await page.click('#press');
    await page.waitForSelector('#cancel-countdown');
    await page.click('#cancel-countdown');
    await page.waitForSelector('text=Cancelado. No se envió nada.');
    // Past the moment the countdown would have fired.
    await new Promise((r) => setTimeout(r, 6500));
    assert.equal(posts.length, 0, 'no alert request was made');
    assert.ok(!server.smsLog().some((l) => l.to === '+12135550177'), 'the contact got nothing');
    await context.close();
  } finally {
    await server.stop();
  }
});

test('a press while offline is kept, offers SMS, and goes exactly once when back online', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    await addContact(page, { name: 'Mamá', phone: '(213) 555-0177', language: 'es', message: 'Ayuda' });
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');
    // No countdown, to keep the test short.
    await page.goto(`${server.base}/#/settings`);
    await page.fill('#countdown', '0');
    await page.goto(`${server.base}/#/`);
    await page.waitForSelector('#press');
    // The service worker holds the shell before we go offline.
    await page.waitForFunction(() => navigator.serviceWorker && navigator.serviceWorker.controller !== null, null, { timeout: 10000 }).catch(async () => {
      await page.reload();
      await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 10000 });
    });
    const keys = [];
    page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/v1/alerts')) keys.push(JSON.parse(r.postData()).idempotency_key); });

    // A visit to the console (a link someone sent), then the connection
    // goes: the app still opens with its button (the worker never stored
    // the console in place of the app's start page).
    await page.goto(`${server.base}/console`);
    await page.waitForSelector('#username');
    await context.setOffline(true);
    await page.goto(`${server.base}/#/`);
    await page.waitForSelector('#press');
    await page.click('#press');
    await page.waitForSelector('text=Sin conexión');
    const sms = await page.getAttribute('#sms-fallback', 'href');
    // The app reopened (a new page): it keeps no copy of the keyword, so the
    // person types it.
    assert.equal(sms, 'sms:+15005550006');
    assert.match(await page.textContent('main'), /escribe tu palabra clave/);
    // Beside the SMS: the consulate to call, and the press to withdraw.
    // The consulate is known from the profile, which the phone keeps only in
    // memory: reopened offline, the 24-hour line (which routes the call).
    assert.equal(await page.getAttribute('#call-consulate', 'href'), 'tel:+15206237874');
    assert.ok(await page.$('#withdraw'));
    await screenshot(page, 'app-offline');
    // The app opens with no connection (service worker), and still knows.
    await page.reload();
    await page.waitForSelector('#sms-fallback');
    const cached = await page.evaluate(async () => (await (await caches.match('/')).text()));
    assert.ok(!cached.includes('Consola'), 'the cached start page is the app, not the console');
    // Withdrawing needs the PIN, which needs the server: offline, it says so
    // and the press stays.
    await page.click('#withdraw');
    await page.fill('#withdraw-pin', '4821');
    await page.click('#withdraw-confirm');
    await page.waitForSelector('text=Sin conexión no se puede comprobar tu PIN');
    assert.equal(await pendingKept(page), true, 'the press is kept');

    // Two minutes without connection: the SMS then say when it was pressed.
    await new Promise((r) => setTimeout(r, 125000));
    await context.setOffline(false);
    await page.evaluate(() => window.dispatchEvent(new Event('online')));
    await page.waitForSelector('#recipients', { timeout: 15000 });
    await waitFor(() => server.smsLog().filter((l) => l.to === '+12135550177').length === 1, 10000, 'the contact SMS');
    const late = server.smsLog().find((l) => l.to === '+12135550177').body;
    assert.match(late, /Ha pulsado el boton a las \d{1,2}:\d\d hora del Pacifico; enviado \d{1,2}:\d\d hora del Pacifico \(sin conexion\)/, late);
    // Retries, if any, used one key; the server made one alert.
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(keys.length >= 1);
    assert.equal(new Set(keys).size, 1, `one idempotency key: ${keys}`);
    assert.equal(server.smsLog().filter((l) => l.to === '+12135550177').length, 1, 'exactly one alert');
    assert.equal(server.smsLog().filter((l) => l.to === '+12135550100' && l.body.includes('tu alerta ha sido enviada')).length, 1);
    await context.close();
  } finally {
    await server.stop();
  }
});

test('a server shedding load (503): the app says it is retrying and the press goes with its key after Retry-After', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    await addContact(page, { name: 'Mamá', phone: '(213) 555-0177', language: 'es', message: 'Ayuda' });
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');
    await page.goto(`${server.base}/#/settings`);
    await page.fill('#countdown', '0');
    await page.goto(`${server.base}/#/`);
    await page.waitForSelector('#press');
    const keys = [];
    page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/v1/alerts')) keys.push(JSON.parse(r.postData()).idempotency_key); });
    // The first press meets a server at its limit, as `limits.presses_in_flight` answers.
    let refused = 0;
    await page.route('**/api/v1/alerts', async (route) => {
      if (route.request().method() === 'POST' && refused === 0) {
        refused += 1;
        await route.fulfill({ status: 503, headers: { 'retry-after': '1', 'content-type': 'application/json' }, body: JSON.stringify({ error: { code: 'busy', message: 'busy' } }) });
      } else {
        await route.continue();
      }
    });
    const pressed = Date.now();
    await page.click('#press');
    await page.waitForSelector('text=Reintentando…');
    await screenshot(page, 'app-busy');
    // Retry-After (1 s), not the 5 s retry of a lost connection.
    await page.waitForSelector('#recipients', { timeout: 4000 });
    assert.ok(Date.now() - pressed < 4000, 'retried after Retry-After');
    await waitFor(() => server.smsLog().filter((l) => l.to === '+12135550177').length === 1, 10000, 'the contact SMS');
    assert.equal(refused, 1);
    assert.equal(new Set(keys).size, 1, `one idempotency key: ${keys}`);
    await context.close();
  } finally {
    await server.stop();
  }
});

test('Spanish by default, English after switching, and it stays', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await page.waitForSelector('h1');
    assert.equal(await page.getAttribute('html', 'lang'), 'es');
    assert.match(await page.textContent('h1'), /Un botón para avisar/);
    assert.match(await page.textContent('button[type=submit]'), /Enviar código/);
    await page.click('#lang');
    await page.waitForSelector('text=One button to warn others');
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.match(await page.textContent('button[type=submit]'), /Send code/);
    await page.reload();
    await page.waitForSelector('text=One button to warn others');
    await page.click('#lang');
    await page.waitForSelector('text=Un botón para avisar');
    await context.close();
  } finally {
    await server.stop();
  }
});

test('practice, rights, the PIN gate, and deleting my data', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    await addContact(page, { name: 'Mamá', phone: '(213) 555-0177', language: 'es', message: 'Ayuda' });
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');

    await page.goto(`${server.base}/#/settings`);
    await page.fill('#countdown', '0');
    // No field a browser would remember or a password manager would keep.
    const remembered = await page.$$eval('input, textarea', (els) => els
      .filter((e) => e.type === 'password' || !['off', 'one-time-code'].includes(e.getAttribute('autocomplete') || 'on') || e.name === e.id)
      .map((e) => e.id));
    assert.deepEqual(remembered.filter((id) => id !== 'countdown'), [], 'fields a browser could remember');
    await page.goto(`${server.base}/#/practice`);
    await page.waitForSelector('.practice-banner');
    await page.click('#practice-press');
    await page.waitForSelector('#recipients', { timeout: 15000 });
    assert.match(await page.textContent('.practice-banner'), /MODO PRÁCTICA/);
    await waitFor(async () => (await statusesOf(page)).every((s) => s === 'sent'), 10000, 'the practice SMS');
    // After the live updates, the previews still show what the contact would get.
    assert.match(await page.textContent('main'), /Ayuda\nUbicacion: https:\/\/www\.openstreetmap\.org/);
    assert.ok(!server.smsLog().some((l) => l.to === '+12135550177'), 'practice reached only the person');
    await screenshot(page, 'app-practice');

    await page.goto(`${server.base}/#/rights`);
    await page.waitForSelector('.rights li');
    assert.match(await page.textContent('main'), /guardar silencio/);
    assert.match(await page.textContent('main'), /520 623 7874/);
    assert.match(await page.textContent('main'), /Consulado General de México en Los Ángeles/);

    // A fresh load forgets the unlock (it lives in memory only): a practice
    // press then leaves out the previews of what each contact would get, and
    // neither it nor home shows a contact's name, number or message.
    await page.goto(`${server.base}/#/practice`);
    await page.reload();
    await page.waitForSelector('.practice-banner');
    await page.click('#practice-press');
    await page.waitForSelector('#recipients', { timeout: 15000 });
    await waitFor(async () => (await statusesOf(page)).every((s) => s === 'sent'), 10000, 'the second practice SMS');
    const secrets = ['Mamá', '555-0177', '5550177', 'Ayuda'];
    const practiceText = await page.textContent('main');
    for (const secret of secrets) assert.ok(!practiceText.includes(secret), `${secret} shown without the PIN: ${practiceText}`);
    assert.match(practiceText, /MODO PRÁCTICA/);
    await screenshot(page, 'app-practice-locked');
    await page.goto(`${server.base}/#/`);
    await page.waitForSelector('#press');
    const homeText = await page.textContent('main');
    for (const secret of secrets) assert.ok(!homeText.includes(secret), `${secret} on home without the PIN`);

    // A fresh load asks for the PIN before showing contacts.
    await page.goto(`${server.base}/#/contacts`);
    await page.reload();
    await page.waitForSelector('#gate-pin');
    assert.equal(await page.locator('#contact-list').count(), 0, 'nothing shown before the PIN');
    await page.fill('#gate-pin', '1111');
    await page.click('button[type=submit]');
    await page.waitForSelector('#gate-pin[aria-invalid="true"]');
    await page.fill('#gate-pin', '4821');
    await page.click('button[type=submit]');
    await page.waitForSelector('#contact-list .contact');

    await page.goto(`${server.base}/#/settings`);
    await page.fill('#delete_pin', '4821');
    await page.getByRole('button', { name: 'Borrar todo' }).click();
    await page.waitForSelector('text=Tus datos fueron borrados.', { timeout: 5000 }).catch(async (e) => { await screenshot(page, 'debug-delete'); throw e; });
    assert.equal(await page.evaluate(() => localStorage.getItem('avisa.token')), null);
    // Nothing of the person stays in the browser's storage.
    const kept = await page.evaluate(() => ['avisa.token', 'avisa.phone', 'avisa.profileCache', 'avisa.lastAlert']
      .filter((k) => localStorage.getItem(k) !== null));
    assert.deepEqual(kept, []);
    // Nor in IndexedDB, nor in Cache Storage (which holds the app shell
    // only), nor anywhere else in localStorage: the test reads them all.
    const stored = await page.evaluate(async () => {
      const out = { localStorage: Object.keys(localStorage), indexedDB: [], caches: [] };
      for (const { name, version } of await indexedDB.databases()) {
        const db = await new Promise((res, rej) => { const r = indexedDB.open(name, version); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
        for (const store of db.objectStoreNames) {
          const all = await new Promise((res) => { const r = db.transaction(store).objectStore(store).getAll(); r.onsuccess = () => res(r.result); });
          out.indexedDB.push(...all.map((v) => JSON.stringify(v)));
        }
        db.close();
      }
      for (const name of await caches.keys()) {
        const cache = await caches.open(name);
        for (const req of await cache.keys()) out.caches.push({ url: new URL(req.url).pathname, body: await (await cache.match(req)).text() });
      }
      return out;
    });
    assert.deepEqual(stored.localStorage.filter((k) => k.startsWith('avisa.')), []);
    assert.deepEqual(stored.indexedDB, [], 'no record of a press or anything else');
    assert.ok(stored.caches.every((c) => !c.url.startsWith('/api/')), 'no API answer cached');
    // Each cached file is the server's own, byte for byte: the shell, with
    // nothing of the person written into it.
    for (const c of stored.caches) {
      const served = await fetch(`${server.base}${c.url}`).then((r) => r.text());
      assert.equal(c.body, served, `the cached ${c.url} is the app's own file`);
    }
    assert.ok(stored.caches.length > 0, 'the shell is cached (the check above saw something)');
    await context.close();
  } finally {
    await server.stop();
  }
});

test('numbers as people write them: a Mexican number is asked about, read back and saved as +52', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await page.waitForSelector('h1');
    // The person's own number: a Mexican form, country chosen.
    await page.selectOption('#phone-country', 'MX');
    await onboard(page, server, '044 664 123 4567', '+526641234567');

    // "55 1234 5678" exists in Mexico City and in New Jersey: asked, never guessed.
    await addContact(page, { name: 'Mamá', phone: '55 1234 5678', language: 'es', message: 'Me detuvieron. Llama al consulado.' });
    await waitFor(async () => (await page.locator('#contact-phone-choices button').count()) === 2, 5000, 'both readings offered');
    const readings = await page.locator('#contact-phone-choices button').allTextContents();
    assert.deepEqual(readings, ['México · +52 55 1234 5678', 'Estados Unidos · +1 551-234-5678']);
    await screenshot(page, 'app-number-ambiguous');
    // Saving without choosing saves nothing and asks again.
    await page.click('#save-contact');
    await page.waitForSelector('#contact-phone-error:has-text("Elige de qué país")');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'México · +52 55 1234 5678');
    await page.locator('#contact-phone-choices button').first().click();
    await waitFor(async () => (await page.textContent('#contact-phone-readback')) === 'México · +52 55 1234 5678', 5000, 'the reading shown back');
    assert.equal(await page.inputValue('#contact-phone-country'), 'MX');
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');

    // Country chosen first; old Mexican prefixes still work.
    await page.click('#add-contact');
    await page.fill('#contact-name', 'Tío');
    await page.selectOption('#contact-phone-country', 'MX');
    await page.fill('#contact-phone', '01 33 1234 5678');
    await page.fill('#contact-message', 'Me detuvieron.');
    await waitFor(async () => (await page.textContent('#contact-phone-readback')) === 'México · +52 33 1234 5678', 5000, 'the reading shown back');
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');

    // Written the way it is dialled from the US: its own country, no question.
    await addContact(page, { name: 'Prima', phone: '011 52 1 81 1234 5678', language: 'es', message: 'Me detuvieron.' });
    await waitFor(async () => (await page.textContent('#contact-phone-readback')) === 'México · +52 81 1234 5678', 5000, 'the reading shown back');
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');

    const list = await page.locator('#contact-list .kind').allTextContents();
    assert.deepEqual(list.map((l) => l.split(' · ').slice(0, 2).join(' · ')), [
      'México · +52 55 1234 5678', 'México · +52 33 1234 5678', 'México · +52 81 1234 5678',
    ]);
    await screenshot(page, 'app-numbers-saved');

    // What the server keeps is what the person saw: a practice press goes
    // to the person only, so read the contacts back from the API.
    const token = await page.evaluate(() => localStorage.getItem('avisa.token'));
    const unlock = await fetch(`${server.base}/api/v1/pin/check`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ pin: '4821' }),
    }).then((r) => r.json());
    const contacts = await fetch(`${server.base}/api/v1/contacts`, { headers: { authorization: `Bearer ${token}`, 'x-avisa-unlock': unlock.unlock } }).then((r) => r.json());
    assert.deepEqual(contacts.contacts.map((c) => c.phone), ['+525512345678', '+523312345678', '+528112345678']);
    await context.close();
  } finally {
    await server.stop();
  }
});

test('the duress PIN: the phone shows a cancel, the console an alert cancelled under duress', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await page.waitForSelector('h1');
    await onboard(page, server);
    await addContact(page, { name: 'Lupita', phone: '(213) 555-0177', language: 'es', message: 'Me detuvieron. Llama a la abogada.' });
    await page.click('#save-contact');
    await page.waitForSelector('#add-contact');

    // Settings: never the cancel PIN; then a duress PIN.
    await page.goto(`${server.base}/#/settings`);
    await page.waitForSelector('#duress_pin');
    await page.fill('#duress_pin', '4821');
    await page.fill('#duress_again', '4821');
    await page.click('#duress-save');
    await page.waitForSelector('#duress_pin-error:has-text("distinto de tu PIN")');
    await page.fill('#duress_pin', '2580');
    await page.fill('#duress_again', '2580');
    await page.click('#duress-save');
    await page.waitForSelector('.note:has-text("Listo.")');
    await page.locator('#duress_pin').scrollIntoViewIfNeeded();
    await screenshot(page, 'app-duress-settings');

    // The press, then "I'm safe" with the duress PIN: a cancel, as always.
    await page.goto(`${server.base}/#/`);
    await page.waitForSelector('#press');
    await page.click('#press');
    await page.waitForSelector('#recipients', { timeout: 15000 });
    await waitFor(async () => {
      const s = await page.$$eval('#recipients li', (lis) => lis.map((li) => li.dataset.status));
      return s.length === 2 && s.every((x) => x === 'sent' || x === 'delivered');
    }, 15000, 'every recipient sent');
    await page.click('#im-safe');
    await page.fill('#safe-pin', '2580');
    await page.click('#safe-confirm');
    await page.waitForSelector('text=Alerta cancelada');
    await screenshot(page, 'app-duress-cancelled');
    assert.ok(!(await page.textContent('main')).includes('presión'), 'nothing on the phone tells');

    const to = (n, text) => server.smsLog().some((l) => l.to === n && l.body.includes(text));
    await waitFor(() => to('+12135550177', 'SIGUE EN PIE'), 10000, 'the contact told the cancel was forced');
    await waitFor(() => to('+12135550100', 'ha cancelado la alerta anterior'), 10000, 'the ordinary confirmation to the person');
    assert.ok(!to('+12135550177', 'se encuentra bien'), 'no "I\'m safe" to the contact');
    await context.close();

    // The console: open, at the top, flagged.
    await addStaff(server, 'ana.supervisora', 'los-angeles', 'supervisor', 'correct horse battery staple');
    const staff = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'es-MX' });
    const console_ = await staff.newPage();
    await console_.goto(`${server.base}/console`);
    await console_.fill('#username', 'ana.supervisora');
    await console_.fill('#password', 'correct horse battery staple');
    await console_.click('button[type=submit]');
    await console_.waitForSelector('#queue li');
    const first = console_.locator('#queue li').first();
    assert.match(await first.getAttribute('class'), /duress/);
    assert.match(await first.textContent(), /Cancelada bajo presión/);
    await first.click();
    await console_.waitForSelector('.banner-duress');
    assert.match(await console_.textContent('.banner-duress'), /CANCELADA BAJO PRESIÓN/);
    await console_.waitForSelector('#timeline >> text=Cancelada bajo presión');
    await screenshot(console_, 'console-duress');
    await staff.close();
  } finally {
    await server.stop();
  }
});

test('a press refused with 401 is kept, offers the SMS at once, and is not withdrawn without a PIN the server checked', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    await page.goto(`${server.base}/#/settings`);
    await page.fill('#countdown', '0');
    await page.goto(`${server.base}/#/`);
    await page.waitForSelector('#press');
    // The server forgets this phone behind the app's back (as a reset
    // would): its token now answers 401.
    const token = await page.evaluate(() => localStorage.getItem('avisa.token'));
    const post = (path, body, unlock) => fetch(`${server.base}${path}`, {
      method: path === '/api/v1/profile' ? 'DELETE' : 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(unlock ? { 'x-avisa-unlock': unlock } : {}) },
      body: JSON.stringify(body),
    });
    const { unlock } = await (await post('/api/v1/pin/check', { pin: '4821' })).json();
    assert.equal((await post('/api/v1/profile', { pin: '4821' }, unlock)).status, 204);
    await page.click('#press');
    await page.waitForSelector('text=Tu alerta no salió');
    assert.match(await page.textContent('main'), /perdió su registro/);
    assert.equal(await page.getAttribute('#sms-fallback', 'href'), 'sms:+15005550006?body=AUXILIO');
    const kept = () => pendingKept(page);
    assert.equal(await kept(), true, 'a 401 throws nothing away');
    await screenshot(page, 'app-refused-401');
    await page.click('#withdraw');
    await page.fill('#withdraw-pin', '4821');
    await page.click('#withdraw-confirm');
    await page.waitForSelector('text=no se puede comprobar tu PIN');
    assert.equal(await kept(), true, 'not withdrawn on an unchecked PIN');
    await context.close();
  } finally {
    await server.stop();
  }
});

test('the SMS counter counts what each contact receives, and the app and the server count alike', async () => {
  const server = await startServer();
  try {
    const { page, context } = await phonePage(browser, server.base);
    await onboard(page, server);
    // Twenty texts (ten contacts each for two people, the most one may
    // have): each contact's counter against what the log gateway billed.
    const first = [
      'Me detuvieron.',
      'Mamá, me detuvo inmigración. Llama a la licenciada Torres.',
      'I have been detained by immigration. Please call my lawyer and pick up the kids at 3.',
      'x'.repeat(150),
      'Llama a la abogada € [urgente] {caso 123}',
      'Necesito ayuda 🙏 llama a mi hermana',
      'ñ'.repeat(120),
      'Soy María. Me llevaron. Mi número de caso A-123-456-789 está en la carpeta azul.',
      'á'.repeat(60),
      'OK',
    ];
    const second = [
      '¿Dónde estás? ¡Llama ya!',
      'Caret ^ pipe | tilde ~ backslash \\ all in the GSM extension table.',
      'g'.repeat(160),
      'ú'.repeat(70),
      'Please call Ms. Johnson at the school before 3:00 pm and tell her I cannot pick up Sofía and Mateo today; my sister Ana will go.',
      'Llévame los papeles: pasaporte, acta de nacimiento, matrícula consular y la carta de la abogada. Están en el cajón de la cocina.',
      '👨‍👩‍👧 familia',
      'Primera línea\nsegunda línea, después de un salto.',
      'Αθήνα Ελλάδα',
      'Me detuvieron en el trabajo, 5ª calle y Main. Llama al 213-555-0000.',
    ];
    const countAndPress = async (pg, messages, prefix) => {
      const counted = [];
      for (const [i, message] of messages.entries()) {
        await pg.waitForSelector('#add-contact');
        await addContact(pg, { name: `Contacto ${i}`, phone: `(213) 555-${prefix}${String(i).padStart(2, '0')}`, language: i % 3 === 2 ? 'en' : 'es', message })
          .catch(async (e) => { await screenshot(pg, `debug-add-${prefix}-${i}`); throw e; });
        await pg.waitForSelector('#counter[data-exact="true"]');
        counted.push(Number(await pg.getAttribute('#counter', 'data-segments')));
        await pg.click('#save-contact');
        await pg.waitForSelector('#contact-list', { timeout: 5000 }).catch(async () => {
          await screenshot(pg, `debug-counter-${prefix}-${i}`);
          throw new Error(`contact ${prefix}${i} not saved: ${await pg.textContent('main')}`);
        });
      }
      await pg.goto(`${server.base}/#/settings`);
      await pg.fill('#countdown', '0');
      await pg.goto(`${server.base}/#/`);
      await pg.click('#press');
      await pg.waitForSelector('#recipients', { timeout: 15000 });
      const billed = await waitFor(() => {
        const log = server.smsLog();
        const got = messages.map((_, i) => log.find((l) => l.to === `+1213555${prefix}${String(i).padStart(2, '0')}`));
        return got.every(Boolean) && got.map((l) => l.segments);
      }, 15000, 'every contact SMS');
      assert.deepEqual(counted, billed, `the counter said what the gateway billed (${prefix})`);
    };
    await countAndPress(page, first, '01');
    const other = await phonePage(browser, server.base);
    await onboard(other.page, server, '(213) 555-0188', '+12135550188');
    await countAndPress(other.page, second, '02');
    await other.context.close();

    // 500 random texts: the app's encoder and the server's agree.
    const token = await page.evaluate(() => localStorage.getItem('avisa.token'));
    const post = (path, body, unlock) => fetch(`${server.base}${path}`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(unlock ? { 'x-avisa-unlock': unlock } : {}) }, body: JSON.stringify(body),
    }).then((r) => r.json());
    const { unlock } = await post('/api/v1/pin/check', { pin: '4821' });
    const alphabet = [...'abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789.,;:!?¿¡áéíóúüñÁÉÍÓÚÑ€[]{}^~|\\çÇàèìòù'].concat(['🙏', '日', 'ß', 'Ω', '\n']);
    let seed = 42;
    const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    const texts = Array.from({ length: 500 }, () => Array.from({ length: 1 + rand(180) }, () => alphabet[rand(alphabet.length)]).join('').trim() || 'x');
    const bodies = [];
    for (const message of texts) {
      const p = await post('/api/v1/contacts/preview', { message, language: 'es' }, unlock);
      bodies.push(p);
    }
    const mismatches = await page.evaluate(async (previews) => {
      const { analyze } = await import('/sms.js');
      return previews.filter((p) => {
        const a = analyze(p.body);
        return a.encoding !== p.encoding || a.segments !== p.segments || a.characters !== p.characters;
      }).length;
    }, bodies);
    assert.equal(mismatches, 0, 'the app and the server count 500 random texts alike');
    await context.close();
  } finally {
    await server.stop();
  }
});
