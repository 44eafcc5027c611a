// Avisa, the phone app. Plain modules, no framework: the whole app is a few
// screens drawn with the DOM (never innerHTML with data), Spanish first.

import { t, lang, setLang, errorText, TEMPLATES, states } from './i18n.js';
import { analyze } from './sms.js';
import { getPending, savePending, clearPending } from './store.js';
import { countryOptions, countryName } from './countries.js';

const app = document.getElementById('app');
const banner = document.getElementById('banner');
const GPS_WAIT_MS = 3000;
const UNLOCK_MS = 10 * 60 * 1000;

// What the phone keeps of the person: nothing but the device token and the
// fact that the profile is complete ("avisa.ready"). Their number, name,
// keyword and consulate come from the server after the PIN and stay in
// memory; older versions' copies are removed here.
for (const k of ['avisa.profileCache', 'avisa.phone']) localStorage.removeItem(k);

const state = {
  token: localStorage.getItem('avisa.token'),
  config: JSON.parse(localStorage.getItem('avisa.config') || 'null'),
  profile: localStorage.getItem('avisa.ready') === '1' ? { complete: true } : null,
  unlockedUntil: 0,
  // The server's proof that the PIN was entered (X-Avisa-Unlock); memory only.
  unlock: null,
  phone: '',
  lastPosition: null,
  stream: null,
  poll: null,
  retry: null,
  screen: null,
};

// ---- DOM -------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...nodes) {
  stopLive();
  // Which screen is up: a background retry redraws only its own.
  app.dataset.screen = '';
  app.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
  window.scrollTo(0, 0);
  const first = app.querySelector('h1');
  if (first) first.setAttribute('tabindex', '-1');
}

// Field names differ on every load, so the browser's autofill never keys a
// saved value to them (a seized phone's autofill held names and numbers).
const FIELD_SALT = Math.random().toString(36).slice(2, 8);

function field({ id, label, why, type = 'text', value = '', attrs = {} }) {
  // Nothing personal is remembered by the browser; a one-time code may be
  // filled in from the SMS.
  const base = { id, name: `avisa-${id}-${FIELD_SALT}`, autocomplete: 'off', ...attrs };
  if (base.autocomplete !== 'one-time-code') base.autocomplete = 'off';
  // A PIN is masked text, not a password: no password manager offers to
  // keep it.
  const pin = type === 'password';
  const input = type === 'textarea'
    ? h('textarea', base, value)
    : h('input', { ...base, type: pin ? 'text' : type, value, ...(pin ? { class: 'pin', spellcheck: 'false' } : {}) });
  const error = h('p', { class: 'error', id: `${id}-error`, 'aria-live': 'polite' });
  input.setAttribute('aria-describedby', `${id}-error${why ? ` ${id}-why` : ''}`);
  return {
    input,
    error,
    node: h('div', {}, h('label', { for: id }, label, why ? h('span', { class: 'why', id: `${id}-why` }, why) : null), input, error),
  };
}

// A phone number with its country. What is typed without "+" is read in
// the chosen country; the server reads it back ("México · +52 55 1234 5678")
// before anything is saved; a number valid in both Mexico and the US is
// asked about with one big button per reading, never guessed.
function phoneField({ id, label, why, value = '', country = '', attrs = {} }) {
  const f = field({ id, label, why, type: 'tel', value, attrs: { inputmode: 'tel', ...attrs } });
  const select = h('select', { id: `${id}-country`, name: `avisa-${id}-country-${FIELD_SALT}`, autocomplete: 'off', 'aria-describedby': `${id}-error` },
    h('option', { value: '', text: t('country_choose') }),
    countryOptions(lang()).map((o) => h('option', { value: o.code, selected: o.code === country, text: o.label })));
  const readback = h('p', { class: 'readback', id: `${id}-readback`, 'aria-live': 'polite' });
  const choices = h('div', { class: 'choices', id: `${id}-choices` });
  const describe = (r) => `${countryName(r.country, lang())} · ${r.international}`;
  const ask = (readings) => {
    readback.textContent = t('phone_which');
    choices.replaceChildren(...readings.map((r) => h('button', {
      type: 'button', class: 'button secondary choice',
      // The field takes the reading chosen, written in full: read again it
      // has one meaning (a "1" and ten digits chosen as Mexican would be
      // asked about again otherwise).
      onclick: () => { f.input.value = r.international; select.value = r.country; f.error.textContent = ''; f.input.removeAttribute('aria-invalid'); check(); select.focus(); },
    }, `${countryName(r.country, lang())} · `, h('span', { class: 'nowrap', text: r.international }))));
  };
  let timer = null;
  let seq = 0;
  const check = async () => {
    const mine = ++seq;
    const phone = f.input.value.trim();
    choices.replaceChildren();
    readback.textContent = '';
    if (phone.replace(/\D/g, '').length < 7) return;
    try {
      const r = await api('POST', '/api/v1/phone/read', { phone, country: select.value || undefined }, { auth: false });
      if (mine !== seq) return;
      if (r.ok) readback.textContent = describe(r.data);
      else if (r.data && r.data.error && r.data.error.code === 'phone_ambiguous') ask(r.data.error.readings);
    } catch { /* offline: the server reads it when saving */ }
  };
  f.input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(check, 400); });
  select.addEventListener('change', check);
  if (value) check();
  f.node.insertBefore(h('div', { class: 'country' }, h('label', { for: `${id}-country`, class: 'small', text: t('country_label') }), select), f.input);
  f.node.append(readback, choices);
  return {
    input: f.input,
    error: f.error,
    node: f.node,
    country: { input: select, error: f.error },
    value: () => ({ phone: f.input.value, country: select.value || undefined }),
    ambiguous: (readings) => {
      ask(readings);
      choices.querySelector('button').focus();
    },
  };
}

function setFieldError(fields, name, message) {
  const f = fields[name];
  if (!f) return false;
  f.error.textContent = message;
  f.input.setAttribute('aria-invalid', 'true');
  f.input.focus();
  return true;
}

function clearErrors(fields) {
  for (const f of Object.values(fields)) {
    f.error.textContent = '';
    f.input.removeAttribute('aria-invalid');
  }
}

function setBanner(text) {
  banner.textContent = text || '';
}

// ---- API -------------------------------------------------------------------

class Offline extends Error {}

async function api(method, path, body, { auth = true } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (auth && state.token) headers.authorization = `Bearer ${state.token}`;
  if (auth && state.unlock && Date.now() < state.unlockedUntil) headers['x-avisa-unlock'] = state.unlock;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new Offline(t('error_network'));
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  return { ok: response.ok, status: response.status, data, retryAfter: response.headers.get('retry-after') };
}

function apiError(result) {
  const err = result.data && result.data.error;
  return { code: err ? err.code : 'unknown', field: err ? err.field : null, message: errorText(err && err.code, err && err.message) };
}

/// Shows an API error next to its field, or in `general`.
function showError(result, fields, general) {
  const e = apiError(result);
  const readings = result.data && result.data.error && result.data.error.readings;
  if (e.code === 'phone_ambiguous' && fields[e.field] && fields[e.field].ambiguous && readings) {
    fields[e.field].error.textContent = e.message;
    fields[e.field].ambiguous(readings);
    return;
  }
  if (!(e.field && setFieldError(fields, e.field.replace(/^location\./, ''), e.message))) {
    general.textContent = e.message;
  }
}

function hhmm(ms) {
  return new Date(ms).toLocaleTimeString(lang() === 'es' ? 'es-MX' : 'en-US', { hour: 'numeric', minute: '2-digit' });
}

// A tel: link that dials from anywhere: the directory writes US numbers
// without their "+1".
function telHref(phone) {
  const digits = phone.replace(/[^0-9]/g, '');
  if (phone.trim().startsWith('+')) return `tel:+${digits}`;
  if (digits.length === 10) return `tel:+1${digits}`;
  if (digits.length === 11 && digits.startsWith('1')) return `tel:+${digits}`;
  return `tel:${digits}`;
}

/// The first line of every contact's alert, as the server writes it
/// (`messages::who_asks`): who is asking. With a GSM-7 text the server folds
/// the name's accents GSM-7 lacks; dropping every accent counts the same.
function whoAsks(name, language, text) {
  if (!name) return '';
  const shown = analyze(text).encoding === 'GSM-7' ? name.normalize('NFD').replace(/[\u0300-\u036f]/g, '') : name;
  return language === 'en' ? `Avisa: ${shown} needs help:\n` : `Avisa: ${shown} pide ayuda:\n`;
}

// The longest location line an alert adds to a contact's message (as
// avisa_core::messages::longest_contact_alert writes it: the longest zone a
// recipient may read the time in).
function longestLine(language) {
  const link = 'https://www.openstreetmap.org/?mlat=-89.99999&mlon=-179.99999 (+/-1000000 m)';
  return language === 'en'
    ? `Location: ${link} at 00:00 Atlantic time (UTC-4).`
    : `Ubicacion: ${link} a las 00:00 hora del Pacifico de Mexico.`;
}

function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// The PIN was entered: the server's unlock opens contacts and the profile
// for a few minutes (never longer than the app's own unlock).
function keepUnlock(data) {
  if (!data || !data.unlock) return;
  state.unlock = data.unlock;
  state.unlockedUntil = Date.now() + Math.min(UNLOCK_MS, (data.expires_in || 0) * 1000);
}

function saveProfileCache(profile) {
  // In memory only; the disk keeps just the fact that it is complete.
  state.profile = profile;
  localStorage.setItem('avisa.ready', '1');
}

async function loadConfig() {
  try {
    const r = await api('GET', '/api/v1/config', undefined, { auth: false });
    if (r.ok) {
      state.config = r.data;
      localStorage.setItem('avisa.config', JSON.stringify(r.data));
    }
  } catch { /* offline: the cached copy stands */ }
  if (!state.config) state.config = { service_number: null, ciam_phone: '+1 520 623 7874', max_contacts: 10, max_message_segments: 3, countdown_seconds: 5 };
}

function countdownSeconds() {
  const saved = localStorage.getItem('avisa.countdown');
  const n = saved === null ? state.config.countdown_seconds : Number(saved);
  return Math.max(0, Math.min(10, Number.isFinite(n) ? n : 5));
}

// ---- location ----------------------------------------------------------------

function currentPosition(timeoutMs) {
  return new Promise((resolve) => {
    if (!('geolocation' in navigator)) return resolve(null);
    const timer = setTimeout(() => resolve(null), timeoutMs);
    navigator.geolocation.getCurrentPosition(
      (p) => {
        clearTimeout(timer);
        state.lastPosition = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: Math.round(p.coords.accuracy) };
        resolve(state.lastPosition);
      },
      () => { clearTimeout(timer); resolve(null); },
      { enableHighAccuracy: true, timeout: timeoutMs, maximumAge: 60000 },
    );
  });
}

// ---- onboarding ----------------------------------------------------------------

function welcome(message) {
  const phone = phoneField({ id: 'phone', label: t('phone_label'), why: t('phone_why'), value: state.phone, attrs: { placeholder: t('phone_placeholder') } });
  const general = h('p', { class: 'error', role: 'alert' });
  const button = h('button', { class: 'button', type: 'submit', text: t('send_code') });
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      clearErrors({ phone, country: phone.country });
      general.textContent = '';
      button.disabled = true;
      try {
        const body = { ...phone.value(), language: lang() };
        let r = await api('POST', '/api/v1/devices', body, { auth: false });
        // Codes are asked faster than usual: the phone proves it is one.
        if (r.status === 429 && apiError(r).code === 'challenge_required') {
          const { solve } = await import('./pow.js');
          general.textContent = t('pow_working');
          const c = await api('GET', '/api/v1/devices/challenge', undefined, { auth: false });
          const solution = c.ok ? await solve(c.data) : null;
          general.textContent = '';
          if (solution) r = await api('POST', '/api/v1/devices', { ...body, challenge: solution }, { auth: false });
        }
        if (r.ok) {
          state.token = r.data.token;
          localStorage.setItem('avisa.token', state.token);
          state.phone = phone.input.value;
          // The code screen repeats the number as the server read it.
          state.phoneRead = r.data.international;
          codeScreen();
        } else {
          showError(r, { phone, country: phone.country }, general);
        }
      } catch (err) {
        general.textContent = err.message;
      } finally {
        button.disabled = false;
      }
    },
  }, phone.node, general, button);
  show(
    h('h1', { text: t('welcome_title') }),
    h('p', { text: t('welcome_body') }),
    message ? h('p', { class: 'note', text: message }) : null,
    form,
    h('p', { class: 'muted', text: t('encrypted_note') }),
  );
}

function codeScreen() {
  const code = field({ id: 'code', label: t('code_label'), attrs: { inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6', pattern: '[0-9]*' } });
  const general = h('p', { class: 'error', role: 'alert' });
  const button = h('button', { class: 'button', type: 'submit', text: t('verify') });
  show(
    h('h1', { text: t('code_title') }),
    h('p', { text: t('code_body', { phone: state.phoneRead || state.phone }) }),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        clearErrors({ code });
        general.textContent = '';
        button.disabled = true;
        try {
          const r = await api('POST', '/api/v1/devices/verify', { code: code.input.value.trim() });
          if (r.ok) profileScreen();
          else showError(r, { code }, general);
        } catch (err) {
          general.textContent = err.message;
        } finally {
          button.disabled = false;
        }
      },
    }, code.node, general, button),
    h('button', { class: 'button secondary', type: 'button', text: t('change_number'), onclick: () => { forget(); welcome(); } }),
  );
}

function stateSelect(id, selected) {
  return h('select', { id, name: id },
    h('option', { value: '', text: '—' }),
    states().map(([code, name]) => h('option', { value: code, selected: code === selected, text: name })));
}

function profileScreen() {
  const p = state.profile && state.profile.name ? state.profile : {};
  const fields = {
    name: field({ id: 'name', label: t('name_label'), why: t('name_why'), value: p.name || '', attrs: { autocomplete: 'name' } }),
    home_state: (() => {
      const input = stateSelect('home_state', p.home_state);
      const error = h('p', { class: 'error', id: 'home_state-error' });
      input.setAttribute('aria-describedby', 'home_state-error home_state-why');
      return { input, error, node: h('div', {}, h('label', { for: 'home_state' }, t('state_label'), h('span', { class: 'why', id: 'home_state-why' }, t('state_why'))), input, error) };
    })(),
    home_county: field({ id: 'home_county', label: t('county_label'), why: t('county_why'), value: p.home_county || '' }),
    cancel_pin: field({ id: 'cancel_pin', label: t('pin_label'), why: t('pin_why'), type: 'password', attrs: { inputmode: 'numeric', autocomplete: 'new-password', maxlength: '8' } }),
    pin_again: field({ id: 'pin_again', label: t('pin_again_label'), type: 'password', attrs: { inputmode: 'numeric', autocomplete: 'new-password', maxlength: '8' } }),
    // The number to text it to, beside the word (the server's, when set).
    keyword: field({ id: 'keyword', label: t('keyword_label'), why: state.config && state.config.service_number ? t('keyword_why', { number: state.config.service_number_display || state.config.service_number }) : t('keyword_why_no_number'), value: p.keyword || (lang() === 'es' ? 'AUXILIO' : 'HELPME'), attrs: { autocapitalize: 'characters' } }),
  };
  const language = h('select', { id: 'language' },
    h('option', { value: 'es', selected: lang() === 'es', text: 'Español' }),
    h('option', { value: 'en', selected: lang() === 'en', text: 'English' }));
  const general = h('p', { class: 'error', role: 'alert' });
  const button = h('button', { class: 'button', type: 'submit', text: t('save_continue') });
  show(
    h('h1', { text: t('profile_title') }),
    h('p', { class: 'note', text: t('encrypted_note') }),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        clearErrors(fields);
        general.textContent = '';
        // Every problem at once, each beside its field (the server checks
        // again, and says what only it can know).
        const problems = profileProblems(fields);
        if (problems.length) {
          for (const [name, message] of problems.reverse()) setFieldError(fields, name, message);
          return;
        }
        button.disabled = true;
        const body = {
          name: fields.name.input.value,
          home_state: fields.home_state.input.value,
          home_county: fields.home_county.input.value || null,
          language: language.value,
          cancel_pin: fields.cancel_pin.input.value,
          keyword: fields.keyword.input.value,
        };
        try {
          const r = await api('PUT', '/api/v1/profile', body);
          if (r.ok) {
            saveProfileCache(r.data);
            setLang(r.data.language);
            keepUnlock(r.data);
            locationScreen();
          } else {
            showError(r, fields, general);
          }
        } catch (err) {
          general.textContent = err.message;
        } finally {
          button.disabled = false;
        }
      },
    },
    fields.name.node, fields.home_state.node, fields.home_county.node,
    fields.cancel_pin.node, fields.pin_again.node, fields.keyword.node,
    h('label', { for: 'language', text: t('language_label') }), language,
    general, button),
  );
}

/// What is wrong with the profile form as typed, field by field, in the
/// server's own rules (`PUT /api/v1/profile`).
function profileProblems(fields) {
  const problems = [];
  const value = (name) => fields[name].input.value;
  if (!value('name').trim()) problems.push(['name', errorText('required')]);
  else if ([...value('name')].length > 80) problems.push(['name', errorText('too_long')]);
  if (!value('home_state')) problems.push(['home_state', errorText('home_state_invalid')]);
  if (!/^[0-9]{4,8}$/.test(value('cancel_pin'))) problems.push(['cancel_pin', errorText('pin_invalid')]);
  else if (value('cancel_pin') !== value('pin_again')) problems.push(['pin_again', t('pin_mismatch')]);
  if (!/^\s*[A-Za-z0-9]{3,20}\s*$/.test(value('keyword'))) problems.push(['keyword', errorText('keyword_invalid')]);
  return problems;
}

function locationScreen() {
  show(
    h('h1', { text: t('location_title') }),
    h('p', { text: t('location_body') }),
    h('button', { class: 'button', type: 'button', text: t('allow_location'), onclick: async () => { await currentPosition(10000); contactsScreen(); } }),
    h('button', { class: 'button secondary', type: 'button', text: t('skip'), onclick: () => contactsScreen() }),
  );
}

function forget() {
  // Everything the app kept: token, phone number, cached profile, last
  // alert, preferences. Nothing of the person stays on the phone.
  for (const k of Object.keys(localStorage).filter((k) => k.startsWith('avisa.'))) localStorage.removeItem(k);
  state.phone = '';
  state.token = null;
  state.profile = null;
  state.unlockedUntil = 0;
  state.unlock = null;
}

// ---- home and the button -----------------------------------------------------

function menu() {
  return h('nav', { class: 'menu', 'aria-label': 'Avisa' },
    h('a', { href: '#/contacts', text: t('contacts_link') }),
    h('a', { href: '#/practice', text: t('practice_link') }),
    h('a', { href: '#/checkins', text: t('checkins_link') }),
    h('a', { href: '#/history', text: t('history_link') }),
    h('a', { href: '#/rights', text: t('rights_link') }),
    h('a', { href: '#/settings', text: t('settings_link') }));
}

function home(message) {
  const last = localStorage.getItem('avisa.lastAlert');
  const alone = localStorage.getItem('avisa.contactCount') === '0';
  // What became of the last alert, as the phone last heard: sent, or
  // cancelled; a press still waiting for a connection says so instead.
  const lastLabel = localStorage.getItem('avisa.lastAlertState') === 'cancelled' ? t('last_alert_cancelled') : t('status_title');
  const waiting = h('p', { class: 'warn', role: 'status', id: 'waiting', hidden: true, text: t('pending_home') });
  getPending().then((p) => { if (p && !p.practice) waiting.hidden = false; }).catch(() => {});
  show(
    waiting,
    alone ? h('p', { class: 'warn', role: 'status', id: 'no-contacts' }, t('no_contacts_warning'), ' ', h('a', { href: '#/contacts', text: t('contacts_link') })) : null,
    h('div', { class: 'press-area' },
      h('h1', { class: 'press-hint', text: t('press_hint') }),
      h('button', { class: 'big', type: 'button', id: 'press', 'aria-label': t('big_button_label'), text: t('big_button'), onclick: () => countdown(false) })),
    message ? h('p', { class: 'note', role: 'status', text: message }) : null,
    last ? h('a', { class: 'button secondary', href: '#/status', id: 'last-alert', text: lastLabel }) : null,
    menu(),
  );
}

function countdown(practice) {
  const started = Date.now();
  // Ask for the position now; the alert never waits for it more than 3 s.
  const position = currentPosition(GPS_WAIT_MS);
  let left = countdownSeconds();
  let cancelled = false;
  const count = h('div', { class: 'count', 'aria-live': 'assertive', text: String(left) });
  const overlay = h('div', { class: `overlay${practice ? ' practice' : ''}`, role: 'alertdialog', 'aria-label': t(practice ? 'countdown_practice_title' : 'countdown_title') },
    h('div', { class: 'title', text: t(practice ? 'countdown_practice_title' : 'countdown_title') }),
    count,
    h('button', {
      class: 'cancel-big', type: 'button', id: 'cancel-countdown', text: t('cancel_big'),
      onclick: () => {
        cancelled = true;
        clearInterval(timer);
        overlay.remove();
        if (practice) practiceScreen(t('cancelled_note')); else home(t('cancelled_note'));
      },
    }));
  document.body.append(overlay);
  overlay.querySelector('button').focus();
  const fire = async () => {
    clearInterval(timer);
    if (cancelled) return;
    overlay.remove();
    const wait = Math.max(0, GPS_WAIT_MS - (Date.now() - started));
    const location = await Promise.race([position, new Promise((r) => setTimeout(() => r(null), wait))]);
    // The moment of the press travels with it: sent late, the SMS say when
    // it was pressed and when it went.
    await sendAlert({ idempotency_key: randomKey(), location: location || undefined, practice, pressed_at: started });
  };
  const timer = setInterval(() => {
    left -= 1;
    count.textContent = String(Math.max(left, 0));
    if (left <= 0) fire();
  }, 1000);
  if (left <= 0) fire();
}

async function sendAlert(alert) {
  if (alert.practice) return sendPractice(alert);
  // Kept first, so a closed app or a dead connection cannot lose it.
  await savePending(alert);
  show(h('h1', { text: t('status_sending') }), h('p', { class: 'loading', text: t('loading') }));
  await flushPending();
}

// A practice is apart: never kept, never retried, never shown as a real
// alert, never offering the keyword (which would raise a real one).
// Refused or offline, it says so in practice words; the real button stays
// ready.
async function sendPractice(alert) {
  show(h('h1', { text: t('status_sending') }), h('p', { class: 'loading', text: t('loading') }));
  let r = null;
  try {
    r = await api('POST', '/api/v1/alerts', alert);
  } catch { /* offline: said below */ }
  if (r && r.ok) return statusScreen(r.data);
  const min = Math.max(1, Math.ceil((Number(r && r.retryAfter) || 60) / 60));
  practiceScreen(!r ? t('practice_offline') : r.status === 429 ? t('practice_limited', { min }) : `${apiError(r).message} ${t('practice_real_ready')}`);
}

/// Sends the waiting alert, if any. Safe to call any number of times: the
/// same idempotency key never makes a second alert. From a background retry
/// (`background`), a failure redraws nothing but the waiting screen itself:
/// never a screen the person is using, never what they type.
async function flushPending(background = false) {
  const pending = await getPending();
  if (!pending) return;
  let r;
  try {
    r = await api('POST', '/api/v1/alerts', pending);
  } catch {
    if (!background || app.dataset.screen === 'offline') offlineScreen();
    scheduleRetry();
    return;
  }
  if (r.ok) {
    await clearPending();
    stopRetry();
    setBanner('');
    if (!pending.practice) {
      localStorage.setItem('avisa.lastAlert', r.data.alert_id);
      localStorage.setItem('avisa.lastAlertState', 'sent');
    }
    // Past the limit the alert went to the consulate, not again to contacts.
    statusScreen(r.data, r.data.limit_reached ? t('limit_reached') : undefined);
  } else if (r.status >= 500 || r.status === 429) {
    // The server is down, busy or asks to wait: the press waits and goes by
    // itself, with the same key, as soon as the server says it may.
    if (!background || app.dataset.screen === 'offline') offlineScreen(undefined, r.status === 503);
    scheduleRetry(Number(r.retryAfter));
    // Busy, not offline: the screen says so; the banner would not.
    if (r.status === 503) setBanner('');
  } else {
    // No answer throws a press away: it stays until it goes or the person
    // withdraws it with the PIN. A 401 (this phone lost its registration)
    // is the SMS keyword's job at once; any other refusal says what to do.
    stopRetry();
    if (!background || app.dataset.screen === 'offline') offlineScreen(r.status === 401 ? t('refused_401') : `${apiError(r).message} ${t('refused_keep')}`);
  }
}

// Withdraws the press waiting on the phone, with the PIN (checked by the
// server: whoever holds the phone cannot withdraw it).
function withdrawPending() {
  const pin = field({ id: 'withdraw-pin', label: t('pin_prompt'), type: 'password', attrs: { inputmode: 'numeric', maxlength: '8' } });
  const general = h('p', { class: 'error', role: 'alert' });
  show(
    h('h1', { text: t('withdraw_title') }),
    h('p', { text: t('withdraw_body') }),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        clearErrors({ pin });
        general.textContent = '';
        let r;
        try {
          r = await api('POST', '/api/v1/pin/check', { pin: pin.input.value });
        } catch {
          general.textContent = t('withdraw_offline');
          return;
        }
        if (r.ok) {
          keepUnlock(r.data);
          await clearPending();
          stopRetry();
          setBanner('');
          home(t('withdrawn'));
        } else if (r.status === 401) {
          general.textContent = t('withdraw_unregistered');
        } else {
          setFieldError({ pin }, 'pin', apiError(r).message);
        }
      },
    }, pin.node, general, h('button', { class: 'button danger', type: 'submit', id: 'withdraw-confirm', text: t('withdraw_confirm') })),
    h('button', { class: 'button secondary', type: 'button', text: t('back'), onclick: () => offlineScreen() }),
  );
}

function scheduleRetry(after) {
  setBanner(t('pending_banner'));
  // A busy server's Retry-After (1 s when shedding load) comes before the
  // regular 5 s retry.
  if (after > 0 && after < 5 && !state.soon) {
    state.soon = setTimeout(() => { state.soon = null; flushPending(true); }, after * 1000);
  }
  if (state.retry) return;
  state.retry = setInterval(() => { if (navigator.onLine) flushPending(true); }, 5000);
}

function stopRetry() {
  if (state.retry) clearInterval(state.retry);
  state.retry = null;
}

window.addEventListener('online', () => { setBanner(''); flushPending(true); });
window.addEventListener('offline', () => setBanner(t('offline_banner')));

function smsLink() {
  const number = state.config && state.config.service_number;
  // The keyword is known only while the app holds it in memory (the phone
  // keeps no copy of it); otherwise the person types it.
  const keyword = state.profile && state.profile.keyword;
  if (!number) return h('p', { class: 'warn', text: t('no_service_number') });
  const shown = state.config.service_number_display || number;
  return h('div', {},
    h('a', { class: 'button danger', id: 'sms-fallback', href: keyword ? `sms:${number}?body=${encodeURIComponent(keyword)}` : `sms:${number}`, text: t('send_by_sms') }),
    h('p', { class: 'muted', text: keyword ? t('sms_fallback_body', { keyword, number: shown }) : t('sms_fallback_type', { number: shown }) }));
}

// The press is waiting (no connection, or refused): text the keyword, call
// the consulate, or withdraw it with the PIN.
function offlineScreen(refusal, busy = false) {
  const consulate = state.profile && state.profile.consulate;
  const call = consulate && consulate.phone
    ? h('a', { class: 'button secondary tel', id: 'call-consulate', href: telHref(consulate.phone), text: `${t('call')} ${consulate.name}` })
    : h('a', { class: 'button secondary tel', id: 'call-consulate', href: telHref(state.config.ciam_phone), text: `${t('line_24h')}: ${state.config.ciam_phone}` });
  show(
    h('h1', { text: busy ? t('busy_title') : refusal ? t('refused_title') : t('offline_title') }),
    h('p', { class: 'warn', role: 'alert', text: busy ? t('busy_body') : refusal || t('offline_body') }),
    smsLink(),
    call,
    h('button', { class: 'button secondary', type: 'button', id: 'withdraw', text: t('withdraw_button'), onclick: () => withdrawPending() }),
  );
  app.dataset.screen = 'offline';
}

// ---- status ------------------------------------------------------------------

function statusLabel(s) {
  return t(`status_${s}`);
}

/// The day and time a contact's number said STOP, in the person's language.
const blockedWhen = (ms) => new Date(ms || Date.now()).toLocaleString(lang() === 'es' ? 'es-MX' : 'en-US', { day: 'numeric', month: 'long', hour: 'numeric', minute: '2-digit' });

/// Why a message did not go, in words: a contact who blocked Avisa or a
/// number that does not exist is said plainly; anything else as the
/// provider put it.
function reasonText(r) {
  if (r.reason.startsWith('opted_out')) return t('reason_opted_out');
  if (r.reason.startsWith('invalid_number')) return t('reason_invalid_number');
  return r.reason;
}

function renderStatus(alert, container, message) {
  const practice = alert.practice;
  // Home says what became of the last real alert.
  if (!practice && alert.alert_id === localStorage.getItem('avisa.lastAlert')) {
    localStorage.setItem('avisa.lastAlertState', alert.state === 'cancelled' ? 'cancelled' : 'sent');
  }
  const consulate = alert.consulate
    ? h('div', { class: 'card consulate' },
      h('h2', { text: t('consulate_heading') }),
      h('div', { text: alert.consulate.name }),
      // What the consulate did, live: received, then someone took the case.
      alert.consulate_received_at ? h('p', { class: 'seen', id: 'consulate-received', text: `${t('consulate_received')} · ${hhmm(alert.consulate_received_at)}` }) : null,
      alert.consulate_acknowledged_at
        ? h('p', { class: 'seen', id: 'consulate-acknowledged', text: `${t('consulate_acknowledged')} · ${hhmm(alert.consulate_acknowledged_at)}` })
        : (alert.consulate_received_at && alert.state === 'active' ? h('p', { class: 'muted', id: 'consulate-waiting', text: t('consulate_waiting') }) : null),
      alert.consulate.phone ? h('a', { class: 'tel', href: telHref(alert.consulate.phone), text: `${t('call')} ${alert.consulate.phone}` }) : null)
    : practice ? null : h('div', { class: 'card' },
      h('p', { id: 'coverage', text: alert.coverage === 'outside' ? t('outside_coverage') : alert.coverage === 'ciam' ? t('ciam_coverage') : t('no_consulate') }),
      h('a', { class: 'tel', href: telHref(state.config.ciam_phone), text: `${t('line_24h')}: ${state.config.ciam_phone}` }));
  const list = h('ul', { class: 'recipients', id: 'recipients' },
    alert.recipients.map((r, i) => h('li', { 'data-status': r.status },
      // Without the PIN the server gives no names: contacts by position.
      h('span', {}, h('span', { class: 'who', text: r.name || (r.kind === 'contact' ? `${t('kind_contact')} ${1 + alert.recipients.slice(0, i).filter((x) => x.kind === 'contact').length}` : t(`kind_${r.kind}`)) }), r.name ? h('span', { class: 'kind', text: t(`kind_${r.kind}`) }) : null,
        r.reason && (r.status === 'failed' || r.status === 'expired') ? h('span', { class: 'reason', text: reasonText(r) }) : null,
        r.unconfirmed && r.resent ? h('span', { class: 'reason', text: t('unconfirmed_why') }) : null,
        r.safe_status ? h('span', { class: 'safe-line', text: t('safe_status', { status: statusLabel(r.safe_status) }) }) : null),
      h('span', { class: `chip ${r.unconfirmed ? 'unconfirmed' : r.status}`, text: statusLabel(r.unconfirmed ? 'unconfirmed' : r.status) }))));
  const previews = practice && alert.previews && alert.previews.length
    ? h('div', {}, h('h2', { text: t('previews_heading') }),
      alert.previews.map((p) => h('div', { class: 'card' }, h('div', { class: 'who', text: p.name || '' }), h('div', { class: 'preview', text: p.body }))))
    : null;
  // Practice rehearses "I'm safe" too, with either PIN: nothing is sent.
  const safe = alert.state === 'active' ? safeForm(alert) : null;
  const sharing = !practice && alert.state === 'active' ? h('div', { id: 'sharing' }) : null;
  container.replaceChildren(...[
    practice ? h('div', { class: 'practice-banner', text: t('practice_banner') }) : null,
    h('h1', { text: practice ? t('status_practice_title') : alert.state === 'cancelled' ? t('alert_cancelled') : t('status_title') }),
    message ? h('p', { class: 'note', role: 'status', text: message }) : null,
    consulate,
    sharing,
    h('h2', { text: t('recipients_heading') }),
    list,
    previews,
    safe,
    h('a', { class: 'button secondary', href: '#/', text: t('back_home') }),
  ].filter(Boolean));
}

function safeForm(alert) {
  const pin = field({ id: 'safe-pin', label: t('pin_prompt'), type: 'password', attrs: { inputmode: 'numeric', autocomplete: 'off', maxlength: '8' } });
  const general = h('p', { class: 'error', role: 'alert' });
  const form = h('form', {
    hidden: true,
    onsubmit: async (e) => {
      e.preventDefault();
      clearErrors({ pin });
      general.textContent = '';
      try {
        const r = await api('POST', `/api/v1/alerts/${alert.alert_id}/cancel`, { pin: pin.input.value });
        if (r.ok) {
          if (state.live) state.live.stopSharing();
          // Those told, the person's own phone not counted among them.
          const told = (r.data.recipients || []).filter((x) => x.safe_status && x.kind !== 'self').length;
          const message = alert.practice ? t('practice_safe_done') : t('safe_done', { withdrawn: r.data.withdrawn, safe: told });
          renderStatus(r.data, app, message);
          follow(r.data.alert_id, message, []);
        } else {
          const err = apiError(r);
          setFieldError({ pin }, 'pin', err.message);
        }
      } catch (err) {
        general.textContent = err.message;
      }
    },
  }, pin.node, general, h('div', { class: 'row' },
    h('button', { class: 'button safe', type: 'submit', id: 'safe-confirm', text: t('confirm') }),
    h('button', { class: 'button secondary', type: 'button', text: t('cancel'), onclick: () => { form.hidden = true; open.hidden = false; } })));
  const open = h('button', { class: 'button safe', type: 'button', id: 'im-safe', text: t(alert.practice ? 'practice_im_safe' : 'im_safe'), onclick: () => { form.hidden = false; open.hidden = true; pin.input.focus(); } });
  return h('div', { class: 'card' }, h('p', { class: 'muted', text: t(alert.practice ? 'practice_im_safe_help' : 'im_safe_help') }), open, form);
}

function statusScreen(alert, message) {
  show(h('div', { id: 'status' }));
  renderStatus(alert, app, message);
  shareLocation(alert);
  follow(alert.alert_id, message, alert.previews);
}

/// Live location while a real alert is active (web/app/live.js, loaded when
/// needed: the first load stays as small as the button needs). Each render
/// of the status gives it a fresh #sharing box to fill.
function shareLocation(alert) {
  if (alert.practice) return;
  if (alert.state !== 'active') {
    if (state.live) state.live.stopSharing();
    return;
  }
  import('./live.js').then((live) => {
    state.live = live;
    live.mount({ h, field, api, apiError, setFieldError, clearErrors }, alert);
  }).catch(() => { /* offline before it was ever loaded: the press stands */ });
}

/// Follows an alert live (SSE), falling back to polling every 3 s. A
/// practice alert's previews come only with the press: they are kept.
function follow(id, message, previews = []) {
  stopLive();
  const update = (alert) => {
    if (!(alert.previews && alert.previews.length)) alert.previews = previews;
    // Keep an open PIN form untouched; refresh only the list.
    const list = document.getElementById('recipients');
    if (!list) return;
    const open = app.querySelector('form:not([hidden]) input.pin');
    if (open) {
      const fresh = h('div');
      renderStatus(alert, fresh, message);
      list.replaceWith(fresh.querySelector('#recipients'));
    } else {
      renderStatus(alert, app, message);
    }
    shareLocation(alert);
  };
  const poll = () => {
    if (state.poll) return;
    state.poll = setInterval(async () => {
      try {
        const r = await api('GET', `/api/v1/alerts/${id}`);
        if (r.ok) update(r.data);
      } catch { /* offline: keep the last known statuses */ }
    }, 3000);
  };
  // The stream is read with fetch, not EventSource, so the token (and the
  // unlock) travel as headers: a token in a URL is kept by proxies and
  // browsers, and the server refuses it.
  const controller = new AbortController();
  state.stream = controller;
  (async () => {
    const headers = { authorization: `Bearer ${state.token}`, accept: 'text/event-stream' };
    if (state.unlock && Date.now() < state.unlockedUntil) headers['x-avisa-unlock'] = state.unlock;
    const r = await fetch(`/api/v1/alerts/${id}/events`, { headers, signal: controller.signal });
    if (!r.ok || !r.body) throw new Error('no stream');
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended');
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (data && /^event: ?alert$/m.test(event)) update(JSON.parse(data));
      }
    }
  })().catch(() => {
    if (controller.signal.aborted) return;
    state.stream = null;
    poll();
  });
}

function stopLive() {
  if (state.stream) state.stream.abort();
  if (state.poll) clearInterval(state.poll);
  state.stream = null;
  state.poll = null;
}

async function lastStatus() {
  const id = localStorage.getItem('avisa.lastAlert');
  if (!id) return home();
  try {
    const r = await api('GET', `/api/v1/alerts/${id}`);
    if (r.ok) return statusScreen(r.data);
  } catch { /* fall through */ }
  home();
}

// ---- contacts ------------------------------------------------------------------

function pinGate(next) {
  if (Date.now() < state.unlockedUntil) return next();
  const pin = field({ id: 'gate-pin', label: t('pin_prompt'), type: 'password', attrs: { inputmode: 'numeric', autocomplete: 'off', maxlength: '8' } });
  const general = h('p', { class: 'error', role: 'alert' });
  show(
    h('h1', { text: t('pin_gate_title') }),
    h('p', { class: 'muted', text: t('pin_gate_body') }),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        clearErrors({ pin });
        try {
          const r = await api('POST', '/api/v1/pin/check', { pin: pin.input.value });
          if (r.ok) {
            keepUnlock(r.data);
            next();
          } else {
            setFieldError({ pin }, 'pin', apiError(r).message);
          }
        } catch (err) {
          general.textContent = err.message;
        }
      },
    }, pin.node, general, h('button', { class: 'button', type: 'submit', text: t('unlock') })),
  );
}

async function contactsScreen() {
  pinGate(async () => {
    show(h('h1', { text: t('contacts_title') }), h('p', { class: 'loading', text: t('loading') }));
    let r;
    try {
      r = await api('GET', '/api/v1/contacts');
    } catch (err) {
      return show(h('h1', { text: t('contacts_title') }), h('p', { class: 'error', text: err.message }), h('a', { class: 'button secondary', href: '#/', text: t('back_home') }));
    }
    const contacts = r.ok ? r.data.contacts : [];
    const max = r.ok ? r.data.max : 10;
    // How many, not who: home warns when an alert would reach no one.
    if (r.ok) localStorage.setItem('avisa.contactCount', String(contacts.length));
    const list = contacts.map((c) => h('div', { class: 'contact' },
      h('div', {}, h('div', { class: 'who', text: c.name }), h('div', { class: 'kind' }, `${countryName(c.country, lang())} · `, h('span', { class: 'nowrap', text: c.international }), ` · ${c.language === 'en' ? 'English' : 'Español'} · ${c.segments} SMS`),
        // Their number replied STOP to Avisa's messages: alerts no longer reach them.
        c.blocked ? h('p', { class: 'warn blocked', role: 'alert', text: t('contact_blocked', { name: c.name, when: blockedWhen(c.blocked_since) }) }) : null,
        c.same_number_as ? h('p', { class: 'warn same-number', text: t('same_number', { name: c.same_number_as }) }) : null),
      h('div', { class: 'actions' },
        h('button', { type: 'button', text: t('edit'), 'aria-label': `${t('edit')} ${c.name}`, onclick: () => contactEditor(c) }),
        h('button', {
          type: 'button', class: 'del', text: t('delete'), 'aria-label': `${t('delete')} ${c.name}`,
          onclick: async () => {
            if (!window.confirm(t('delete_confirm', { name: c.name }))) return;
            await api('DELETE', `/api/v1/contacts/${c.id}`);
            contactsScreen();
          },
        }))));
    show(
      h('h1', { text: t('contacts_title') }),
      contacts.length ? null : h('p', { class: 'note', text: t('contacts_empty') }),
      h('div', { id: 'contact-list' }, list),
      contacts.length >= max
        ? h('p', { class: 'warn', text: t('contacts_max', { max }) })
        : h('button', { class: 'button', type: 'button', id: 'add-contact', text: t('add_contact'), onclick: () => contactEditor(null) }),
      h('a', { class: 'button secondary', href: '#/', text: t('back_home') }),
    );
  });
}

function contactEditor(contact) {
  const fields = {
    name: field({ id: 'contact-name', label: t('contact_name_label'), value: contact ? contact.name : '' }),
    phone: phoneField({ id: 'contact-phone', label: t('contact_phone_label'), why: t('contact_phone_hint'), value: contact ? contact.international : '', country: contact ? contact.country : '' }),
    message: field({ id: 'contact-message', label: t('message_label'), type: 'textarea', value: contact ? contact.message : '' }),
  };
  fields.country = fields.phone.country;
  const language = h('select', { id: 'contact-language' },
    h('option', { value: 'es', selected: (contact ? contact.language : lang()) === 'es', text: 'Español' }),
    h('option', { value: 'en', selected: (contact ? contact.language : lang()) === 'en', text: 'English' }));
  const updates = h('input', { type: 'checkbox', id: 'contact-updates', checked: Boolean(contact && contact.location_updates) });
  const locator = h('input', { type: 'checkbox', id: 'contact-locator', checked: Boolean(contact && contact.locator) });
  const counter = h('p', { class: 'counter', id: 'counter', 'aria-live': 'polite' });
  const preview = h('div', { class: 'preview', id: 'preview' });
  const sample = h('p', { class: 'muted' });
  const general = h('p', { class: 'error', role: 'alert' });
  const max = state.config.max_message_segments;
  let previewTimer = null;
  // The counter counts what the contact receives: the text with the
  // location line the alert adds. At once, an estimate with the longest
  // such line; then the server's own preview, exactly as it would be sent
  // now. The 3-SMS limit is on the text alone, as the server checks it.
  const showCount = (info, limit) => {
    // No jargon: "UCS-2" means nothing to a person; fewer letters per SMS does.
    const accents = info.encoding === 'GSM-7' ? '' : t('counter_accents');
    counter.textContent = t('counter', { chars: info.characters, segments: info.segments, accents }) +
      (limit.segments > max ? ` — ${t('too_long', { max })}` : '');
    counter.dataset.segments = String(info.segments);
    counter.classList.toggle('over', limit.segments > max);
  };
  const refresh = () => {
    const text = fields.message.input.value.replace(/\s+$/, '');
    const limit = analyze(text);
    const who = whoAsks((state.profile && state.profile.name) || '', language.value, text);
    showCount(analyze(`${who}${text}\n${longestLine(language.value)}`), limit);
    delete counter.dataset.exact;
    clearTimeout(previewTimer);
    previewTimer = setTimeout(async () => {
      if (!fields.message.input.value.trim()) { preview.textContent = ''; sample.textContent = ''; return; }
      try {
        const r = await api('POST', '/api/v1/contacts/preview', { message: fields.message.input.value, language: language.value, location: state.lastPosition || undefined, ...fields.phone.value() });
        if (r.ok && fields.message.input.value.replace(/\s+$/, '') === text) {
          preview.textContent = r.data.body;
          sample.textContent = r.data.sample_location ? t('preview_sample') : '';
          showCount(r.data, limit);
          counter.dataset.exact = 'true';
        }
      } catch { /* offline: the estimate stands */ }
    }, 400);
  };
  const name = (state.profile && state.profile.name) || '';
  const template = (key) => h('button', {
    type: 'button', text: t(`tpl_${key}`),
    onclick: () => { fields.message.input.value = TEMPLATES[language.value][key].replace('{name}', name || '…'); refresh(); },
  });
  fields.message.input.addEventListener('input', refresh);
  language.addEventListener('change', refresh);
  const button = h('button', { class: 'button', type: 'submit', id: 'save-contact', text: t('save') });
  show(
    h('h1', { text: contact ? contact.name : t('add_contact') }),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        clearErrors(fields);
        general.textContent = '';
        button.disabled = true;
        const body = { name: fields.name.input.value, ...fields.phone.value(), language: language.value, message: fields.message.input.value, location_updates: updates.checked, locator: locator.checked };
        try {
          const r = contact ? await api('PUT', `/api/v1/contacts/${contact.id}`, body) : await api('POST', '/api/v1/contacts', body);
          if (r.ok) contactsScreen();
          else showError(r, fields, general);
        } catch (err) {
          general.textContent = err.message;
        } finally {
          button.disabled = false;
        }
      },
    },
    fields.name.node, fields.phone.node,
    h('label', { for: 'contact-language', text: t('contact_language_label') }), language,
    h('p', { class: 'why', text: t('templates_label') }),
    h('div', { class: 'chips' }, ['family', 'lawyer', 'employer', 'school'].map(template)),
    fields.message.node, counter,
    h('h2', { text: t('preview_heading') }), preview, sample,
    h('label', { class: 'check', for: 'contact-updates' }, updates, t('contact_updates_label')),
    h('label', { class: 'check', for: 'contact-locator' }, locator, t('contact_locator_label')),
    general, button),
    h('button', { class: 'button secondary', type: 'button', text: t('cancel'), onclick: () => contactsScreen() }),
  );
  refresh();
}

// ---- practice, rights, settings ---------------------------------------------

function practiceScreen(message) {
  show(
    h('div', { class: 'practice-banner', text: t('practice_banner') }),
    h('h1', { text: t('practice_title') }),
    h('p', { text: t('practice_body') }),
    message ? h('p', { class: 'note', role: 'status', text: message }) : null,
    h('div', { class: 'press-area' },
      h('button', { class: 'big practice', type: 'button', id: 'practice-press', text: t('practice_button'), onclick: () => countdown(true) })),
    h('a', { class: 'button secondary', href: '#/', text: t('back_home') }),
  );
}

function rightsScreen() {
  const consulate = state.profile && state.profile.consulate;
  show(
    h('h1', { text: t('rights_title') }),
    h('ol', { class: 'rights' }, t('rights').map((r) => h('li', { text: r }))),
    consulate ? h('div', { class: 'card' }, h('h2', { text: t('rights_consulate') }), h('div', { text: consulate.name }),
      consulate.phone ? h('a', { class: 'tel', href: telHref(consulate.phone), text: consulate.phone }) : null) : null,
    h('div', { class: 'card' }, h('h2', { text: t('line_24h') }),
      h('a', { class: 'tel', href: telHref(state.config.ciam_phone), text: state.config.ciam_phone })),
    h('a', { class: 'button secondary', href: '#/', text: t('back_home') }),
  );
}


// ---- start -------------------------------------------------------------------

function render() {
  const langButton = document.getElementById('lang');
  langButton.textContent = t('lang_switch');
  langButton.setAttribute('aria-label', t('lang_switch_label'));
  document.title = t('app_name');
  if (!state.token) return welcome();
  if (!state.profile || !(state.profile.complete || state.profile.keyword)) return state.screen === 'code' ? codeScreen() : profileScreen();
  switch (location.hash) {
    case '#/contacts': return contactsScreen();
    case '#/practice': return practiceScreen();
    case '#/rights': return rightsScreen();
    // Loaded when opened (it needs the network anyway): the first load and
    // the worker's copy stay as small as the button needs.
    case '#/checkins': return pinGate(async () => {
      const { checkinsScreen } = await import('./checkins.js');
      checkinsScreen({ h, show, field, api, apiError, showError, clearErrors, setFieldError });
    });
    case '#/history': return pinGate(async () => {
      const { historyScreen } = await import('./history.js');
      historyScreen({ h, show, api });
    });
    case '#/locator': return pinGate(async () => {
      const { locatorScreen } = await import('./locator.js');
      locatorScreen({ h, show, field, api, showError, clearErrors });
    });
    case '#/settings': return pinGate(async () => {
      const { settingsScreen } = await import('./settings.js');
      settingsScreen({ h, show, field, api, apiError, showError, setFieldError, clearErrors, keepUnlock, forget, clearPending, welcome, countdownSeconds, followLanguage, render });
    });
    case '#/status': return lastStatus();
    default: return home();
  }
}

// The profile's language follows the app's, for the person's own SMS —
// only with the PIN entered: the profile is not the phone holder's to change.
function followLanguage() {
  if (!state.token || !state.profile) return;
  api('GET', '/api/v1/profile').then((r) => {
    if (r.ok && r.data.name && !r.data.locked && r.data.language !== lang()) {
      const p = r.data;
      api('PUT', '/api/v1/profile', { name: p.name, home_state: p.home_state, home_county: p.home_county, language: lang(), keyword: p.keyword, name_at_end: p.name_at_end }).catch(() => {});
    }
  }).catch(() => {});
}

document.getElementById('lang').addEventListener('click', () => {
  setLang(lang() === 'es' ? 'en' : 'es');
  followLanguage();
  render();
});

window.addEventListener('hashchange', render);
// A link to the screen the address already names ("Volver al inicio" from a
// status shown at #/) changes no hash: draw that screen anyway.
document.addEventListener('click', (e) => {
  const link = e.target.closest && e.target.closest('a[href^="#"]');
  if (link && link.getAttribute('href') === (location.hash || '#/')) {
    e.preventDefault();
    render();
  }
});

// Leaving the app locks it again: whoever picks the phone up next needs the PIN.
document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    state.unlock = null;
    state.unlockedUntil = 0;
  }
});

async function start() {
  setLang(lang());
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
  if (!navigator.onLine) setBanner(t('offline_banner'));
  const fetchedConfig = !state.config;
  if (fetchedConfig) await loadConfig();
  // The button first, from what this phone already knows: a reopen waits
  // for no network at all. What the server says comes after, below.
  render();
  let waiting = await getPending();
  // An older version kept practices too: one never waits to be sent.
  if (waiting && waiting.practice) { await clearPending(); waiting = null; }
  if (waiting) {
    setBanner(t('pending_banner'));
    if (navigator.onLine) flushPending(); else { offlineScreen(); scheduleRetry(); }
  }
  refresh(!fetchedConfig);
}

// The server's view of this phone, after the first screen is up: redraws
// only when it changes which screen the phone should show (a device reset,
// a profile to finish), and never in the middle of a press.
async function refresh(config) {
  if (config) loadConfig();
  if (!state.token) return;
  const before = state.profile && state.profile.complete;
  const quiet = () => (!location.hash || location.hash === '#/') && !document.querySelector('.overlay');
  try {
    const r = await api('GET', '/api/v1/profile');
    if (r.status === 401) {
      forget();
      if (quiet()) render();
      return;
    }
    if (r.status === 403) state.screen = 'code';
    else if (r.ok && r.data.complete && !r.data.locked) saveProfileCache(r.data);
    // Complete but locked (no PIN entered yet): the cached profile stands.
    else if (r.ok && r.data.complete) state.profile = state.profile || { complete: true };
    else if (r.ok) { state.profile = null; localStorage.removeItem('avisa.ready'); }
    const after = state.profile && state.profile.complete;
    if ((before !== after || r.status === 403) && quiet()) render();
  } catch { /* offline: the cached profile stands */ }
}

start();
