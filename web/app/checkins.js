// Check-in timers ("Cita con ICE"): the person schedules an appointment
// with a time to confirm they left by; the server raises the alert if they
// do not. The app's own helpers come in `ui` (app.js), so this screen adds
// nothing to app.js but a route.

import { t } from './i18n.js';

/// datetime-local text (the phone's own time) → RFC 3339 for the server.
const toRfc3339 = (local) => new Date(local).toISOString();

/// A Date → the value a datetime-local input shows (the phone's own time).
function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

const when = (rfc) => new Date(rfc).toLocaleString(undefined, { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

export async function checkinsScreen(ui, message) {
  const { h, show, field, api, apiError, showError, clearErrors, setFieldError } = ui;
  show(h('h1', { text: t('checkins_title') }), h('p', { class: 'loading', text: t('loading') }));
  let r;
  try {
    r = await api('GET', '/api/v1/checkins');
  } catch (err) {
    return show(h('h1', { text: t('checkins_title') }), h('p', { class: 'error', text: err.message }), h('a', { class: 'button secondary', href: '#/', text: t('back_home') }));
  }
  const timers = r.ok ? r.data.checkins : [];
  const scheduled = timers.filter((c) => c.state === 'scheduled');

  // One scheduled timer: its plan, and the PIN to say "I left".
  const timerCard = (c) => {
    const pin = field({ id: `pin-${c.id}`, label: t('pin_prompt'), type: 'password', attrs: { inputmode: 'numeric', maxlength: '8' } });
    const general = h('p', { class: 'error', role: 'alert' });
    const send = (method, path, body, done) => async () => {
      clearErrors({ pin });
      general.textContent = '';
      try {
        const res = await api(method, path, body());
        if (res.ok) checkinsScreen(ui, t(done));
        // A wrong PIN (or a lock) is said beside the PIN; the timer runs on.
        else setFieldError({ pin }, 'pin', apiError(res).message);
      } catch (err) {
        general.textContent = err.message;
      }
    };
    return h('div', { class: 'card checkin', 'data-state': c.state },
      h('h2', { text: c.place || t('checkin_no_place') }),
      h('p', { text: t('checkin_at', { at: when(c.appointment_at) }) }),
      h('p', { class: 'deadline', text: t('checkin_deadline', { at: when(c.deadline) }) }),
      pin.node, general,
      h('button', { class: 'button safe', type: 'button', id: `checkout-${c.id}`, text: t('checkin_checkout'), onclick: send('POST', `/api/v1/checkins/${c.id}/checkout`, () => ({ pin: pin.input.value }), 'checkin_checked_out') }),
      h('button', { class: 'button secondary', type: 'button', id: `cancel-${c.id}`, text: t('checkin_cancel'), onclick: send('DELETE', `/api/v1/checkins/${c.id}`, () => ({ pin: pin.input.value }), 'checkin_cancelled') }));
  };

  // A new timer: the appointment, the time to confirm by (three hours
  // later unless changed), where, and a note for the consulate.
  const start = new Date(Date.now() + 24 * 3600 * 1000);
  start.setMinutes(0, 0, 0);
  const fields = {
    appointment_at: field({ id: 'appointment_at', label: t('checkin_when_label'), type: 'datetime-local', value: toLocalInput(start) }),
    deadline: field({ id: 'deadline', label: t('checkin_deadline_label'), why: t('checkin_deadline_why'), type: 'datetime-local', value: toLocalInput(new Date(start.getTime() + 3 * 3600 * 1000)) }),
    place: field({ id: 'place', label: t('checkin_place_label'), why: t('checkin_place_why'), attrs: { maxlength: '200' } }),
    note: field({ id: 'note', label: t('checkin_note_label'), why: t('checkin_note_why'), type: 'textarea', attrs: { maxlength: '1000' } }),
  };
  fields.appointment_at.input.addEventListener('change', () => {
    const at = new Date(fields.appointment_at.input.value);
    if (!Number.isNaN(at.getTime())) fields.deadline.input.value = toLocalInput(new Date(at.getTime() + 3 * 3600 * 1000));
  });
  const general = h('p', { class: 'error', role: 'alert' });
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      clearErrors(fields);
      general.textContent = '';
      const appointment = fields.appointment_at.input.value;
      const deadline = fields.deadline.input.value;
      if (!appointment) return setFieldError(fields, 'appointment_at', t('checkin_time_needed'));
      if (!deadline) return setFieldError(fields, 'deadline', t('checkin_time_needed'));
      try {
        const res = await api('POST', '/api/v1/checkins', {
          appointment_at: toRfc3339(appointment),
          deadline: toRfc3339(deadline),
          place: fields.place.input.value || null,
          note: fields.note.input.value || null,
        });
        if (res.ok) checkinsScreen(ui, t('checkin_scheduled', { at: when(res.data.deadline) }));
        else showError(res, fields, general);
      } catch (err) {
        general.textContent = err.message;
      }
    },
  },
  fields.appointment_at.node, fields.deadline.node, fields.place.node, fields.note.node, general,
  h('button', { class: 'button', type: 'submit', id: 'schedule', text: t('checkin_schedule') }));

  show(
    h('h1', { text: t('checkins_title') }),
    message ? h('p', { class: 'note', role: 'status', text: message }) : null,
    h('p', { class: 'muted', text: t('checkins_body') }),
    h('div', { id: 'checkin-list' }, scheduled.map(timerCard)),
    scheduled.length >= (r.ok ? r.data.max_scheduled : 10) ? null : h('h2', { text: t('checkin_new') }),
    scheduled.length >= (r.ok ? r.data.max_scheduled : 10) ? null : form,
    h('a', { class: 'button secondary', href: '#/', text: t('back_home') }),
  );
}
