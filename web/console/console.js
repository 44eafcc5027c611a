// Avisa consulate console: live queue, case detail and handling, audit and
// statistics. Plain modules; Spanish first.

const main = document.getElementById('main');
const flash = document.getElementById('flash');

const TEXT = {
  es: {
    locator: 'Para el localizador de ICE', legal_name: 'Nombre legal', birth: 'Nacimiento', a_number: 'Número A',
    lang: 'English', office: 'Consola', login_title: 'Consola consular', username: 'Usuario', password: 'Contraseña',
    login: 'Entrar', logout: 'Salir', login_failed: 'Usuario o contraseña incorrectos.', locked: 'Demasiados intentos fallidos desde este equipo. Espere {s} segundos e intente de nuevo.',
    queue: 'Alertas', audit: 'Auditoría', stats: 'Estadísticas', state: 'Estado', all_open: 'Abiertas', st_new: 'Nuevas', st_acknowledged: 'Atendidas', st_resolved: 'Resueltas', st_cancelled: 'Canceladas',
    from: 'Desde', to: 'Hasta', empty: 'No hay alertas con estos filtros.', ago_s: 'hace {n} s', ago_m: 'hace {n} min', ago_h: 'hace {n} h', ago_d: 'hace {n} d',
    b_new: 'Nueva', b_acknowledged: 'Atendida', b_resolved: 'Resuelta', b_cancelled: 'Cancelada', b_duress: 'Cancelada bajo presión', b_escalated: 'Escalada', b_sms: 'Por SMS', choose_outcome: '— Elija el resultado —', confirm_resolve: '¿Cerrar el caso como «{outcome}»? Deja de estar abierto para todo el consulado.', confirm_yes: 'Sí, cerrar el caso', confirm_no: 'No', text_erased: '(texto borrado)', erased: 'Se borra', erased_at: 'el recorrido el {trail}; los datos personales el {personal}', implausible: 'ubicación dudosa: demasiado lejos de la anterior para el tiempo transcurrido', b_call: 'Por llamada', b_checkin: 'Cita no confirmada', caller_line: 'Pidió ayuda desde otro teléfono: {number}. Puede ser el de un centro de detención o uno prestado.',
    delivered_of: '{ok} de {total} mensajes salieron', failed_n: '{n} fallaron', no_location: 'Sin ubicación', km: '{d} km del consulado',
    pick: 'Elija una alerta de la lista.', cancelled_banner: 'CANCELADA POR LA PERSONA con su PIN', checkin_missed: 'CITA NO CONFIRMADA.', checkin_plan: 'Tenía cita a las {at} y debía confirmar su salida antes de las {deadline}.', checkin_place: 'Lugar', checkin_note: 'Nota de la persona', checkin_forced_banner: 'CONFIRMÓ SU SALIDA BAJO PRESIÓN: usó su PIN de coacción. Su teléfono muestra la cita como confirmada. No le llame: quien tiene su teléfono podría contestar.', duress_banner: 'CANCELADA BAJO PRESIÓN: la persona usó su PIN de coacción. La alerta SIGUE ACTIVA; su teléfono muestra «cancelada». No le llame: quien tiene su teléfono podría contestar.', duress_alert: '¡{name} canceló BAJO PRESIÓN!', escalated_banner: 'ESCALADA AL CIAM: nadie la atendió a tiempo',
    person: 'Persona', name: 'Nombre', phone: 'Teléfono', language: 'Idioma', home: 'Estado / condado', time: 'Hora', location: 'Ubicación', accuracy: 'precisión ±{m} m',
    distance: 'Distancia al consulado', map_no_tiles: 'Mapa sin servidor de mapas: estados y condados de EE. UU. y el contorno de México (Oficina del Censo de EE. UU., Natural Earth), la trayectoria y el consulado.',
    recipients: 'A quién se avisó', timeline: 'Historial', case: 'Caso', assigned: 'Asignada a', nobody: 'nadie', outcome: 'Resultado',
    acknowledge: 'Tomar el caso', assign: 'Asignar', note: 'Nota', add_note: 'Agregar nota', resolve: 'Resolver', reopen: 'Reabrir',
    facility: 'Centro de detención (busque o escriba)', detail: 'Detalle',
    o_false_alarm: 'Falsa alarma', o_person_safe: 'Persona a salvo', o_detained: 'Detenida', o_released: 'Liberada', o_no_contact: 'Sin contacto', o_other: 'Otro',
    k_created: 'Alerta recibida', k_location: 'Nueva ubicación', k_cancelled: 'Cancelada por la persona', k_acknowledged: 'Caso tomado', k_assigned: 'Asignada',
    k_note: 'Nota', k_resolved: 'Resuelta', k_reopened: 'Reabierta', k_escalated: 'Escalada al CIAM', k_escalated_again: 'Sigue sin atender: escalada otra vez', k_duress: 'Cancelada bajo presión (PIN de coacción)', k_sharing_stopped: 'La persona dejó de compartir su ubicación (con su PIN)', k_sharing_forced: 'Dejó de compartir su ubicación BAJO PRESIÓN (PIN de coacción)', k_duress_change: 'Bajo presión (PIN de coacción) intentó cambiar, sin efecto en la alerta', k_limit_reached: 'Límite de alertas alcanzado: no se avisó otra vez a los contactos ya avisados', dc_cancel_pin: 'su PIN', dc_duress_pin: 'su PIN de coacción', dc_profile: 'su perfil o palabra clave', dc_contacts: 'sus contactos', dc_delete: 'borrar sus datos',
    kind_contact: 'Contacto', kind_self: 'La persona', kind_consulate: 'Guardia del consulado',
    s_unconfirmed: 'Sin confirmación', resent_dup: 'posible duplicado: se envió otra vez sin saber si el primer envío llegó; puede llegar dos veces', s_queued: 'En espera', s_sent: 'Enviado', s_delivered: 'Entregado', s_failed: 'Falló', s_expired: 'Venció', s_withdrawn: 'Retirado',
    notify_on: 'Activar avisos', notify_active: 'Avisos activos', new_alert: 'Nueva alerta de {name}',
    audit_when: 'Cuándo', audit_who: 'Quién', audit_what: 'Acción', audit_alert: 'Alerta',
    stats_alerts: 'Alertas', stats_cancelled: 'Canceladas', stats_ack_median: 'Mediana hasta atender', stats_ack_p90: 'Percentil 90', stats_outcomes: 'Resultados', stats_per: 'Por consulado', csv: 'Descargar CSV',
    supervisors_only: 'Sólo supervisores y administradores.', session_over: 'La sesión terminó. Entre otra vez.', error: 'Algo salió mal: {m}',
    log_call: 'Registrar llamada', date_hint: 'dd/mm/aaaa', date_bad: 'Escriba la fecha como dd/mm/aaaa.', note_empty: 'Escriba la nota antes de agregarla.', queue_below: '{n} más abajo',
    e_not_found: 'Ese caso ya no está o no es de este consulado.', e_case_state: 'El caso cambió mientras tanto; vea su estado y vuelva a intentar.',
    e_csrf: 'La página quedó vieja: recárguela e intente otra vez.', e_forbidden_role: 'Sólo supervisores y administradores pueden hacer esto.',
    e_invalid_body: 'Faltan datos o no son válidos.', e_malformed_json: 'Faltan datos o no son válidos.', e_bad_request: 'Faltan datos o no son válidos.',
    e_body_too_large: 'El texto es demasiado largo.', e_rate_limited: 'Demasiadas solicitudes: espere unos segundos.',
    e_busy: 'El servidor está ocupado: intente en unos segundos.', e_timeout: 'El servidor tardó demasiado: intente otra vez.',
    e_internal: 'Error del servidor: intente otra vez o avise a soporte.', e_unauthorized: 'La sesión terminó. Entre otra vez.',
    arm: 'Activar sonido y avisos del escritorio', arm_why: 'El navegador no deja sonar la alarma hasta que usted haga clic una vez.', title: 'Avisa — Consola consular',
    b_confirm_cancel: 'Cancelada — confirmar', case_no: 'Caso', last_fix: 'Última ubicación', near: 'Cerca de {place}, {admin} ({d} km)', number: 'Número', sent_at: 'Salió', changed_at: 'Último cambio', safe_msg: '«Estoy bien»',
    earlier: 'Alertas anteriores de la persona', none: 'Ninguna', next_steps: 'Siguientes pasos', facilities_near: 'Centros de detención más cercanos', calls: 'Registrar llamada', call_with: 'Con quién', call_result: 'Resultado de la llamada', call_note: 'Nota de la llamada', call_save: 'Registrar llamada',
    w_person: 'La persona', w_contact: 'Un contacto', w_facility: 'Centro de detención', w_ice: 'ICE', w_lawyer: 'Abogado/a', w_other: 'Otro',
    r_spoke: 'habló', r_no_answer: 'no contestó', r_voicemail: 'buzón de voz', r_busy: 'ocupado', r_wrong_number: 'número equivocado', k_call: 'Llamada', reopen_new_location: 'REABIERTA SOLA: llegó una nueva ubicación de la persona después de cerrar el caso',
    a_login: 'entró', a_login_failed: 'entrada fallida', a_logout: 'salió', a_view: 'abrió el caso', a_acknowledge: 'tomó el caso', a_assign: 'asignó', a_note: 'nota', a_call: 'llamada', a_resolve: 'resolvió', a_reopen: 'reabrió', a_read_audit: 'leyó la auditoría', a_read_stats: 'leyó las estadísticas', a_denied: 'ACCESO DENEGADO (otro consulado)', a_search: 'buscó', a_escalate: 'escaló (nadie la atendió)', again_word: 'otra vez',
    role_operator: 'operador/a', role_supervisor: 'supervisor/a', role_admin: 'administrador/a',
    src_app: 'App', src_sms: 'SMS', src_call: 'llamada', src_checkin: 'cita no confirmada',
    idle_warn: 'La sesión se cerrará por inactividad en {s} s. Haga clic o pulse una tecla para seguir.',
    gw_down: 'Pasarela de SMS «{name}» fuera de servicio desde {since}: {problem}. Los mensajes salen por otra pasarela o esperan a que vuelva.',
  },
  en: {
    locator: 'For ICE\'s detainee locator', legal_name: 'Legal name', birth: 'Born', a_number: 'A-number',
    lang: 'Español', office: 'Console', login_title: 'Consular console', username: 'Username', password: 'Password',
    login: 'Log in', logout: 'Log out', login_failed: 'Wrong username or password.', locked: 'Too many failed attempts from this device. Wait {s} seconds and try again.',
    queue: 'Alerts', audit: 'Audit', stats: 'Statistics', state: 'State', all_open: 'Open', st_new: 'New', st_acknowledged: 'Acknowledged', st_resolved: 'Resolved', st_cancelled: 'Cancelled',
    from: 'From', to: 'To', empty: 'No alerts with these filters.', ago_s: '{n} s ago', ago_m: '{n} min ago', ago_h: '{n} h ago', ago_d: '{n} d ago',
    b_new: 'New', b_acknowledged: 'Acknowledged', b_resolved: 'Resolved', b_cancelled: 'Cancelled', b_duress: 'Cancelled under duress', b_escalated: 'Escalated', b_sms: 'By SMS', choose_outcome: '— Choose the outcome —', confirm_resolve: 'Close the case as “{outcome}”? It stops being open for the whole consulate.', confirm_yes: 'Yes, close the case', confirm_no: 'No', text_erased: '(text erased)', erased: 'Erased', erased_at: 'the trail on {trail}; the personal data on {personal}', implausible: 'doubtful location: too far from the one before for the time between them', b_call: 'By phone call', b_checkin: 'Missed check-in', caller_line: 'Asked for help from another phone: {number}. It may be a detention facility\'s or a borrowed one.',
    delivered_of: '{ok} of {total} messages went out', failed_n: '{n} failed', no_location: 'No location', km: '{d} km from the consulate',
    pick: 'Pick an alert from the list.', cancelled_banner: 'CANCELLED BY THE PERSON with their PIN', checkin_missed: 'MISSED CHECK-IN.', checkin_plan: 'Had an appointment at {at} and was to check out by {deadline}.', checkin_place: 'Place', checkin_note: 'Note from the person', checkin_forced_banner: 'CHECKED OUT UNDER DURESS: used their duress PIN. Their phone shows the appointment as confirmed. Do not call them: whoever holds their phone may answer.', duress_banner: 'CANCELLED UNDER DURESS: the person used their duress PIN. The alert STILL STANDS; their phone shows "cancelled". Do not call them: whoever holds their phone may answer.', duress_alert: '{name} cancelled UNDER DURESS!', escalated_banner: 'ESCALATED TO CIAM: nobody took it in time',
    person: 'Person', name: 'Name', phone: 'Phone', language: 'Language', home: 'State / county', time: 'Time', location: 'Location', accuracy: 'accuracy ±{m} m',
    distance: 'Distance to the consulate', map_no_tiles: 'Map without a tile server: US states and counties and Mexico\'s outline (US Census Bureau, Natural Earth), the trail and the consulate.',
    recipients: 'Who was told', timeline: 'Timeline', case: 'Case', assigned: 'Assigned to', nobody: 'nobody', outcome: 'Outcome',
    acknowledge: 'Take the case', assign: 'Assign', note: 'Note', add_note: 'Add note', resolve: 'Resolve', reopen: 'Reopen',
    facility: 'Detention facility (search or type)', detail: 'Detail',
    o_false_alarm: 'False alarm', o_person_safe: 'Person safe', o_detained: 'Detained', o_released: 'Released', o_no_contact: 'No contact', o_other: 'Other',
    k_created: 'Alert received', k_location: 'New location', k_cancelled: 'Cancelled by the person', k_acknowledged: 'Case taken', k_assigned: 'Assigned',
    k_note: 'Note', k_resolved: 'Resolved', k_reopened: 'Reopened', k_escalated: 'Escalated to CIAM', k_escalated_again: 'Still not taken: escalated again', k_duress: 'Cancelled under duress (duress PIN)', k_sharing_stopped: 'The person stopped sharing their location (with their PIN)', k_sharing_forced: 'Stopped sharing their location UNDER DURESS (duress PIN)', k_duress_change: 'Under duress (duress PIN) tried to change, with no effect on the alert', k_limit_reached: 'Alert limit reached: contacts already told were not told again', dc_cancel_pin: 'their PIN', dc_duress_pin: 'their duress PIN', dc_profile: 'their profile or keyword', dc_contacts: 'their contacts', dc_delete: 'to delete their data',
    kind_contact: 'Contact', kind_self: 'The person', kind_consulate: 'Consulate duty phone',
    s_unconfirmed: 'Not confirmed', resent_dup: 'possible duplicate: sent again without knowing whether the first send arrived; may arrive twice', s_queued: 'Waiting', s_sent: 'Sent', s_delivered: 'Delivered', s_failed: 'Failed', s_expired: 'Expired', s_withdrawn: 'Withdrawn',
    notify_on: 'Turn on alerts', notify_active: 'Alerts on', new_alert: 'New alert from {name}',
    audit_when: 'When', audit_who: 'Who', audit_what: 'Action', audit_alert: 'Alert',
    stats_alerts: 'Alerts', stats_cancelled: 'Cancelled', stats_ack_median: 'Median to acknowledge', stats_ack_p90: '90th percentile', stats_outcomes: 'Outcomes', stats_per: 'Per consulate', csv: 'Download CSV',
    supervisors_only: 'Supervisors and admins only.', session_over: 'The session ended. Log in again.', error: 'Something went wrong: {m}',
    log_call: 'Log a call', date_hint: 'mm/dd/yyyy', date_bad: 'Write the date as mm/dd/yyyy.', note_empty: 'Write the note before adding it.', queue_below: '{n} more below',
    e_not_found: 'That case is gone or is not this consulate\'s.', e_case_state: 'The case changed meanwhile; check its state and try again.',
    e_csrf: 'The page is stale: reload it and try again.', e_forbidden_role: 'Only supervisors and admins can do this.',
    e_invalid_body: 'Something is missing or not valid.', e_malformed_json: 'Something is missing or not valid.', e_bad_request: 'Something is missing or not valid.',
    e_body_too_large: 'The text is too long.', e_rate_limited: 'Too many requests: wait a few seconds.',
    e_busy: 'The server is busy: try again in a few seconds.', e_timeout: 'The server took too long: try again.',
    e_internal: 'Server error: try again or tell support.', e_unauthorized: 'The session ended. Log in again.',
    arm: 'Turn on sound and desktop alerts', arm_why: 'The browser will not sound the alarm until you click once.', title: 'Avisa — Consular console',
    b_confirm_cancel: 'Cancelled — confirm', case_no: 'Case', last_fix: 'Last location', near: 'Near {place}, {admin} ({d} km)', number: 'Number', sent_at: 'Sent', changed_at: 'Last change', safe_msg: '"I\'m safe"',
    earlier: 'The person\'s earlier alerts', none: 'None', next_steps: 'Next steps', facilities_near: 'Nearest detention facilities', calls: 'Log a call', call_with: 'With whom', call_result: 'How it went', call_note: 'Call note', call_save: 'Log call',
    w_person: 'The person', w_contact: 'A contact', w_facility: 'Detention facility', w_ice: 'ICE', w_lawyer: 'Lawyer', w_other: 'Other',
    r_spoke: 'spoke', r_no_answer: 'no answer', r_voicemail: 'voicemail', r_busy: 'busy', r_wrong_number: 'wrong number', k_call: 'Call', reopen_new_location: 'REOPENED BY ITSELF: a new location of the person arrived after the case was closed',
    a_login: 'logged in', a_login_failed: 'failed login', a_logout: 'logged out', a_view: 'opened the case', a_acknowledge: 'took the case', a_assign: 'assigned', a_note: 'note', a_call: 'call', a_resolve: 'resolved', a_reopen: 'reopened', a_read_audit: 'read the audit', a_read_stats: 'read the statistics', a_denied: 'ACCESS DENIED (another consulate)', a_search: 'searched', a_escalate: 'escalated (nobody took it)', again_word: 'again',
    role_operator: 'operator', role_supervisor: 'supervisor', role_admin: 'admin',
    src_app: 'App', src_sms: 'SMS', src_call: 'phone call', src_checkin: 'missed check-in',
    idle_warn: 'The session ends for inactivity in {s} s. Click or press a key to stay.',
    gw_down: 'SMS gateway "{name}" out of service since {since}: {problem}. Messages go by another gateway or wait for it.',
  },
};

let lang = localStorage.getItem('avisa.console.lang') === 'en' ? 'en' : 'es';
const t = (k, vars = {}) => (TEXT[lang][k] ?? k).replace(/\{(\w+)\}/g, (_, x) => String(vars[x] ?? ''));

const state = { me: null, tab: 'queue', filter: { state: '', from: '', to: '' }, queue: [], open: [], known: new Set(), duressKnown: new Set(), selected: null, detail: null, events: null, audio: null, map: null, rings: 0, alarmTimer: null, idleTimer: null };

// The officer's own input keeps the session; the page's polling does not.
let lastInput = Date.now();
for (const ev of ['pointerdown', 'keydown']) {
  document.addEventListener(ev, () => { lastInput = Date.now(); idleCheck(); }, { capture: true, passive: true });
}

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && state.me) headers['x-csrf-token'] = state.me.csrf_token;
  if (Date.now() - lastInput < 60000) headers['x-avisa-activity'] = '1';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (r.status === 401) forgetSignedIn();
  if (r.status === 401 && state.me) {
    state.me = null;
    loginScreen(t('session_over'));
  }
  return { ok: r.ok, status: r.status, data, headers: r.headers };
}

function say(text) { flash.textContent = text || ''; }

// A refusal in the console's language: the server's words are English and
// for the log; its code says what happened.
function errorText(r) {
  const code = r.data && r.data.error ? r.data.error.code : null;
  const known = code && TEXT[lang][`e_${code}`];
  return known || t('error', { m: code || r.status });
}

function age(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return t('ago_s', { n: s });
  if (s < 3600) return t('ago_m', { n: Math.round(s / 60) });
  if (s < 86400) return t('ago_h', { n: Math.round(s / 3600) });
  return t('ago_d', { n: Math.round(s / 86400) });
}

// Every time in the consulate's own zone, named (a night shift in Los
// Angeles reads Pacific time whatever the computer says).
const clock = (ms) => new Date(ms).toLocaleString(lang === 'es' ? 'es-MX' : 'en-US', {
  year: '2-digit', month: '2-digit', day: '2-digit', hour: 'numeric', minute: '2-digit', second: '2-digit',
  timeZone: (state.me && state.me.time_zone) || undefined, timeZoneName: 'short',
});
// The same instant in UTC, on hover.
const utc = (ms) => `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
const when = (ms, attrs = {}) => h('time', { ...attrs, datetime: new Date(ms).toISOString(), title: utc(ms), text: clock(ms) });

function header() {
  document.documentElement.lang = lang;
  document.getElementById('lang').textContent = t('lang');
  const logout = document.getElementById('logout');
  const notify = document.getElementById('notify');
  logout.textContent = t('logout');
  logout.hidden = !state.me;
  notify.hidden = !state.me;
  notify.textContent = state.audio ? t('notify_active') : t('notify_on');
  document.getElementById('office').textContent = state.me ? state.me.consulate.name : t('office');
  document.getElementById('who').textContent = state.me ? `${state.me.username} · ${t('role_' + state.me.role)}` : '';
}

// A warning before the idle timeout ends the session (it counts the
// officer's clicks and keys; an alert nobody takes still escalates by SMS).
function idleCheck() {
  const warn = document.getElementById('idle-warn');
  if (!state.me) { if (warn) warn.remove(); return; }
  const left = Math.round(state.me.idle_seconds - (Date.now() - lastInput) / 1000);
  if (left > 120) { if (warn) warn.remove(); return; }
  const text = t('idle_warn', { s: Math.max(0, left) });
  if (warn) warn.textContent = text;
  else document.body.insertBefore(h('div', { id: 'idle-warn', class: 'idle-warn', role: 'alert', text }), main);
}

// ---- login -------------------------------------------------------------------

function loginScreen(message) {
  stopEvents();
  header();
  state.open = [];
  showCount();
  idleCheck();
  const armed = document.getElementById('arm');
  if (armed) armed.remove();
  const error = h('p', { class: 'error', role: 'alert', text: message || '' });
  const user = h('input', { id: 'username', autocomplete: 'username', required: true });
  const pass = h('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true });
  main.replaceChildren(h('form', {
    class: 'login',
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = '';
      const r = await api('POST', '/api/v1/console/login', { username: user.value, password: pass.value });
      if (r.ok) {
        state.me = r.data;
        start();
      } else if (r.status === 429) {
        error.textContent = t('locked', { s: Number(r.headers.get('retry-after') || 60) });
      } else {
        error.textContent = t('login_failed');
      }
    },
  }, h('h1', { text: t('login_title') }), h('label', { for: 'username', text: t('username') }), user,
  h('label', { for: 'password', text: t('password') }), pass, error, h('button', { class: 'primary', type: 'submit', text: t('login') })));
  user.focus();
}

// ---- live events, sound, notifications -----------------------------------------

function beep(tones = [880, 660, 880]) {
  if (!state.audio) return;
  const ctx = state.audio;
  for (const [i, f] of tones.entries()) {
    const o = ctx.createOscillator();
    const g = ctx.createGain();
    o.frequency.value = f;
    g.gain.value = 0.2;
    o.connect(g).connect(ctx.destination);
    o.start(ctx.currentTime + i * 0.22);
    o.stop(ctx.currentTime + i * 0.22 + 0.18);
  }
}

// A click lets the page play sound and ask for notifications: asked once
// per load by a banner nobody can miss.
async function arm() {
  state.audio = state.audio || new AudioContext();
  if (state.audio.state === 'suspended') await state.audio.resume();
  if ('Notification' in window && Notification.permission === 'default') await Notification.requestPermission();
  beep();
  const banner = document.getElementById('arm');
  if (banner) banner.remove();
  header();
}

function armBanner() {
  if (state.audio || document.getElementById('arm')) return;
  document.body.insertBefore(h('div', { id: 'arm', class: 'arm', role: 'alert' },
    h('button', { type: 'button', id: 'arm-button', class: 'arm-button', text: t('arm'), onclick: arm }),
    h('span', { text: t('arm_why') })), main);
}

document.getElementById('notify').addEventListener('click', arm);

// Waiting: a real alert nobody took (a cancelled one waits for a
// confirmation, not an alarm).
const waiting = (a) => a.case_state === 'new' && a.state === 'active';

// The alarm insists: while any alert waits it sounds and flashes again
// every `alarm_every_seconds`, louder for a forced cancel or an escalation.
function ring() {
  const pending = state.open.filter(waiting);
  document.body.dataset.alarm = pending.length ? 'on' : 'off';
  if (!pending.length) return;
  const loud = pending.some((a) => a.duress_at || a.escalated);
  state.rings += 1;
  document.body.dataset.rings = String(state.rings);
  beep(loud ? [988, 740, 988, 740, 988, 740] : [880, 660, 880]);
  document.body.classList.remove('flash');
  void document.body.offsetWidth;
  document.body.classList.add('flash');
}

function startAlarm() {
  stopAlarm();
  state.alarmTimer = setInterval(ring, Math.max(2, state.me.alarm_every_seconds || 10) * 1000);
  state.idleTimer = setInterval(idleCheck, 5000);
}

function stopAlarm() {
  if (state.alarmTimer) clearInterval(state.alarmTimer);
  if (state.idleTimer) clearInterval(state.idleTimer);
  state.alarmTimer = null;
  state.idleTimer = null;
  document.body.dataset.alarm = 'off';
}

// The tab's title and icon carry the count ("(3) Avisa"), seen from any
// other tab or window.
function showCount() {
  const n = state.open.filter(waiting).length;
  document.title = n ? `(${n}) ${t('title')}` : t('title');
  const link = document.querySelector('link[rel="icon"]');
  if (!n) { link.type = 'image/svg+xml'; link.href = '/icon.svg'; return; }
  const c = document.createElement('canvas');
  c.width = 64; c.height = 64;
  const g = c.getContext('2d');
  g.fillStyle = '#b00020';
  g.beginPath(); g.arc(32, 32, 31, 0, Math.PI * 2); g.fill();
  g.fillStyle = '#fff';
  g.font = 'bold 40px sans-serif';
  g.textAlign = 'center'; g.textBaseline = 'middle';
  g.fillText(n > 9 ? '9+' : String(n), 32, 35);
  link.type = 'image/png';
  link.href = c.toDataURL('image/png');
}

function startEvents() {
  stopEvents();
  let timer = null;
  const es = new EventSource('/api/v1/console/events');
  es.addEventListener('changed', (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => refresh(e.data), 150);
  });
  // The session ended elsewhere (a password reset, a disabled account,
  // a logout in another tab): names and cases leave the screen at once.
  es.addEventListener('ended', () => {
    stopEvents();
    if (state.me) { state.me = null; loginScreen(t('session_over')); }
  });
  // EventSource reconnects by itself; a refused reconnect (401) closes it,
  // and asking who is logged in clears the screen if nobody is.
  es.onerror = () => { if (es.readyState === EventSource.CLOSED) api('GET', '/api/v1/console/me'); };
  state.events = es;
  // A slow poll as well, in case a proxy drops the stream.
  state.poll = setInterval(() => refresh(null), 15000);
}

function stopEvents() {
  stopAlarm();
  if (state.events) state.events.close();
  if (state.poll) clearInterval(state.poll);
  state.events = null;
  state.poll = null;
}

async function refresh(changedId) {
  if (state.tab !== 'queue') return;
  await loadQueue();
  // Never redraw the open case under someone's half-written note or choice.
  if (state.dirty) return;
  if (state.selected && (!changedId || changedId === state.selected)) await loadDetail(state.selected, false);
}

// ---- queue -----------------------------------------------------------------------

async function loadQueue() {
  // The open queue always (the alarm counts it); a filtered list only when
  // asked (a search through past cases is audited).
  const r = await api('GET', '/api/v1/console/alerts');
  if (!r.ok) return;
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filter)) if (v) p.set(k, v);
  const shown = [...p.keys()].length ? await api('GET', `/api/v1/console/alerts?${p}`) : r;
  const fresh = r.data.filter((a) => !state.known.has(a.alert_id) && waiting(a));
  state.open = r.data;
  if (state.known.size && fresh.length) {
    ring();
    if ('Notification' in window && Notification.permission === 'granted') {
      for (const a of fresh) new Notification('Avisa', { body: t('new_alert', { name: a.person_name || '?' }), tag: a.alert_id, requireInteraction: true });
    }
  }
  // A cancel forced with the duress PIN: a sound of its own, low and long.
  const forced = r.data.filter((a) => a.duress_at && !state.duressKnown.has(a.alert_id));
  if (forced.length) {
    beep([440, 330, 440, 330, 440, 330]);
    if ('Notification' in window && Notification.permission === 'granted') {
      for (const a of forced) new Notification('Avisa', { body: t('duress_alert', { name: a.person_name || '?' }), tag: `${a.alert_id}-duress`, requireInteraction: true });
    }
  }
  for (const a of forced) state.duressKnown.add(a.alert_id);
  for (const a of r.data) state.known.add(a.alert_id);
  if (!state.known.size) state.known.add('-');
  state.queue = shown.ok ? shown.data : [];
  loadStatus();
  document.body.dataset.alarm = state.open.some(waiting) ? 'on' : 'off';
  showCount();
  renderQueue();
}

// The status bar: an SMS gateway out of service (our account refused,
// repeated failures) means messages may be waiting.
async function loadStatus() {
  const r = await api('GET', '/api/v1/console/status');
  let bar = document.getElementById('gateway-bar');
  const down = r.ok ? r.data.gateways.filter((g) => !g.up && g.problem) : [];
  if (!down.length) { if (bar) bar.remove(); return; }
  if (!bar) {
    bar = h('div', { id: 'gateway-bar', class: 'gateway-bar', role: 'alert' });
    document.body.insertBefore(bar, main);
  }
  bar.replaceChildren(...down.map((g) => h('div', { text: t('gw_down', { name: g.name, since: g.since ? clock(g.since) : '—', problem: g.problem }) })));
}

function badges(a) {
  return h('span', { class: 'badges' },
    a.duress_at ? h('span', { class: 'badge duress', text: t('b_duress') }) : null,
    a.state === 'cancelled' ? h('span', { class: 'badge cancelled', text: t(a.case_state === 'new' ? 'b_confirm_cancel' : 'b_cancelled') }) : null,
    a.escalated ? h('span', { class: 'badge escalated', text: t('b_escalated') }) : null,
    a.state === 'cancelled' && a.case_state === 'new' ? null : h('span', { class: `badge ${a.case_state}`, text: t(`b_${a.case_state}`) }),
    { sms: 1, call: 1, checkin: 1 }[a.source] ? h('span', { class: 'badge', text: t('b_' + a.source) }) : null);
}

function renderQueue() {
  const list = document.getElementById('queue');
  if (!list) return;
  list.replaceChildren(...(state.queue.length ? state.queue.map((a) => {
    const ok = a.delivery.sent + a.delivery.delivered;
    const cls = [a.state === 'cancelled' ? 'cancelled' : a.case_state, a.escalated ? 'escalated' : '', a.duress_at ? 'duress' : ''].join(' ');
    return h('li', { class: cls, tabindex: '0', 'data-id': a.alert_id, 'aria-current': a.alert_id === state.selected ? 'true' : 'false',
      onclick: () => loadDetail(a.alert_id, true), onkeydown: (e) => { if (e.key === 'Enter') loadDetail(a.alert_id, true); } },
    h('div', { class: 'row' }, h('span', { class: 'name', text: a.person_name || '—' }), h('span', { class: 'meta', title: utc(a.created_at), text: age(a.created_at) })),
    a.case_number ? h('div', { class: 'case-no', text: a.case_number }) : null,
    h('div', { class: 'row' }, badges(a), h('span', { class: 'meta', text: a.distance_km !== null ? t('km', { d: a.distance_km }) : (a.place || t('no_location')) })),
    h('div', { class: 'meta' }, t('delivered_of', { ok, total: a.delivery.total }), a.delivery.failed ? ` · ${t('failed_n', { n: a.delivery.failed })}` : '',
      a.assigned_to ? ` · ${t('assigned')}: ${a.assigned_to}` : '', state.me.consulate.id === 'ciam' && a.consulate_id ? ` · ${a.consulate_id}` : ''));
  }) : [h('li', { class: 'muted', text: t('empty') })]));
  countBelow();
}

// "31/12/2026" (Spanish) or "12/31/2026" (English) to "2026-12-31"; null
// when it is no date.
function isoDate(text) {
  const m = text.trim().match(/^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/);
  if (!m) return null;
  const [day, month] = lang === 'es' ? [m[1], m[2]] : [m[2], m[1]];
  const d = new Date(Date.UTC(+m[3], +month - 1, +day));
  if (d.getUTCDate() !== +day || d.getUTCMonth() !== +month - 1) return null;
  return d.toISOString().slice(0, 10);
}

function shownDate(iso) {
  if (!iso) return '';
  const [y, m, d] = iso.split('-');
  return lang === 'es' ? `${d}/${m}/${y}` : `${m}/${d}/${y}`;
}

// How many of the queue's rows are below the screen's edge: the oldest
// waiting case may be one of them on a laptop.
function countBelow() {
  const note = document.getElementById('queue-below');
  if (!note) return;
  const edge = window.innerHeight - note.offsetHeight;
  const below = [...document.querySelectorAll('#queue li[data-id]')].filter((li) => li.getBoundingClientRect().top > edge).length;
  note.hidden = below === 0;
  note.textContent = t('queue_below', { n: below });
}
window.addEventListener('scroll', countBelow, { passive: true });
window.addEventListener('resize', countBelow);

function queueTab() {
  const stateSel = h('select', { id: 'f-state', onchange: (e) => { state.filter.state = e.target.value; loadQueue(); } },
    ['', 'new', 'acknowledged', 'resolved', 'cancelled'].map((s) => h('option', { value: s, selected: state.filter.state === s, text: s ? t(`st_${s}`) : t('all_open') })));
  // Dates typed the console's way (dd/mm/aaaa in Spanish): the browser's
  // own date field follows its install language, not the console's.
  const date = (k) => h('input', { type: 'text', id: `f-${k}`, inputmode: 'numeric', autocomplete: 'off', placeholder: t('date_hint'), value: shownDate(state.filter[k]),
    onchange: (e) => {
      const iso = isoDate(e.target.value);
      if (e.target.value.trim() && !iso) { say(t('date_bad')); e.target.focus(); return; }
      say('');
      state.filter[k] = iso || '';
      loadQueue();
    } });
  return h('div', { class: 'layout' },
    h('section', { class: 'panel', 'aria-label': t('queue') },
      h('div', { class: 'filters' },
        h('div', {}, h('label', { for: 'f-state', text: t('state') }), stateSel),
        h('div', {}, h('label', { for: 'f-from', text: t('from') }), date('from')),
        h('div', {}, h('label', { for: 'f-to', text: t('to') }), date('to'))),
      h('ul', { class: 'queue', id: 'queue', 'aria-live': 'polite' }),
      h('p', { class: 'queue-below', id: 'queue-below', hidden: true })),
    h('section', { class: 'panel', id: 'detail', 'aria-live': 'polite' }, h('p', { class: 'muted', text: t('pick') })));
}

// ---- detail ----------------------------------------------------------------------

async function loadDetail(id, focus) {
  if (focus) state.dirty = false;
  state.selected = id;
  if (focus) history.replaceState(null, '', `/console/alerts/${id}`);
  // A live refresh's answer can land after the officer began to type, or
  // after an action of theirs drew a newer case: then it is dropped, never
  // drawn over the half-written note or the newer state.
  const drawn = state.drawn;
  const r = await api('GET', `/api/v1/console/alerts/${id}`);
  if (!focus && (state.dirty || state.drawn !== drawn || state.selected !== id)) return;
  if (!r.ok) {
    document.getElementById('detail').replaceChildren(h('p', { class: 'error', text: errorText(r) }));
    return;
  }
  state.detail = r.data;
  renderDetail(r.data);
  renderQueue();
  // A row low in a long list: the case opens at its top, name and banners
  // in view.
  if (focus) document.getElementById('detail').scrollIntoView({ block: 'start' });
}

// The base map without a tile server: US states and counties and Mexico's
// outline, from files served by Avisa itself, loaded once on first use.
let atlas = null;
function baseMap() {
  atlas = atlas || (async () => {
    if (!window.topojson) {
      await new Promise((ok, fail) => {
        const s = document.createElement('script');
        s.src = '/console/vendor/topojson/topojson-client.min.js';
        s.onload = ok;
        s.onerror = fail;
        document.head.append(s);
      });
    }
    const [us, mx] = await Promise.all([
      fetch('/console/vendor/atlas/us-counties-10m.json').then((r) => r.json()),
      fetch('/console/vendor/atlas/mexico-50m.geojson').then((r) => r.json()),
    ]);
    return {
      land: [window.topojson.feature(us, us.objects.nation), mx],
      counties: window.topojson.mesh(us, us.objects.counties, (a, b) => a !== b && Math.floor(a.id / 1000) === Math.floor(b.id / 1000)),
      states: window.topojson.mesh(us, us.objects.states, (a, b) => a !== b),
    };
  })().catch(() => { atlas = null; return null; });
  return atlas;
}

function drawBase(map) {
  baseMap().then((b) => {
    if (!b || state.map !== map) return;
    const pane = map.createPane('base');
    pane.style.zIndex = 250;
    const opts = { pane, interactive: false };
    for (const land of b.land) L.geoJSON(land, { ...opts, style: { color: '#8a97a8', weight: 1, fillColor: '#fbfaf5', fillOpacity: 1 } }).addTo(map);
    L.geoJSON(b.counties, { ...opts, style: { color: '#b9c2cf', weight: 0.6, fill: false } }).addTo(map);
    L.geoJSON(b.states, { ...opts, style: { color: '#5b6b80', weight: 1.4, fill: false } }).addTo(map);
    map.getContainer().dataset.base = 'drawn';
  });
}

function drawMap(d) {
  const box = document.getElementById('map');
  if (!box || !window.L || !d.trail.length) return;
  if (state.map) { state.map.remove(); state.map = null; }
  const map = L.map(box, { attributionControl: !!state.me.tile_url, maxZoom: 18 });
  L.control.scale({ imperial: lang === 'en', metric: true }).addTo(map);
  if (state.me.tile_url) L.tileLayer(state.me.tile_url, { maxZoom: 19, attribution: '© OpenStreetMap' }).addTo(map);
  const pts = d.trail.map((p) => [p.lat, p.lon]);
  L.polyline(pts, { color: '#b00020', weight: 3 }).addTo(map);
  d.trail.forEach((p, i) => {
    const last = i === d.trail.length - 1;
    L.circleMarker([p.lat, p.lon], { radius: last ? 8 : 4, color: p.implausible ? '#8a5a00' : '#b00020', dashArray: p.implausible ? '3' : null, fillOpacity: last ? 0.9 : 0.4 }).addTo(map)
      .bindTooltip(clock(p.at) + (p.implausible ? ' — ' + t('implausible') : ''));
    if (last && p.accuracy_m) L.circle([p.lat, p.lon], { radius: p.accuracy_m, color: '#b00020', weight: 1, fillOpacity: 0.08 }).addTo(map);
  });
  const bounds = L.latLngBounds(pts);
  if (d.consulate_location) {
    const c = [d.consulate_location.lat, d.consulate_location.lon];
    L.circleMarker(c, { radius: 7, color: '#0d2a5c', fillOpacity: 0.9 }).addTo(map).bindTooltip(d.consulate ? d.consulate.name : '');
    bounds.extend(c);
  }
  // Without tiles, start where the counties and the state give context;
  // zooming in goes to street level (18), the scale saying how far.
  map.fitBounds(bounds.pad(0.3), { maxZoom: state.me.tile_url ? 15 : 11 });
  state.map = map;
  if (!state.me.tile_url) drawBase(map);
}

// A timeline entry's detail in words: outcome and call codes translated.
function eventDetail(e) {
  if (!e.detail || e.kind === 'created') return e.kind === 'created' && e.detail ? ` — ${t('src_' + e.detail)}` : '';
  if (e.kind === 'call') {
    const [head, ...note] = e.detail.split('\n');
    const [w, r] = head.split(' ');
    return ` — ${t('w_' + w)}: ${t('r_' + r)}${note.length ? ` · ${note.join(' ')}` : ''}`;
  }
  if (e.kind === 'reopened' && e.detail === 'new_location') return ` — ${t('reopen_new_location')}`;
  if (e.kind === 'duress_change') return `: ${t('dc_' + e.detail)}`;
  if (e.kind === 'resolved') {
    const [o, ...rest] = e.detail.split(': ');
    return ` — ${t('o_' + o)}${rest.length ? `: ${rest.join(': ')}` : ''}`;
  }
  return ` — ${e.detail}`;
}

function callForm(d) {
  const opts = (prefix, codes) => codes.map((c) => h('option', { value: c, text: t(prefix + c) }));
  const withSel = h('select', { id: 'call-with' }, opts('w_', ['person', 'contact', 'facility', 'ice', 'lawyer', 'other']));
  const resultSel = h('select', { id: 'call-result' }, opts('r_', ['spoke', 'no_answer', 'voicemail', 'busy', 'wrong_number']));
  const note = h('input', { id: 'call-note', maxlength: '1000' });
  return h('form', { id: 'call-form', onsubmit: (e) => { e.preventDefault(); act(d, 'calls', { with: withSel.value, result: resultSel.value, note: note.value || null }); } },
    h('h3', { text: t('calls') }),
    h('div', { class: 'inline' },
      h('div', {}, h('label', { for: 'call-with', text: t('call_with') }), withSel),
      h('div', {}, h('label', { for: 'call-result', text: t('call_result') }), resultSel)),
    h('label', { for: 'call-note', text: t('call_note') }), note,
    h('button', { class: 'secondary', type: 'submit', id: 'call-save', text: t('call_save') }));
}

function renderDetail(d) {
  const box = document.getElementById('detail');
  if (!box) return;
  state.drawn = (state.drawn || 0) + 1;
  // Where the officer was stays where they are: a redraw keeps the focus.
  const focused = box.contains(document.activeElement) ? document.activeElement.id : '';
  const last = d.location;
  const fix = d.trail.length ? d.trail[d.trail.length - 1] : null;
  const caseOpen = d.case.state !== 'resolved';
  const actions = [];
  // The one next action, next to the name (above the fold on a laptop):
  // taking the case tells the person the consulate has them.
  const next = d.case.state === 'new'
    ? h('button', { class: 'primary', type: 'button', id: 'ack', text: t('acknowledge'), onclick: () => act(d, 'acknowledge') })
    : caseOpen ? h('button', { class: 'secondary', type: 'button', id: 'next-call', text: t('log_call'), onclick: () => {
      const form = document.getElementById('call-form');
      if (form) { form.scrollIntoView({ block: 'center' }); document.getElementById('call-with').focus(); }
    } }) : null;
  if (caseOpen) {
    const who = h('select', { id: 'assign-to' });
    // The signed-in officer first: never someone else by default.
    api('GET', '/api/v1/console/staff').then((r) => { if (r.ok) who.replaceChildren(...r.data.map((s) => h('option', { value: s.username, text: `${s.username} (${s.consulate_id})`, selected: s.username === state.me.username }))); });
    actions.push(h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); act(d, 'assign', { username: who.value }); } },
      h('div', {}, h('label', { for: 'assign-to', text: t('assigned') }), who), h('button', { class: 'secondary', type: 'submit', text: t('assign') })));
  }
  const noteText = h('textarea', { id: 'note-text', maxlength: '4000' });
  actions.push(h('form', { onsubmit: (e) => {
    e.preventDefault();
    // An empty note is never sent: said here, in the console's language.
    if (!noteText.value.trim()) { say(t('note_empty')); noteText.focus(); return; }
    act(d, 'notes', { text: noteText.value });
  } },
    h('label', { for: 'note-text', text: t('note') }), noteText, h('button', { class: 'secondary', type: 'submit', id: 'add-note', text: t('add_note') })));
  actions.push(callForm(d));
  if (caseOpen) {
    const outcome = h('select', { id: 'outcome', required: true },
      h('option', { value: '', text: t('choose_outcome') }),
      ['false_alarm', 'person_safe', 'detained', 'released', 'no_contact', 'other'].map((o) => h('option', { value: o, text: t(`o_${o}`) })));
    const facility = h('input', { id: 'facility', list: 'facility-list', maxlength: '300' });
    const options = h('datalist', { id: 'facility-list' });
    facility.addEventListener('input', async () => {
      const r = await api('GET', `/api/v1/console/facilities?q=${encodeURIComponent(facility.value)}`);
      if (r.ok) options.replaceChildren(...r.data.map((f) => h('option', { value: `${f.name}, ${f.city}, ${f.state}` })));
    });
    const confirmBox = h('div', { id: 'resolve-confirm-box', class: 'banner-escalated', role: 'alertdialog', hidden: true });
    const resolveForm = h('form', { onsubmit: (e) => {
      e.preventDefault();
      if (!outcome.value) { outcome.focus(); return; }
      confirmBox.replaceChildren(h('p', { text: t('confirm_resolve', { outcome: t(`o_${outcome.value}`) }) }),
        h('button', { class: 'danger', type: 'button', id: 'resolve-confirm', text: t('confirm_yes'), onclick: () => act(d, 'resolve', { outcome: outcome.value, detail: facility.value || null }) }),
        h('button', { class: 'secondary', type: 'button', text: t('confirm_no'), onclick: () => { confirmBox.hidden = true; } }));
      confirmBox.hidden = false;
      confirmBox.querySelector('button').focus();
    } },
    h('label', { for: 'outcome', text: t('outcome') }), outcome,
    h('label', { for: 'facility', text: t('facility') }), facility, options,
    h('button', { class: 'danger', type: 'submit', id: 'resolve', text: t('resolve') }), confirmBox);
    actions.push(resolveForm);
  } else {
    actions.push(h('button', { class: 'secondary', type: 'button', id: 'reopen', text: t('reopen'), onclick: () => act(d, 'reopen') }));
  }
  const steps = (state.me.checklist || {})[d.case.state] || [];
  const message = (r) => (d.messages || []).find((m) => m.recipient_id === r.id) || {};
  box.replaceChildren(...[
    d.duress_at ? h('div', { class: 'banner-duress', role: 'alert', text: t(d.checkin ? 'checkin_forced_banner' : 'duress_banner') }) : null,
    d.caller ? h('div', { class: 'banner-escalated', id: 'caller', role: 'note' },
      ...TEXT[lang].caller_line.split('{number}').flatMap((part, i) => i ? [h('a', { href: 'tel:' + d.caller, text: d.caller }), part] : [part])) : null,
    d.checkin ? h('div', { class: 'banner-escalated', id: 'checkin-plan', role: 'note' },
      h('strong', { text: t('checkin_missed') }), ' ',
      t('checkin_plan', { at: clock(d.checkin.appointment_at), deadline: clock(d.checkin.deadline) }),
      d.checkin.place ? h('div', { text: `${t('checkin_place')}: ${d.checkin.place}` }) : null,
      d.checkin.note ? h('div', { text: `${t('checkin_note')}: ${d.checkin.note}` }) : null) : null,
    d.state === 'cancelled' ? h('div', { class: 'banner-cancelled', text: t('cancelled_banner') }) : null,
    d.case.escalated_at ? h('div', { class: 'banner-escalated', text: t('escalated_banner') }) : null,
    d.case_number ? h('p', { class: 'case-no big', id: 'case-number', text: `${t('case_no')} ${d.case_number}` }) : null,
    h('div', { class: 'case-head' }, h('h1', { text: d.person.name || '—' }),
      h('span', { class: 'case-head-meta' }, badges({ ...d, case_state: d.case.state, escalated: !!d.case.escalated_at }),
        d.place ? ` ${d.place.name}, ${d.place.admin}` : '', ` · ${age(d.created_at)}`), next),
    h('div', { class: 'grid2' },
      h('div', {},
        h('h2', { text: t('person') }),
        h('dl', {},
          h('dt', { text: t('phone') }), h('dd', {}, h('a', { href: `tel:${d.person.phone}`, text: d.person.phone })),
          h('dt', { text: t('language') }), h('dd', { text: d.person.language === 'en' ? 'English' : 'Español' }),
          h('dt', { text: t('home') }), h('dd', { text: [d.person.home_state, d.person.home_county].filter(Boolean).join(' / ') || '—' }),
          // What ICE's detainee locator needs, when the person wrote it.
          ...(d.person.locator ? [
            h('dt', { text: t('locator') }),
            h('dd', { id: 'locator' },
              [[t('a_number'), d.person.locator.a_number && `A${d.person.locator.a_number}`], [t('legal_name'), d.person.locator.legal_name],
                [t('birth'), [d.person.locator.birth_country, d.person.locator.birth_date].filter(Boolean).join(', ')]]
                .filter(([, v]) => v).map(([k, v]) => h('div', { text: `${k}: ${v}` }))),
          ] : []),
          h('dt', { text: t('time') }), h('dd', {}, when(d.created_at), ` (${age(d.created_at)})`),
          h('dt', { text: t('location') }), h('dd', { id: 'coords', text: last ? `${last.lat.toFixed(5)}, ${last.lon.toFixed(5)}${last.accuracy_m ? ` · ${t('accuracy', { m: Math.round(last.accuracy_m) })}` : ''}` : t('no_location') }),
          d.place ? h('dt', { text: '' }) : null,
          d.place ? h('dd', { id: 'place', text: t('near', { place: d.place.name, admin: d.place.admin, d: d.place.distance_km }) }) : null,
          fix ? h('dt', { text: t('last_fix') }) : null,
          fix ? h('dd', { id: 'last-fix' }, when(fix.at), ` (${age(fix.at)})`) : null,
          h('dt', { text: t('distance') }), h('dd', { text: d.distance_km !== null ? `${d.distance_km} km` : '—' })),
        h('h2', { text: t('case') }),
        h('dl', {},
          h('dt', { text: t('state') }), h('dd', {}, badges({ ...d, case_state: d.case.state, escalated: !!d.case.escalated_at })),
          h('dt', { text: t('assigned') }), h('dd', { text: d.case.assigned_to || t('nobody') }),
          d.case.outcome ? h('dt', { text: t('outcome') }) : null,
          d.case.outcome ? h('dd', { id: 'outcome-shown', text: `${t(`o_${d.case.outcome}`)}${d.case.outcome_detail ? ` — ${d.case.outcome_detail}` : ''}` }) : null,
          d.erased_at ? h('dt', { text: t('erased') }) : null,
          d.erased_at ? h('dd', { id: 'erased-at', text: t('erased_at', { trail: clock(d.erased_at.trail), personal: clock(d.erased_at.personal) }) }) : null)),
      h('div', {},
        h('div', { id: 'map', role: 'region', 'aria-label': t('location') }),
        state.me.tile_url ? null : h('p', { class: 'muted', text: t('map_no_tiles') }),
        steps.length ? h('div', { class: 'steps' }, h('h2', { text: t('next_steps') }), h('ol', { id: 'next-steps' }, steps.map((x) => h('li', { text: x })))) : null,
        d.facilities_near && d.facilities_near.length ? h('div', { class: 'steps' }, h('h2', { text: t('facilities_near') }),
          h('ul', { id: 'facilities-near' }, d.facilities_near.map((f) => h('li', { text: `${f.name}, ${f.city}, ${f.state} · ${f.distance_km} km` })))) : null)),
    h('h2', { text: t('recipients') }),
    h('div', { class: 'scroll-x' }, h('table', { id: 'recipients' },
      h('thead', {}, h('tr', {}, [t('name'), '', t('number'), t('state'), t('safe_msg'), t('time')].map((x) => h('th', { text: x })))),
      h('tbody', {}, d.recipients.map((r) => {
        const m = message(r);
        return [h('tr', {},
          h('td', { text: r.name || '—' }), h('td', { text: t(`kind_${r.kind}`) }),
          h('td', {}, m.to ? h('a', { href: `tel:${m.to}`, text: m.to }) : '—'),
          h('td', {}, h('span', { class: `chip ${r.unconfirmed ? 'unconfirmed' : r.status}`, text: t(`s_${r.unconfirmed ? 'unconfirmed' : r.status}`) }), r.reason ? ` ${r.reason}` : '',
            r.resent ? h('div', { class: 'meta resent', text: t('resent_dup') }) : null),
          h('td', {}, r.safe_status ? h('span', { class: `chip ${r.safe_status}`, text: t(`s_${r.safe_status}`) }) : '—'),
          h('td', { class: 'meta' }, m.sent_at ? [t('sent_at'), ' ', when(m.sent_at)] : '', m.updated_at ? [h('br'), t('changed_at'), ' ', when(m.updated_at)] : '')),
        h('tr', { class: 'text-row' }, h('td', { colspan: '6', class: 'message-text', text: m.text || t('text_erased') }))];
      })))),
    h('h2', { text: t('earlier') }),
    d.earlier && d.earlier.length ? h('ul', { id: 'earlier', class: 'earlier' }, d.earlier.map((e) => h('li', {},
      h('a', { href: `/console/alerts/${e.alert_id}`, onclick: (ev) => { ev.preventDefault(); loadDetail(e.alert_id, true); }, text: e.case_number || e.alert_id.slice(0, 8) }),
      ' · ', when(e.created_at), ' · ', t(`b_${e.case_state}`), e.outcome ? ` — ${t(`o_${e.outcome}`)}` : ''))) : h('p', { class: 'muted', text: t('none') }),
    h('div', { class: 'grid2' },
      h('div', {}, h('h2', { text: t('timeline') }), h('ol', { class: 'timeline', id: 'timeline' }, d.timeline.map((e) =>
        h('li', {}, h('strong', { text: t(`k_${e.kind}`) }), ' · ', when(e.at), e.staff ? ` · ${e.staff}` : '', eventDetail(e))))),
      h('div', {}, h('h2', { text: t('detail') }), h('div', {
        class: 'actions',
        oninput: () => { state.dirty = true; },
        onchange: () => { state.dirty = true; },
      }, actions))),
  ].filter(Boolean));
  const again = focused && document.getElementById(focused);
  if (again) again.focus({ preventScroll: true });
  drawMap(d);
}

async function act(d, action, body) {
  say('');
  const r = await api('POST', `/api/v1/console/alerts/${d.alert_id}/${action}`, body === undefined ? undefined : body);
  if (r.ok) {
    state.dirty = false;
    state.detail = r.data;
    renderDetail(r.data);
    loadQueue();
  } else {
    say(errorText(r));
  }
}

// ---- audit and statistics ---------------------------------------------------------

// An audit line in words: the action, and its detail translated where it
// is a code (an outcome, a call).
function auditText(a) {
  let detail = a.detail;
  if (detail && a.action === 'resolve') detail = t('o_' + detail);
  if (detail && a.action === 'escalate') detail = detail.replace('again', t('again_word'));
  if (detail && a.action === 'call') detail = detail.split(' ').map((c, i) => t((i ? 'r_' : 'w_') + c)).join(': ');
  return detail ? `${t('a_' + a.action)} (${detail})` : t('a_' + a.action);
}

async function auditTab() {
  const box = h('section', { class: 'panel' });
  if (state.me.role === 'operator') return box.append(h('p', { text: t('supervisors_only') })), box;
  const r = await api('GET', '/api/v1/console/audit?limit=300');
  box.append(h('table', { id: 'audit' },
    h('thead', {}, h('tr', {}, h('th', { text: t('audit_when') }), h('th', { text: t('audit_who') }), h('th', { text: t('audit_what') }), h('th', { text: t('audit_alert') }))),
    h('tbody', {}, (r.ok ? r.data : []).map((a) => h('tr', {},
      h('td', {}, when(a.at)), h('td', { text: a.staff }),
      h('td', { class: a.action === 'denied' ? 'denied' : null, 'data-action': a.action, text: auditText(a) }),
      h('td', { text: a.case_number || (a.alert_id ? a.alert_id.slice(0, 8) : '') }))))));
  return box;
}

async function statsTab() {
  const box = h('section', { class: 'panel stats' });
  if (state.me.role === 'operator') return box.append(h('p', { text: t('supervisors_only') })), box;
  const r = await api('GET', '/api/v1/console/stats');
  if (!r.ok) return box;
  const s = r.data;
  const secs = (v) => (v === null ? '—' : v < 120 ? `${v} s` : `${Math.round(v / 60)} min`);
  box.append(...[
    h('div', { class: 'numbers' },
      h('div', {}, h('strong', { id: 'stat-alerts', text: String(s.alerts) }), t('stats_alerts')),
      h('div', {}, h('strong', { text: String(s.cancelled) }), t('stats_cancelled')),
      h('div', {}, h('strong', { text: secs(s.ack_median_seconds) }), t('stats_ack_median')),
      h('div', {}, h('strong', { text: secs(s.ack_p90_seconds) }), t('stats_ack_p90'))),
    h('img', { src: `/api/v1/console/stats.svg?ts=${Date.now()}`, alt: t('stats_alerts') }),
    h('p', {}, h('a', { href: '/api/v1/console/stats.csv', text: t('csv') })),
    h('h2', { text: t('stats_outcomes') }),
    h('ul', {}, Object.entries(s.outcomes).map(([k, v]) => h('li', { text: `${t(`o_${k}`)}: ${v}` }))),
    s.per_consulate.length ? h('div', {}, h('h2', { text: t('stats_per') }), h('table', {}, h('tbody', {}, s.per_consulate.map((p) =>
      h('tr', {}, h('td', { text: p.consulate_id }), h('td', { text: String(p.alerts) }), h('td', { text: secs(p.ack_median_seconds) })))))) : null,
  ].filter(Boolean));
  return box;
}

async function show(tab) {
  state.tab = tab;
  if (state.map) { state.map.remove(); state.map = null; }
  const mine = state.me.role === 'operator' ? ['queue'] : ['queue', 'audit', 'stats'];
  const tabs = h('nav', { class: 'tabs', role: 'tablist' }, mine.map((k) =>
    h('button', { type: 'button', role: 'tab', id: `tab-${k}`, 'aria-selected': String(k === tab), text: t(k), onclick: () => show(k) })));
  if (tab === 'queue') {
    main.replaceChildren(tabs, queueTab());
    await loadQueue();
    if (state.selected) await loadDetail(state.selected, false);
  } else {
    main.replaceChildren(tabs, tab === 'audit' ? await auditTab() : await statsTab());
  }
}

async function start() {
  header();
  armBanner();
  lastInput = Date.now();
  const deep = location.pathname.match(/^\/console\/alerts\/([0-9a-f-]{36})/);
  if (deep) state.selected = deep[1];
  startEvents();
  startAlarm();
  await show('queue');
}

document.getElementById('lang').addEventListener('click', () => {
  lang = lang === 'es' ? 'en' : 'es';
  localStorage.setItem('avisa.console.lang', lang);
  if (state.me) show(state.tab); else loginScreen();
  header();
});

document.getElementById('logout').addEventListener('click', async () => {
  await api('POST', '/api/v1/console/logout');
  state.me = null;
  state.known = new Set();
  state.open = [];
  showCount();
  idleCheck();
  loginScreen();
});

// The server sets a readable marker beside the (HttpOnly) session cookie:
// without it there is no session to ask about, and the login page logs no
// 401 on a first visit.
function signedIn() {
  return document.cookie.split('; ').includes('avisa_console_signed_in=1');
}

function forgetSignedIn() {
  document.cookie = 'avisa_console_signed_in=; Path=/console; Max-Age=0; SameSite=Strict';
}

(async () => {
  if (!signedIn()) {
    loginScreen();
    return;
  }
  const r = await fetch('/api/v1/console/me', { credentials: 'same-origin' });
  if (r.ok) {
    state.me = await r.json();
    start();
  } else {
    forgetSignedIn();
    loginScreen();
  }
})();
