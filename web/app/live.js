// Live location while an alert is active: after a press the phone sends its
// position when it has moved 100 m or every 2 minutes, whichever comes
// first, until the alert is cancelled, the case is resolved, the person
// stops it with the PIN, or 4 hours pass (the server says so with 409
// sharing_ended). The browser's geolocation only; nothing else is asked.
// Loaded when the status screen of an active alert opens.

import { t, addStrings } from './i18n.js';

addStrings({
  es: {
    sharing_on: 'Compartiendo tu ubicación con el consulado',
    sharing_help: 'Se envía cuando te mueves 100 m o cada 2 minutos, hasta que canceles, el consulado cierre tu caso o pasen 4 horas.',
    sharing_stop: 'Dejar de compartir',
    sharing_stopped: 'Ya no se comparte tu ubicación.',
    sharing_ended: 'Se dejó de compartir tu ubicación.',
  },
  en: {
    sharing_on: 'Sharing your location with the consulate',
    sharing_help: 'Sent when you move 100 m or every 2 minutes, until you cancel, the consulate closes your case or 4 hours pass.',
    sharing_stop: 'Stop sharing',
    sharing_stopped: 'Your location is no longer shared.',
    sharing_ended: 'Your location stopped being shared.',
  },
});

const MOVE_M = 100;
const EVERY_MS = 2 * 60 * 1000;
const HARD_STOP_MS = 4 * 60 * 60 * 1000;
// A fallback read of the position, for browsers whose watch goes quiet.
const TICK_MS = 15 * 1000;
const KEY = 'avisa.sharing';

let live = null;

function metres(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371000 * Math.asin(Math.sqrt(s));
}

function point(pos) {
  return { lat: pos.coords.latitude, lon: pos.coords.longitude, accuracy_m: pos.coords.accuracy };
}

/// Whether this phone is sharing the location of alert `id` now.
export function sharingFor(id) {
  return Boolean(live && live.id === id);
}

/// Starts sharing for an active alert (a second call for the same alert
/// does nothing). `api` is the app's, `from` the location sent with the
/// press, `createdAt` the alert's creation time (ms), `onEnd` is told when
/// sharing ends by itself.
export function startSharing({ id, api, from, createdAt, onEnd }) {
  if (!('geolocation' in navigator)) return false;
  if (sharingFor(id)) return true;
  if (Date.now() - createdAt >= HARD_STOP_MS) return false;
  stopSharing();
  const me = { id, api, onEnd, last: from ? { ...from, at: Date.now() } : null, current: null, sending: false, notBefore: 0 };
  live = me;
  localStorage.setItem(KEY, id);
  const seen = (pos) => {
    if (live !== me) return;
    me.current = point(pos);
    send(me);
  };
  me.watch = navigator.geolocation.watchPosition(seen, () => {}, { enableHighAccuracy: true, maximumAge: 10000 });
  me.timer = setInterval(() => {
    if (Date.now() - createdAt >= HARD_STOP_MS) return end(me);
    navigator.geolocation.getCurrentPosition(seen, () => send(me), { enableHighAccuracy: true, maximumAge: 10000, timeout: 10000 });
  }, TICK_MS);
  return true;
}

async function send(me) {
  if (live !== me || me.sending || !me.current || Date.now() < me.notBefore) return;
  const due = !me.last || metres(me.last, me.current) >= MOVE_M || Date.now() - me.last.at >= EVERY_MS;
  if (!due) return;
  const p = me.current;
  me.sending = true;
  try {
    const r = await me.api('POST', `/api/v1/alerts/${me.id}/locations`, p);
    if (r.ok) me.last = { ...p, at: Date.now() };
    else if (r.status === 409 || r.status === 404) end(me);
    // Too soon, or the trail is full: wait as told.
    else if (r.status === 429) me.notBefore = Date.now() + 1000 * (Number(r.retryAfter) || 10);
  } catch {
    // Offline: the next position or tick tries again.
  } finally {
    me.sending = false;
  }
}

function end(me) {
  if (live !== me) return;
  stopSharing();
  if (me.onEnd) me.onEnd();
}

/// Stops sharing on this phone (after a cancel, or the PIN's stop).
export function stopSharing() {
  if (live) {
    navigator.geolocation.clearWatch(live.watch);
    clearInterval(live.timer);
  }
  live = null;
  localStorage.removeItem(KEY);
}

/// Starts sharing for `alert` if it may, and fills the status screen's
/// #sharing box: what is shared, and a stop that needs the PIN (checked by
/// the server; the duress PIN looks the same).
export function mount(ui, alert) {
  const box = document.getElementById('sharing');
  const created = Number(alert.created_at) || Date.now();
  const on = startSharing({
    id: alert.alert_id,
    api: ui.api,
    from: alert.location ? { lat: alert.location.lat, lon: alert.location.lon } : null,
    createdAt: created,
    onEnd: () => {
      const b = document.getElementById('sharing');
      if (b) b.replaceChildren(ui.h('p', { class: 'muted', id: 'sharing-ended', text: t('sharing_ended') }));
    },
  });
  if (!box) return;
  // Filled already (a status update kept an open PIN form): leave it be.
  if (box.dataset.alert === alert.alert_id && box.childElementCount) return;
  box.dataset.alert = alert.alert_id;
  if (!on) {
    box.replaceChildren();
    return;
  }
  const { h, field } = ui;
  const pin = field({ id: 'sharing-pin', label: t('pin_prompt'), type: 'password', attrs: { inputmode: 'numeric', autocomplete: 'off', maxlength: '8' } });
  const form = h('form', {
    hidden: true,
    onsubmit: async (e) => {
      e.preventDefault();
      ui.clearErrors({ pin });
      try {
        const r = await ui.api('POST', `/api/v1/alerts/${alert.alert_id}/sharing/stop`, { pin: pin.input.value });
        if (r.ok) {
          stopSharing();
          box.replaceChildren(h('p', { class: 'muted', id: 'sharing-ended', text: t('sharing_stopped') }));
        } else {
          ui.setFieldError({ pin }, 'pin', ui.apiError(r).message);
        }
      } catch (err) {
        ui.setFieldError({ pin }, 'pin', err.message);
      }
    },
  }, pin.node, h('div', { class: 'row' },
    h('button', { class: 'button secondary', type: 'submit', id: 'sharing-confirm', text: t('sharing_stop') }),
    h('button', { class: 'button secondary', type: 'button', text: t('cancel'), onclick: () => { form.hidden = true; open.hidden = false; } })));
  const open = h('button', { class: 'button secondary', type: 'button', id: 'sharing-stop', text: t('sharing_stop'), onclick: () => { form.hidden = false; open.hidden = true; pin.input.focus(); } });
  box.replaceChildren(h('div', { class: 'card sharing', role: 'status' },
    h('p', { class: 'sharing-on', text: t('sharing_on') }),
    h('p', { class: 'muted', text: t('sharing_help') }),
    open, form));
}
