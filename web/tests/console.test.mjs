// The consulate console in real headless Chromium against a real server.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, launch, addStaff, pressViaApi, waitFor, screenshot } from './harness.mjs';

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
    assert.match(await page.textContent('#coords'), /34\.05050, -118\.25510 · precisión ±18 m/);
    assert.ok(await page.$('a[href="tel:+12135550100"]'), 'the person can be called');
    // The trail and the consulate are drawn on the map (vector markers).
    await page.waitForFunction(() => document.querySelectorAll('#map .leaflet-interactive').length >= 3);
    await screenshot(page, 'console-detail');

    await page.click('#ack');
    await page.waitForSelector('#timeline >> text=Caso tomado');
    await page.fill('#note-text', 'Hablé con su hermana; está en Adelanto.');
    await page.click('#add-note');
    await page.waitForSelector('#timeline >> text=Hablé con su hermana');
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
    for (const action of ['login', 'view', 'acknowledge', 'note', 'resolve (detained)']) {
      assert.ok(audit.includes(action), `audit has ${action}: ${audit}`);
    }
    await screenshot(page, 'console-audit');
    await page.click('#tab-stats');
    await page.waitForSelector('#stat-alerts');
    assert.equal(await page.textContent('#stat-alerts'), '1');
    await screenshot(page, 'console-stats');

    // English is one click away.
    await page.click('#lang');
    await page.waitForSelector('#tab-queue >> text=Alerts');
    assert.deepEqual(errors, []);
    await context.close();
  } finally {
    await server.stop();
  }
});
