// The phone app is fast and offline-first: its files travel compressed, the
// first load is small, and a reopen costs almost nothing before the button
// can be pressed, or nothing at all with no network.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';

import { startServer, launch, phonePage, onboard, screenshot } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

/// A TCP relay in front of the server that counts every byte the server
/// sends to the browser (headers included), with the time it went.
async function byteCounter(base) {
  const target = new URL(base);
  const chunks = [];
  const sockets = new Set();
  const relay = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.on('data', (d) => chunks.push({ at: Date.now(), n: d.length }));
    upstream.pipe(client);
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise((r) => relay.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${relay.address().port}`,
    bytesUntil(at) { return chunks.filter((c) => c.at <= at).reduce((s, c) => s + c.n, 0); },
    reset() { chunks.length = 0; },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => relay.close(r));
    },
  };
}

/// Waits for the button and says when it appeared (the page's own clock,
/// which is this machine's).
async function buttonAt(page) {
  await page.waitForSelector('#press');
  return page.evaluate(() => window.__pressShownAt || Date.now());
}

test('files travel compressed, the first load is small, a reopen costs at most 2 KB, offline costs nothing', async () => {
  const server = await startServer();
  const counter = await byteCounter(server.base);
  try {
    // Each encoding as asked, the same file whatever the encoding, and a
    // 304 for a file the browser already has.
    const plain = await fetch(`${server.base}/app.js`, { headers: { 'accept-encoding': 'identity' } });
    const text = await plain.text();
    for (const encoding of ['br', 'gzip']) {
      const r = await fetch(`${server.base}/app.js`, { headers: { 'accept-encoding': encoding } });
      assert.equal(r.headers.get('content-encoding'), encoding);
      assert.match(r.headers.get('vary') || '', /accept-encoding/i);
      assert.equal(await r.text(), text, `${encoding} decodes to the same file`);
    }
    const again = await fetch(`${server.base}/app.js`, { headers: { 'if-none-match': plain.headers.get('etag') } });
    assert.equal(again.status, 304);

    // The first visit: everything the app needs, its worker's copy included.
    const context = await browser.newContext({
      viewport: { width: 360, height: 640 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
      geolocation: { latitude: 34.0505, longitude: -118.2551, accuracy: 15 }, permissions: ['geolocation'], locale: 'es-US',
    });
    await context.addInitScript(() => {
      new MutationObserver(() => {
        if (!window.__pressShownAt && document.getElementById('press')) window.__pressShownAt = Date.now();
      }).observe(document, { childList: true, subtree: true });
    });
    const page = await context.newPage();
    await page.goto(counter.base);
    await page.waitForSelector('#phone');
    await page.waitForFunction(() => navigator.serviceWorker.ready.then((r) => r.active && r.active.state === 'activated'));
    await new Promise((r) => setTimeout(r, 500));
    const first = counter.bytesUntil(Date.now());
    console.log(`first load: ${first} bytes on the wire`);
    // 30 KB until the phone stopped keeping the person on its disk (issue
    // 32): a waiting press in a file that deletion really removes, with a
    // fallback that never loses it, costs about half a kilobyte more; the
    // counter's "who asks" line, the date a contact said STOP and the
    // alert-limit note (issues 34, 35, 33) about as much again.
    assert.ok(first <= 32 * 1024, `the first load took ${first} bytes`);

    // Onboarded, then opened again with the worker's copy.
    await onboard(page, server);
    await page.goto(`${counter.base}/#/`);
    await page.waitForSelector('#press');
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
    await page.close();
    counter.reset();
    const reopened = await context.newPage();
    await reopened.goto(counter.base);
    const shown = await buttonAt(reopened);
    const reopen = counter.bytesUntil(shown);
    console.log(`reopen: ${reopen} bytes on the wire before the button`);
    assert.ok(reopen <= 2048, `a reopen took ${reopen} bytes before the button`);
    await screenshot(reopened, 'app-reopened');

    // No network at all: the button still comes.
    await reopened.close();
    await context.setOffline(true);
    const offline = await context.newPage();
    await offline.goto(counter.base).catch(() => {});
    await offline.waitForSelector('#press');
    assert.equal(await offline.textContent('#press'), 'AVISAR');
    await context.close();
  } finally {
    await counter.close();
    await server.stop();
  }
});

test('the first screen needs the page and one parallel batch: no module is found only by another', async () => {
  const server = await startServer();
  try {
    const context = await browser.newContext({ viewport: { width: 360, height: 640 }, isMobile: true, locale: 'es-US' });
    // Whatever the worker would serve from its cache: this is a first visit.
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const requests = [];
    cdp.on('Network.requestWillBeSent', (e) => {
      requests.push({ url: e.request.url, initiator: e.initiator.type, at: e.timestamp });
    });
    await page.goto(server.base);
    // The first screen: the app has replaced "Cargando…" with what it shows.
    await page.waitForFunction(() => !document.querySelector('#app .loading') && document.querySelector('#app').children.length > 0);
    const shownAt = await cdp.send('Runtime.evaluate', { expression: '0' }).then(() => Date.now());
    assert.ok(shownAt > 0);
    const ownScripts = requests.filter((r) => r.url.startsWith(server.base) && r.url.endsWith('.js') && !r.url.endsWith('/sw.js'));
    const names = ownScripts.map((r) => new URL(r.url).pathname);
    for (const first of ['/app.js', '/i18n.js', '/sms.js', '/store.js', '/countries.js']) {
      assert.ok(names.includes(first), `${first} loaded: ${names}`);
    }
    // Every module of the first screen was asked for by the page itself
    // (its modulepreload links), none discovered by running another.
    const chained = ownScripts.filter((r) => r.initiator !== 'parser');
    assert.deepEqual(chained.map((r) => `${new URL(r.url).pathname} (${r.initiator})`), []);
    // And nothing else of ours before the screen: the page, its style, its
    // icon and manifest, the batch of modules, and the app's first API call.
    const ours = requests.filter((r) => r.url.startsWith(server.base));
    assert.ok(ours.length <= 12, ours.map((r) => `${new URL(r.url).pathname} ${r.initiator}`).join('\n'));
    await context.close();
  } finally {
    await server.stop();
  }
});
