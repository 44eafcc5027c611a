// The consulate console in real headless Chromium against a real server.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { createRequire } from 'node:module';

import { startServer, launch, addStaff, staffCommand, pressViaApi, waitFor, screenshot } from './harness.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/// axe-core on what the console shows now: nothing serious or critical.
async function axe(page, screen) {
  await page.addScriptTag({ path: axePath });
  const { violations } = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
  }));
  const grave = violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  assert.deepEqual(grave, [], `${screen}: axe found ${grave.join('; ')}`);
}

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('a supervisor logs in, sees a new alert appear live, and handles it to the end', async () => {
  const server = await startServer();
  try {
    await addStaff(server, 'ana.supervisora', 'los-angeles', 'supervisor', 'correct horse battery staple');
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'es-MX' });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // Nothing the console loads comes from anywhere but Avisa itself.
    const elsewhere = [];
    page.on('request', (r) => { if (!r.url().startsWith(server.base) && !r.url().startsWith('data:')) elsewhere.push(r.url()); });
    await page.goto(`${server.base}/console`);

    // Wrong password first, then the right one.
    await page.fill('#username', 'ana.supervisora');
    await page.fill('#password', 'not the password');
    await page.click('button[type=submit]');
    await page.waitForSelector('text=Usuario o contraseña incorrectos.');
    await page.fill('#password', 'correct horse battery staple');
    await page.click('button[type=submit]');
    await page.waitForSelector('#queue');
    await page.waitForSelector('text=No hay alertas con estos filtros.');

    // A person presses in Los Angeles: the alert appears without a reload.
    const alert = await pressViaApi(server, '(213) 555-0100', { lat: 34.0505, lon: -118.2551, accuracy_m: 18 });
    const row = `#queue li[data-id="${alert.alert_id}"]`;
    await page.waitForSelector(row, { timeout: 5000 });
    assert.match(await page.textContent(row), /Juana García/);
    assert.match(await page.textContent(row), /Nueva/);
    await screenshot(page, 'console-queue');

    await page.click(row);
    await page.waitForSelector('#ack');
    // What a dispatcher needs: the case number, a place name, each
    // contact's number to call, what each was sent and when.
    assert.match(await page.textContent('#case-number'), /Caso LAX-20\d\d-0001/);
    assert.match(await page.textContent('#place'), /Cerca de Los Angeles, California/);
    assert.ok(await page.$('#recipients a[href^="tel:+1213555"]'), 'a contact can be called');
    assert.match(await page.textContent('#recipients'), /Me detuvieron|Ubicacion/);
    assert.ok(await page.$('#last-fix time[title$="UTC"]'), 'UTC on hover');
    assert.ok((await page.textContent('#next-steps')).length > 10, 'the checklist of next steps');
    assert.equal(await page.$$eval('#facilities-near li', (l) => l.length), 3, 'the nearest detention facilities');
    assert.match(await page.textContent('#facilities-near'), /, CA · /);
    assert.match(await page.textContent('#coords'), /34\.05050, -118\.25510 · precisión ±18 m/);
    assert.ok(await page.$('a[href="tel:+12135550100"]'), 'the person can be called');
    // The trail and the consulate are drawn on the map (vector markers).
    await page.waitForFunction(() => document.querySelectorAll('#map .leaflet-interactive').length >= 3);
    // No tile server: the base map comes from Avisa itself, states and
    // counties drawn (nothing fetched from anywhere else).
    await page.waitForSelector('#map[data-base="drawn"]', { timeout: 10000 });
    assert.ok(await page.$$eval('#map .leaflet-base-pane path', (p) => p.length) >= 3, 'land, counties and states drawn');
    await screenshot(page, 'console-detail');

    await page.click('#ack');
    await page.waitForSelector('#timeline >> text=Caso tomado');
    await page.fill('#note-text', 'Hablé con su hermana; está en Adelanto.');
    await page.click('#add-note');
    await page.waitForSelector('#timeline >> text=Hablé con su hermana');
    // A call goes on the timeline in words.
    await page.selectOption('#call-with', 'contact');
    await page.selectOption('#call-result', 'spoke');
    await page.fill('#call-note', 'La hermana va al centro');
    await page.click('#call-save');
    await page.waitForSelector('#timeline >> text=Un contacto: habló · La hermana va al centro');
    // Safe defaults: assigned to the officer signed in, no outcome chosen,
    // and a resolution asks to confirm.
    await waitFor(async () => (await page.$eval('#assign-to', (s) => s.value)) === 'ana.supervisora', 5000, 'assign defaults to me');
    assert.equal(await page.$eval('#outcome', (s) => s.value), '');
    await page.selectOption('#outcome', 'detained');
    await page.fill('#facility', 'adelanto');
    const facility = await waitFor(async () => page.$eval('#facility-list', (l) => (l.options[0] ? l.options[0].value : null)), 5000, 'facility suggestions');
    await page.fill('#facility', facility);
    await page.click('#resolve');
    await page.waitForSelector('#resolve-confirm');
    assert.match(await page.textContent('#resolve-confirm-box'), /¿Cerrar el caso como «Detenida»\?/);
    assert.equal(await page.$('#outcome-shown'), null, 'nothing resolved before the confirmation');
    await page.click('#resolve-confirm');
    await page.waitForSelector('#outcome-shown');
    assert.match(await page.textContent('#outcome-shown'), /Detenida — .*ADELANTO/i);
    // A resolved case leaves the queue of open cases.
    await page.waitForSelector(row, { state: 'detached', timeout: 5000 });

    // The audit shows every step.
    await page.click('#tab-audit');
    await page.waitForSelector('#audit tbody tr');
    const audit = await page.$$eval('#audit tbody tr', (rows) => rows.map((r) => r.children[2].textContent));
    for (const action of ['entró', 'abrió el caso', 'tomó el caso', 'nota', 'llamada (Un contacto: habló)', 'resolvió']) {
      assert.ok(audit.includes(action), `audit has ${action}: ${audit}`);
    }
    // Who resolved it, not how: the audit outlives a deleted person's case.
    assert.ok(!audit.some((a) => a.includes('Detenida')), `no outcome in the audit: ${audit}`);
    // Audit lines name the case by its number.
    const cases = await page.$$eval('#audit tbody tr', (rows) => rows.map((r) => r.children[3].textContent));
    assert.ok(cases.some((c) => /^LAX-20\d\d-0001$/.test(c)), `case numbers in the audit: ${cases}`);
    await screenshot(page, 'console-audit');
    await page.click('#tab-stats');
    await page.waitForSelector('#stat-alerts');
    assert.equal(await page.textContent('#stat-alerts'), '1');
    await screenshot(page, 'console-stats');

    // English is one click away.
    await page.click('#lang');
    await page.waitForSelector('#tab-queue >> text=Alerts');
    assert.deepEqual(errors, []);
    assert.deepEqual(elsewhere, [], 'no request left the server');
    await context.close();
  } finally {
    await server.stop();
  }
});

test('a note being written survives a colleague\'s change that arrives while typing', async () => {
  const server = await startServer();
  try {
    await addStaff(server, 'ana.supervisora', 'los-angeles', 'supervisor', 'correct horse battery staple');
    await addStaff(server, 'beto.guardia', 'los-angeles', 'operator', 'correct horse battery staple');
    const signIn = async (username) => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'es-MX' });
      const page = await context.newPage();
      await page.goto(`${server.base}/console`);
      await page.fill('#username', username);
      await page.fill('#password', 'correct horse battery staple');
      await page.click('button[type=submit]');
      await page.waitForSelector('#queue');
      return { context, page };
    };
    const ana = await signIn('ana.supervisora');
    const beto = await signIn('beto.guardia');
    const alert = await pressViaApi(server, '(213) 555-0100', { lat: 34.0505, lon: -118.2551, accuracy_m: 18 });
    const row = `#queue li[data-id="${alert.alert_id}"]`;
    for (const { page } of [ana, beto]) {
      await page.waitForSelector(row, { timeout: 5000 });
      await page.click(row);
      await page.waitForSelector('#ack');
    }
    // Ana's next look at the case is held until she has begun her note:
    // the answer to a live refresh that set out before she typed.
    let held = null;
    const asked = new Promise((resolve) => {
      ana.page.route(`**/api/v1/console/alerts/${alert.alert_id}`, async (route) => {
        if (route.request().method() !== 'GET' || held) return route.continue();
        held = route;
        resolve();
      });
    });
    // Beto takes the case; Ana's console hears of it and asks again.
    await beto.page.click('#ack');
    await beto.page.waitForSelector('#timeline >> text=Caso tomado');
    await asked;
    await ana.page.fill('#note-text', 'Hablé con su hermana');
    await held.continue();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await ana.page.inputValue('#note-text'), 'Hablé con su hermana', 'the note is not wiped');
    await ana.page.click('#add-note');
    await ana.page.waitForSelector('#timeline >> text=Hablé con su hermana');
    // Saved, the case is drawn anew: Beto's taking is there too.
    assert.match(await ana.page.textContent('#timeline'), /Caso tomado/);
    await ana.context.close();
    await beto.context.close();
  } finally {
    await server.stop();
  }
});

test('a laptop at 3 a.m.: the next action above the fold, the oldest waiting first, how many below', async () => {
  const server = await startServer();
  try {
    await addStaff(server, 'beto.guardia', 'los-angeles', 'operator', 'correct horse battery staple');
    // Eight people press, a moment apart: the first is the longest waiting.
    const alerts = [];
    for (let i = 0; i < 8; i++) {
      alerts.push(await pressViaApi(server, `(213) 555-01${10 + i}`, { lat: 34.0505 + i / 1000, lon: -118.2551, accuracy_m: 18 }, `Persona ${i + 1}`));
    }
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'es-MX' });
    const page = await context.newPage();
    const posted = [];
    page.on('request', (r) => { if (r.method() === 'POST') posted.push(new URL(r.url()).pathname); });
    await page.goto(`${server.base}/console`);
    await page.fill('#username', 'beto.guardia');
    await page.fill('#password', 'correct horse battery staple');
    await page.click('button[type=submit]');
    await page.waitForSelector('#queue li[data-id]');
    // An operator sees no tab that would only say "supervisors only".
    assert.equal(await page.$('#tab-audit'), null);
    assert.equal(await page.$('#tab-stats'), null);
    // The longest waiting is the first row, and the rows below the screen
    // are counted at its foot.
    assert.equal(await page.getAttribute('#queue li[data-id]', 'data-id'), alerts[0].alert_id);
    await page.waitForSelector('#queue-below:not([hidden])');
    assert.match(await page.textContent('#queue-below'), /^\d+ más abajo$/);
    await screenshot(page, 'console-laptop-queue');
    // The case opens with its next action within the first 768 px.
    await page.click(`#queue li[data-id="${alerts[0].alert_id}"]`);
    await page.waitForSelector('#ack');
    const ack = await page.$eval('#ack', (b) => { const r = b.getBoundingClientRect(); return { bottom: r.bottom + window.scrollY, text: b.textContent }; });
    assert.equal(ack.text, 'Tomar el caso');
    assert.ok(ack.bottom <= 768, `"Tomar el caso" ends at ${ack.bottom} px`);
    await screenshot(page, 'console-laptop-case');
    // An empty note is not sent; the console says so in its own language.
    const before = posted.length;
    await page.click('#add-note');
    await page.waitForSelector('text=Escriba la nota antes de agregarla.');
    assert.deepEqual(posted.slice(before), [], 'nothing was sent');
    // Taken, the next action is logging a call.
    await page.click('#ack');
    await page.waitForSelector('#next-call');
    await page.click('#next-call');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'call-with');
    // The map zooms to street level without tiles, with a scale.
    await page.waitForSelector('#map .leaflet-control-scale');
    // Dates are written the console's way (the browser's own field would
    // say mm/dd/yyyy whatever the console's language).
    assert.equal(await page.getAttribute('#f-to', 'placeholder'), 'dd/mm/aaaa');
    await page.fill('#f-to', '31/02/2026');
    await page.press('#f-to', 'Tab');
    await page.waitForSelector('text=Escriba la fecha como dd/mm/aaaa.');
    await page.fill('#f-to', '31/12/2020');
    await page.press('#f-to', 'Tab');
    await page.waitForSelector('text=No hay alertas con estos filtros.');
    await context.close();
  } finally {
    await server.stop();
  }
});

test('the API reference is drawn from the OpenAPI document, with nothing from elsewhere', async () => {
  const server = await startServer();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'es-MX' });
    const page = await context.newPage();
    const elsewhere = [];
    page.on('request', (r) => { if (!r.url().startsWith(server.base)) elsewhere.push(r.url()); });
    await page.goto(`${server.base}/console/api`);
    const press = page.locator('section.op', { has: page.locator('h3', { hasText: /^POST \/api\/v1\/alerts$/ }) });
    await press.waitFor();
    // Every route of the document is drawn, each with its statuses.
    const doc = await (await fetch(`${server.base}/api/openapi.json`)).json();
    const operations = Object.values(doc.paths).flatMap((item) => Object.keys(item).filter((m) => ['get', 'put', 'post', 'patch', 'delete'].includes(m)));
    assert.equal(await page.locator('section.op').count(), operations.length);
    assert.match(await press.textContent(), /202/);
    assert.match(await press.textContent(), /idempotency_key/);
    assert.deepEqual(elsewhere, []);
    await screenshot(page, 'api-reference');
    await context.close();
  } finally {
    await server.stop();
  }
});

test('the login page logs no error: a first visit asks nothing, a reload keeps the session, a logout forgets it', async () => {
  const server = await startServer();
  try {
    await addStaff(server, 'ana.supervisora', 'los-angeles', 'supervisor', 'correct horse battery staple');
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'es-MX' });
    const page = await context.newPage();
    const failed = [];
    page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${new URL(r.url()).pathname}`); });
    const logged = [];
    page.on('console', (m) => { if (m.type() === 'error') logged.push(m.text()); });
    await page.goto(`${server.base}/console`);
    await page.waitForSelector('#username');
    assert.deepEqual(failed, [], 'a first visit asks for nothing it cannot have');
    assert.deepEqual(logged, []);
    assert.match(await page.getAttribute('meta[name=description]', 'content'), /Consola consular/);
    await page.fill('#username', 'ana.supervisora');
    await page.fill('#password', 'correct horse battery staple');
    await page.click('button[type=submit]');
    await page.waitForSelector('#queue');
    // A reload finds the session without logging in again.
    await page.reload();
    await page.waitForSelector('#queue');
    assert.ok(!(await page.$('#username')));
    // Logged out (the session gone on the server), a reload asks nothing.
    const { status } = await page.evaluate(async () => {
      const me = await (await fetch('/api/v1/console/me')).json();
      const r = await fetch('/api/v1/console/logout', { method: 'POST', headers: { 'x-csrf-token': me.csrf_token } });
      return { status: r.status };
    });
    assert.equal(status, 204);
    failed.length = 0;
    await page.reload();
    await page.waitForSelector('#username');
    assert.deepEqual(failed, []);
    await context.close();
  } finally {
    await server.stop();
  }
});

test('a session ended elsewhere clears the open tab within two seconds', async () => {
  const server = await startServer();
  try {
    await addStaff(server, 'ana.supervisora', 'los-angeles', 'supervisor', 'correct horse battery staple');
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'es-MX' });
    const page = await context.newPage();
    await page.goto(`${server.base}/console`);
    await page.fill('#username', 'ana.supervisora');
    await page.fill('#password', 'correct horse battery staple');
    await page.click('button[type=submit]');
    const alert = await pressViaApi(server, '(213) 555-0100', { lat: 34.0505, lon: -118.2551, accuracy_m: 18 });
    const row = `#queue li[data-id="${alert.alert_id}"]`;
    await page.waitForSelector(row, { timeout: 5000 });
    await page.click(row);
    await page.waitForSelector('#ack');
    assert.match(await page.textContent('main'), /Juana García/);
    // Her password is reset (a stolen laptop): the tab, left open on the
    // case, is told by its live stream, with no click and before any poll.
    await staffCommand(server, ['reset-password', 'ana.supervisora'], 'another horse battery staple\n');
    const reset = Date.now();
    // Within the 15 s poll only the stream can have told it (the stream
    // checks the session each second; the time is printed, not asserted).
    await page.waitForSelector('text=La sesión terminó. Entre otra vez.', { timeout: 5000 });
    console.log(`the screen cleared ${Date.now() - reset} ms after the reset`);
    assert.doesNotMatch(await page.textContent('body'), /Juana García|LAX-20/);
    assert.ok(await page.$('#username'), 'the login form is shown');
    await context.close();
  } finally {
    await server.stop();
  }
});

test('an alarm that insists: it sounds again until the case is taken, and the title counts', async () => {
  const server = await startServer({ AVISA_CONSOLE__ALARM_EVERY: '2s' });
  try {
    await addStaff(server, 'beto.guardia', 'los-angeles', 'operator', 'correct horse battery staple');
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'es-MX' });
    const page = await context.newPage();
    // Count every tone the page asks the sound card for.
    await page.addInitScript(() => {
      window.__tones = 0;
      const make = AudioContext.prototype.createOscillator;
      AudioContext.prototype.createOscillator = function tone() { window.__tones += 1; return make.call(this); };
    });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.base}/console`);
    await page.fill('#username', 'beto.guardia');
    await page.fill('#password', 'correct horse battery staple');
    await page.click('button[type=submit]');
    await page.waitForSelector('#queue');
    // One click, asked for once per load, before the browser allows sound.
    await page.waitForSelector('#arm-button');
    await page.click('#arm-button');
    await page.waitForSelector('#arm', { state: 'detached' });
    assert.equal(await page.title(), 'Avisa — Consola consular');

    // Two people press in the same second: two cases, two numbers.
    const [one, two] = await Promise.all([
      pressViaApi(server, '(213) 555-0101', { lat: 34.0505, lon: -118.2551, accuracy_m: 18 }),
      pressViaApi(server, '(213) 555-0102', { lat: 34.0522, lon: -118.2437, accuracy_m: 25 }),
    ]);
    await page.waitForSelector(`#queue li[data-id="${one.alert_id}"]`);
    await page.waitForSelector(`#queue li[data-id="${two.alert_id}"]`);
    await waitFor(async () => (await page.title()) === '(2) Avisa — Consola consular', 5000, 'the title counts two');
    assert.match(await page.$eval('link[rel="icon"]', (l) => l.href), /^data:image\/png/);
    const numbers = await page.$$eval('#queue .case-no', (n) => n.map((x) => x.textContent).sort());
    assert.equal(numbers.length, 2);
    assert.notEqual(numbers[0], numbers[1]);
    assert.match(numbers[0], /^LAX-20\d\d-000[12]$/);

    // It sounds again and again while nobody takes the cases.
    const rings = async () => Number(await page.$eval('body', (b) => b.dataset.rings || '0'));
    const first = await rings();
    await waitFor(async () => (await rings()) >= first + 2, 8000, 'the alarm to repeat');
    assert.equal(await page.$eval('body', (b) => b.dataset.alarm), 'on');
    // Every gateway up: no status bar.
    assert.equal(await page.$('#gateway-bar'), null);
    assert.ok(await page.evaluate(() => window.__tones) >= 6, 'tones were played');
    await screenshot(page, 'console-alarm');

    // Taken, one after the other: the alarm stops and the title clears.
    for (const a of [one, two]) {
      await page.click(`#queue li[data-id="${a.alert_id}"]`);
      await page.waitForSelector('#ack');
      await page.click('#ack');
      await page.waitForSelector('#timeline >> text=Caso tomado');
    }
    await waitFor(async () => (await page.title()) === 'Avisa — Consola consular', 5000, 'the title clears');
    assert.equal(await page.$eval('body', (b) => b.dataset.alarm), 'off');
    const after = await rings();
    await new Promise((r) => setTimeout(r, 4500));
    assert.equal(await rings(), after, 'silent once every case is taken');
    assert.deepEqual(errors, []);
    await context.close();
  } finally {
    await server.stop();
  }
});

test('axe finds nothing serious on any console tab, and long names wrap', async () => {
  const server = await startServer();
  try {
    await addStaff(server, 'carla.supervisora', 'los-angeles', 'supervisor', 'correct horse battery staple');
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'es-MX', bypassCSP: true });
    const page = await context.newPage();
    await page.goto(`${server.base}/console`);
    await page.waitForSelector('#username');
    await axe(page, 'login');
    await page.fill('#username', 'carla.supervisora');
    await page.fill('#password', 'correct horse battery staple');
    await page.click('button[type=submit]');
    await page.waitForSelector('#queue');
    const long = 'María de los Ángeles Guadalupe Hernández-Villaseñor Castañeda-Oropeza';
    const alert = await pressViaApi(server, '(213) 555-0100', { lat: 34.0505, lon: -118.2551, accuracy_m: 18 }, long);
    const row = `#queue li[data-id="${alert.alert_id}"]`;
    await page.waitForSelector(row);
    await axe(page, 'queue');
    await page.click(row);
    await page.waitForSelector('#ack');
    await page.waitForFunction(() => document.querySelectorAll('#map .leaflet-interactive').length >= 2);
    await axe(page, 'detail');
    await screenshot(page, 'console-long-name');
    // Nothing runs off the side of the page, whatever the length of a name.
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(wide <= 0, `the page scrolls sideways by ${wide} px`);
    await page.click('#tab-audit');
    await page.waitForSelector('#audit tbody tr');
    await axe(page, 'audit');
    await page.click('#tab-stats');
    await page.waitForSelector('#stat-alerts');
    await axe(page, 'stats');
    await page.click('#lang');
    await page.waitForSelector('#tab-queue >> text=Alerts');
    await axe(page, 'stats in English');
    await context.close();
  } finally {
    await server.stop();
  }
});
