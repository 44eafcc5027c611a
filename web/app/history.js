// The person's history, behind the PIN: past alerts with what became of
// each message, and their check-in timers. Loaded when opened, like the
// timers screen: the first load stays as small as the button needs.

import { t, addStrings } from './i18n.js';

addStrings({
  es: {
    history_title: 'Mi historial',
    history_body: 'Tus alertas y citas, y qué pasó con cada mensaje.',
    history_alerts: 'Alertas',
    history_alert: 'Alerta',
    history_practice: 'Práctica',
    history_cancelled: 'Cancelada',
    history_active: 'Activa',
    history_none: 'Todavía no has enviado ninguna alerta.',
    history_checkin_scheduled: 'Pendiente de confirmar',
    history_checkin_checked_out: 'Confirmaste tu salida',
    history_checkin_cancelled: 'Cancelada',
    history_checkin_fired: 'No se confirmó: se envió tu alerta',
  },
  en: {
    history_title: 'My history',
    history_body: 'Your alerts and appointments, and what became of each message.',
    history_alerts: 'Alerts',
    history_alert: 'Alert',
    history_practice: 'Practice',
    history_cancelled: 'Cancelled',
    history_active: 'Active',
    history_none: 'You have not sent any alert yet.',
    history_checkin_scheduled: 'Waiting to be confirmed',
    history_checkin_checked_out: 'You confirmed you left',
    history_checkin_cancelled: 'Cancelled',
    history_checkin_fired: 'Not confirmed: your alert was sent',
  },
});

const reason = (r) => (r.startsWith('opted_out') ? t('reason_opted_out') : r.startsWith('invalid_number') ? t('reason_invalid_number') : r);

const when = (ms) => new Date(ms).toLocaleString(undefined, { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

export async function historyScreen(ui) {
  const { h, show, api } = ui;
  show(h('h1', { text: t('history_title') }), h('p', { class: 'loading', text: t('loading') }));
  let r;
  try {
    r = await api('GET', '/api/v1/history');
  } catch (err) {
    return show(h('h1', { text: t('history_title') }), h('p', { class: 'error', text: err.message }), h('a', { class: 'button secondary', href: '#/', text: t('back_home') }));
  }
  const alerts = r.ok ? r.data.alerts : [];
  const timers = r.ok ? r.data.checkins : [];
  const alertCard = (a) => h('div', { class: 'card history-alert', 'data-state': a.state },
    h('h2', { text: `${a.practice ? t('history_practice') : t('history_alert')} · ${when(a.created_at)}` }),
    h('p', { class: 'muted', text: a.state === 'cancelled' ? t('history_cancelled') : t('history_active') }),
    a.consulate ? h('p', { text: a.consulate.name }) : null,
    h('ul', { class: 'recipients' }, a.recipients.map((x) => h('li', { 'data-status': x.status },
      h('span', {}, h('span', { class: 'who', text: x.name || t(`kind_${x.kind}`) }),
        x.reason && (x.status === 'failed' || x.status === 'expired') ? h('span', { class: 'reason', text: reason(x.reason) }) : null,
        x.safe_status ? h('span', { class: 'safe-line', text: t('safe_status', { status: t(`status_${x.safe_status}`) }) }) : null),
      h('span', { class: `chip ${x.status}`, text: t(`status_${x.status}`) })))));
  const timerCard = (c) => h('div', { class: 'card', 'data-state': c.state },
    h('h2', { text: c.place || t('checkin_no_place') }),
    h('p', { text: t('checkin_at', { at: when(Date.parse(c.appointment_at)) }) }),
    h('p', { class: 'muted', text: t(`history_checkin_${c.state}`) }));
  show(
    h('h1', { text: t('history_title') }),
    h('p', { class: 'muted', text: t('history_body') }),
    h('h2', { text: t('history_alerts') }),
    h('div', { id: 'history-alerts' }, alerts.length ? alerts.map(alertCard) : h('p', { text: t('history_none') })),
    timers.length ? h('h2', { text: t('checkins_title') }) : null,
    timers.length ? h('div', { id: 'history-checkins' }, timers.map(timerCard)) : null,
    h('a', { class: 'button secondary', href: '#/', text: t('back_home') }),
  );
}
