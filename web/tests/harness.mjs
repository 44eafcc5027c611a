// Shared by the browser tests: a real `avisa serve` on a temporary data
// directory with the log gateway, and Debian's Chromium driven by
// playwright-core.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..', '..');
export const artifacts = join(root, 'test-artifacts');
const bin = process.env.AVISA_BIN || join(root, 'target', 'debug', 'avisa');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function startServer(extraEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'avisa-browser-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'data')], {
    env: { ...process.env, AVISA_DATA_KEY_FILE: join(dir, 'data.key'), AVISA_PUBLIC_URL: base, AVISA_LOG: 'warn', AVISA_SMS__SERVICE_NUMBER: '+15005550006', AVISA_LIMITS__CODES_WITHOUT_CHALLENGE_PER_MINUTE: '1000', ...extraEnv },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`avisa serve did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    base,
    dir,
    smsLog() {
      const file = join(dir, 'data', 'sms-log.jsonl');
      if (!existsSync(file)) return [];
      return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/// Polls `check` until it returns something truthy, or fails after `ms`.
export async function waitFor(check, ms = 10000, what = 'a condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function launch() {
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/// A phone-sized page that knows where it is (downtown Los Angeles).
export async function phonePage(browser, base) {
  const context = await browser.newContext({
    viewport: { width: 360, height: 640 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    geolocation: { latitude: 34.0505, longitude: -118.2551, accuracy: 15 },
    permissions: ['geolocation'],
    locale: 'es-US',
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.errors = errors;
  await page.goto(base);
  return { context, page };
}

export async function screenshot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, `${name}.png`) });
}

/// Onboards a person through the app's own screens: phone, code (read from
/// the SMS log), profile, location, no contacts yet. Ends on the contacts
/// screen.
export async function onboard(page, server, phone = '(213) 555-0100', e164 = '+12135550100', keyword = 'auxilio') {
  await page.fill('#phone', phone);
  await page.click('button[type=submit]');
  await page.waitForSelector('#code');
  const line = await waitFor(() => server.smsLog().find((l) => l.to === e164), 10000, 'the code SMS');
  const code = line.body.match(/\b(\d{6})\b/)[1];
  await page.fill('#code', code);
  await page.click('button[type=submit]');
  await page.waitForSelector('#name');
  await page.fill('#name', 'María Pérez');
  await page.selectOption('#home_state', 'CA');
  await page.fill('#home_county', 'Los Angeles');
  await page.fill('#cancel_pin', '4821');
  await page.fill('#pin_again', '4821');
  await page.fill('#keyword', keyword);
  await page.click('button[type=submit]');
  await page.getByRole('button', { name: /Permitir ubicación|Allow location/ }).click();
  await page.waitForSelector('#add-contact');
}

export async function addContact(page, { name, phone, language, template, message }) {
  await page.click('#add-contact');
  await page.waitForSelector('#contact-name');
  await page.fill('#contact-name', name);
  await page.fill('#contact-phone', phone);
  await page.selectOption('#contact-language', language);
  if (template) await page.getByRole('button', { name: template, exact: true }).click();
  if (message) await page.fill('#contact-message', message);
}

/// Adds a staff account with the CLI, on the server's data directory.
export async function addStaff(server, username, consulate, role, password) {
  await new Promise((resolve, reject) => {
    const child = spawn(bin, ['staff', 'add', '--data-dir', join(server.dir, 'data'), '--username', username, '--consulate', consulate, '--role', role], {
      env: { ...process.env, AVISA_DATA_KEY_FILE: join(server.dir, 'data.key'), AVISA_LOG: 'warn' },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.stdin.end(`${password}\n`);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`avisa staff add failed: ${err}`))));
  });
}

/// Runs `avisa staff ARGS…` on the server's data directory (`input`: its stdin).
export async function staffCommand(server, args, input = '') {
  await new Promise((resolve, reject) => {
    const child = spawn(bin, ['staff', ...args, '--data-dir', join(server.dir, 'data')], {
      env: { ...process.env, AVISA_DATA_KEY_FILE: join(server.dir, 'data.key'), AVISA_LOG: 'warn' },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.stdin.end(input);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`avisa staff ${args[0]} failed: ${err}`))));
  });
}

/// A person pressing the button through the API; returns the alert.
export async function pressViaApi(server, phone, location, name = 'Juana García') {
  const json = async (method, path, body, token, unlock) => {
    const r = await fetch(`${server.base}${path}`, {
      method,
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(unlock ? { 'x-avisa-unlock': unlock } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    return r.json();
  };
  const { token } = await json('POST', '/api/v1/devices', { phone });
  const e164 = `+1${phone.replace(/\D/g, '').slice(-10)}`;
  const line = await waitFor(() => server.smsLog().find((l) => l.to === e164), 10000, 'the code SMS');
  await json('POST', '/api/v1/devices/verify', { code: line.body.match(/\b(\d{6})\b/)[1] }, token);
  // Setting the PIN hands the device an unlock, which contacts need.
  const { unlock } = await json('PUT', '/api/v1/profile', { name, home_state: 'CA', cancel_pin: '4821', keyword: 'auxilio' }, token);
  const contact = await json('POST', '/api/v1/contacts', { name: 'Mamá', phone: '(213) 555-0177', message: 'Me detuvieron.' }, token, unlock);
  if (!contact.id) throw new Error(`the contact was refused: ${JSON.stringify(contact)}`);
  return json('POST', '/api/v1/alerts', { idempotency_key: `browser-${Date.now()}`, location }, token);
}

/// Whether the app keeps a press waiting for the network (its one file in
/// the Origin Private File System).
export async function pendingKept(page) {
  return page.evaluate(async () => {
    try {
      const dir = await navigator.storage.getDirectory();
      const file = await (await dir.getFileHandle('pending-alert.json')).getFile();
      return file.size > 0;
    } catch {
      return false;
    }
  });
}
